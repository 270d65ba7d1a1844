"""Click options shared by several commands (one definition each).

The run settings' options come from ``RunContext``'s field metadata (``run_option``): the name
(``max_steps`` -> ``--max-steps``), the default, the help text, and an ``IntRange`` or ``Choice``
from the bounds or choices, so a setting's default and range are written once, in
``restoregraph/core/settings.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from restoregraph.core.objectives import OBJECTIVE_NAMES
from restoregraph.core.settings import RUN_FIELDS

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "HOME",
    "OBJECTIVE",
    "OBJECTIVE_NAMES",
    "OVERWRITE",
    "PLANNER",
    "PLANNER_DEFAULT",
    "run_option",
    "run_option_kwargs",
]


def run_option_kwargs(name: str) -> dict[str, Any]:
    """``click.option`` arguments for the run setting ``name`` (a ``RunContext`` field)."""
    f = RUN_FIELDS[name]
    meta = f.metadata
    kwargs: dict[str, Any] = {"default": f.default, "show_default": True, "help": meta["help"]}
    if "bounds" in meta:
        kwargs["type"] = click.IntRange(*meta["bounds"])
    elif "choices" in meta:
        kwargs["type"] = click.Choice(meta["choices"])
    elif isinstance(f.default, bool | int | float):
        kwargs["type"] = type(f.default)
    kwargs.update(meta.get("cli", {}))
    return kwargs


def run_option(name: str, *param_decls: str, **overrides: Any) -> Callable[[F], F]:
    """The CLI option of the run setting ``name``: ``--max-steps`` for ``max_steps``, with its
    default, help and range from ``RunContext``'s metadata. ``overrides`` change what a command
    needs otherwise (its own help or default)."""
    decls = param_decls or ("--" + name.replace("_", "-"),)
    return click.option(*decls, **{**run_option_kwargs(name), **overrides})


OBJECTIVE = run_option("objective")

# RunContext.planner's default (the embedded planner)
PLANNER_DEFAULT: str = RUN_FIELDS["planner"].default  # type: ignore[assignment]

PLANNER = run_option("planner")

OVERWRITE = click.option("--overwrite", is_flag=True, help="Replace an existing output file.")

HOME = click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="Runs directory (default $RESTOREGRAPH_HOME or ~/.restoregraph).",
)
