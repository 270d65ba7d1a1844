"""Resources a node needs, built from the run context and cached per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from restoregraph.core.settings import RunContext, home_dir
from restoregraph.store.images import ImageStore
from restoregraph.tools import default_registry
from restoregraph.tools.registry import ToolRegistry


@lru_cache(maxsize=8)
def _store(path: str) -> ImageStore:
    return ImageStore(path)


def get_store(ctx: RunContext) -> ImageStore:
    return _store(ctx.store_dir or str(home_dir() / "store"))


def get_registry(ctx: RunContext) -> ToolRegistry:
    reg: ToolRegistry = ctx.registry if ctx.registry is not None else default_registry()
    if ctx.toolbox is not None:
        reg = reg.subset(ctx.toolbox)
    return reg


_PLANNERS: dict[tuple[str, str], Any] = {}


def get_planner(ctx: RunContext) -> Any:
    if ctx.planner_obj is not None:
        return ctx.planner_obj
    from restoregraph.planners import get_planner as make

    key = (ctx.planner, repr(sorted(ctx.planner_options.items())))
    if key not in _PLANNERS:
        _PLANNERS[key] = make(ctx.planner, **ctx.planner_options)
    return _PLANNERS[key]


def get_perceiver(ctx: RunContext) -> Any:
    if ctx.perceiver is not None:
        return ctx.perceiver
    from restoregraph.perception import default_perceiver

    return default_perceiver()
