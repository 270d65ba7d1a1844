"""Resources a node needs, built from the run context and cached per process.

Nodes read their settings through ``run_context(runtime)`` (never ``runtime.context``): a graph
invoked without a context (``compile_graph().invoke({"image": path}, config)``, LangGraph Studio)
runs with ``RunContext()``'s defaults, and a partial dict (``context={"planner": "fixed"}``) fills
the rest from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.settings import RunContext, home_dir
from restoregraph.core.timing import timed
from restoregraph.planners import Planner
from restoregraph.planners import get_planner as make
from restoregraph.store.images import ImageStore
from restoregraph.tools import default_registry
from restoregraph.tools.registry import ToolRegistry

if TYPE_CHECKING:  # types only
    from langgraph.runtime import Runtime

    from restoregraph.perception.base import Perceiver


def run_context(runtime: Runtime[RunContext]) -> RunContext:
    """The run's settings from a node's ``runtime``: its ``RunContext``; ``RunContext()`` when the
    graph was invoked without a context; a ``RunContext`` built from a (partial) mapping, with
    JSON lists as tuples (``RunContext.from_settings``). Anything else, or an unknown setting, is
    a ``RestoreGraphError``."""
    ctx: object = getattr(runtime, "context", None)
    if ctx is None:
        return RunContext()
    if isinstance(ctx, RunContext):
        return ctx
    if isinstance(ctx, Mapping):
        known = {f.name for f in fields(RunContext)}
        unknown = sorted(str(k) for k in ctx if k not in known)
        if unknown:
            raise RestoreGraphError(
                f"unknown run setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return RunContext.from_settings(dict(ctx))
    raise RestoreGraphError(
        f"the run context must be a RunContext or a dict of its fields, got {type(ctx).__name__}"
    )


@lru_cache(maxsize=8)
def _store(path: str) -> ImageStore:
    return ImageStore(path)


def get_store(ctx: RunContext) -> ImageStore:
    return _store(ctx.store_dir or str(home_dir() / "store"))


@timed("startup")  # building a resource the first time (imports, weights) is start-up
def get_registry(ctx: RunContext) -> ToolRegistry:
    reg = ctx.registry if ctx.registry is not None else default_registry()
    if not isinstance(reg, ToolRegistry):
        raise RestoreGraphError(
            f"RunContext.registry must be a restoregraph.tools.ToolRegistry, got {type(reg).__name__}"
        )
    if ctx.toolbox is not None:
        reg = reg.subset(ctx.toolbox)
    return reg


_PLANNERS: dict[tuple[str, str], Planner] = {}


@timed("startup")
def get_planner(ctx: RunContext) -> Planner:
    """The run's planner: the object a library user passed, else the registered one (cached)."""
    if ctx.planner_obj is not None:
        return cast(Planner, ctx.planner_obj)

    key = (ctx.planner, repr(sorted(ctx.planner_options.items())))
    if key not in _PLANNERS:
        _PLANNERS[key] = make(ctx.planner, **ctx.planner_options)
    return _PLANNERS[key]


@timed("startup")
def get_perceiver(ctx: RunContext) -> Perceiver:
    if ctx.perceiver is not None:
        return cast("Perceiver", ctx.perceiver)
    from restoregraph.perception import default_perceiver  # torch only on the torch backends

    return default_perceiver()
