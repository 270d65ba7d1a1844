"""Click options shared by several commands (one definition each).

The run settings' options come from ``RunContext``'s field metadata (``run_option``): the name
(``max_steps`` -> ``--max-steps``), the default, the help text, and an ``IntRange`` or ``Choice``
from the bounds or choices, so a setting's default and range are written once, in
``restoregraph/core/settings.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING
from pathlib import Path
from typing import Any, TypeVar

import click

from restoregraph.core.objectives import OBJECTIVE_NAMES
from restoregraph.core.settings import RUN_FIELDS

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "AS_JSON",
    "HOME",
    "MAX_PIXELS",
    "OBJECTIVE",
    "OBJECTIVE_NAMES",
    "OUTPUT",
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
    kwargs: dict[str, Any] = {"help": meta["help"]}
    if f.default is not MISSING:  # a default_factory (a dict) has no CLI default
        kwargs["default"] = f.default
        kwargs["show_default"] = f.default != ""  # not a bare [default: ""]
    if "bounds" in meta:
        lo, hi = meta["bounds"]
        both_int = isinstance(lo, int) and isinstance(hi, int)
        kwargs["type"] = click.IntRange(lo, hi) if both_int else click.FloatRange(lo, hi)
    elif "choices" in meta:
        kwargs["type"] = click.Choice(meta["choices"])
    elif isinstance(f.default, bool | int | float):
        kwargs["type"] = type(f.default)
    kwargs.update({k: v for k, v in meta.get("cli", {}).items() if k != "flags"})
    return kwargs


def run_option(name: str, *param_decls: str, **overrides: Any) -> Callable[[F], F]:
    """The CLI option of the run setting ``name``: ``--max-steps`` for ``max_steps``, with its
    default, help and range from ``RunContext``'s metadata. ``overrides`` change what a command
    needs otherwise (its own help or default)."""
    flags = RUN_FIELDS[name].metadata.get("cli", {}).get("flags", ("--" + name.replace("_", "-"),))
    decls = param_decls or flags
    return click.option(*decls, **{**run_option_kwargs(name), **overrides})


OBJECTIVE = run_option("objective")

# RunContext.planner's default (the embedded planner)
PLANNER_DEFAULT = str(RUN_FIELDS["planner"].default)

PLANNER = run_option("planner")

OVERWRITE = click.option("--overwrite", is_flag=True, help="Replace an existing output file.")

HOME = click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="Runs directory (default $RESTOREGRAPH_HOME or ~/.restoregraph).",
)

OUTPUT = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the result.",
)

MAX_PIXELS = run_option("max_pixels")

AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
