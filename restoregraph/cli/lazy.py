"""A click group whose commands are imported only when one is run or its help is shown.

``restoregraph.cli.main`` lists every command once, in a table of ``LazyCommand`` entries; a
command's module (and whatever it imports: the lab, torch...) is imported on first use, so
``restoregraph --help`` and ``import restoregraph.cli.main`` stay fast and light.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command is (``"module:attribute"``) and its one-line help (what the group's
    ``--help`` lists without importing the module; a test keeps it equal to the command's).

    ``subcommands`` (name -> ``"module:attribute"``) are added to a group when it is loaded.
    """

    target: str
    help: str
    subcommands: Mapping[str, str] = field(default_factory=dict)

    def load(self) -> click.Command:
        cmd = load_command(self.target)
        if self.subcommands:
            if not isinstance(cmd, click.Group):
                raise TypeError(f"{self.target} has subcommands but is not a click group")
            for name, target in self.subcommands.items():
                cmd.add_command(load_command(target), name)
        return cmd


def load_command(target: str) -> click.Command:
    """The click command at ``"module:attribute"``."""
    module, _, attr = target.partition(":")
    cmd = getattr(importlib.import_module(module), attr)
    if not isinstance(cmd, click.Command):
        raise TypeError(f"{target} is not a click command")
    return cmd


class LazyGroup(click.Group):
    """A ``click.Group`` whose commands come from a table of ``LazyCommand`` (name -> entry)."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like ``click.Group``'s, with the table's help for commands not imported yet."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            cmd = self.commands.get(name)
            if cmd is not None and cmd.hidden:
                continue
            if cmd is None:  # shortened as click shortens a command's own help
                cmd = click.Command(name, help=self.lazy[name].help)
            rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
