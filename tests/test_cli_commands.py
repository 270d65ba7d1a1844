"""The CLI's one command table (restoregraph.cli.main.COMMANDS): every command is listed there,
loads from where the table says, and is imported only when used."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import restoregraph.cli as cli_pkg
from restoregraph.cli.lazy import LazyCommand, load_command
from restoregraph.cli.main import COMMANDS, app


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_entry_loads_with_the_help_the_table_shows(name: str) -> None:
    entry = COMMANDS[name]
    cmd = entry.load()
    assert isinstance(cmd, click.Command)
    for limit in (30, 45, 60, 80, 120):  # the table's help shortens as the command's would
        listed = click.Command(name, help=entry.help).get_short_help_str(limit)
        assert listed == cmd.get_short_help_str(limit), (name, limit)
    if entry.subcommands:
        assert isinstance(cmd, click.Group)
        assert set(entry.subcommands) <= set(cmd.commands)


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    for name, entry in COMMANDS.items():
        assert f"  {name} " in listed
        assert entry.help.split()[0] in listed


def _targets(entries: dict[str, LazyCommand]) -> set[str]:
    out = set()
    for entry in entries.values():
        out.add(entry.target)
        out.update(entry.subcommands.values())
    return out


def test_every_command_of_the_cli_modules_is_in_the_table() -> None:
    """A command defined in restoregraph/cli/cmd_*.py but left out of the table is unreachable;
    and no module registers itself any more (no ``register(app)``)."""
    targets = _targets(COMMANDS)
    # commands a group in the table defines with its own decorator (``@bench.command``)
    attached = {
        id(sub)
        for target in targets
        if isinstance(group := load_command(target), click.Group)
        for sub in group.commands.values()
    }
    for info in pkgutil.iter_modules(cli_pkg.__path__):
        if not info.name.startswith("cmd_"):
            continue
        module = importlib.import_module(f"restoregraph.cli.{info.name}")
        assert not hasattr(module, "register"), info.name
        for attr, value in vars(module).items():
            if isinstance(value, click.Command) and not attr.startswith("_"):
                if id(value) in attached:
                    continue
                assert f"{module.__name__}:{attr}" in targets, f"{module.__name__}:{attr}"
    for target in targets:
        assert isinstance(load_command(target), click.Command), target


def test_help_imports_no_command_module_and_no_lab() -> None:
    code = (
        "import sys\n"
        "from restoregraph.cli.main import main\n"
        "try:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print('MODULES', *sorted(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    loaded = set(out.split("MODULES", 1)[1].split())
    assert not {m for m in loaded if m.startswith(("restoregraph.lab", "restoregraph.cli.cmd_"))}
    assert {"torch", "numpy", "gradio", "transformers", "rich"}.isdisjoint(loaded)


def test_a_lab_command_imports_the_lab_only_when_run() -> None:
    code = (
        "import sys\n"
        "from restoregraph.cli.main import main\n"
        "try:\n    main(['bench', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print('MODULES', *sorted(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    help_text, loaded_text = out.split("MODULES", 1)
    assert "restoregraph.cli.cmd_bench" in loaded_text.split()
    for sub in ("learned", "chat", "agent", "tools"):
        assert f"  {sub} " in help_text
