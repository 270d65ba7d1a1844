"""The planner registry (one place): names -> planner factories.

The built-in planners are registered by ``restoregraph.planners`` (the package), whose
factories import each planner's module lazily; this module imports no planner, so a planner
that builds another one (a fallback) imports this module without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from restoregraph.core.errors import PlanError
from restoregraph.planners.base import Planner

PlannerFactory = Callable[..., Planner]

PLANNERS: dict[str, PlannerFactory] = {}


def register_planner(name: str, factory: PlannerFactory) -> None:
    """Add a planner factory under ``name``; a name already taken is refused."""
    if not isinstance(name, str) or not name.strip():
        raise PlanError(f"planner name must be a non-empty string, got {name!r}")
    if name in PLANNERS:
        raise PlanError(f"planner {name!r} is already registered")
    if not callable(factory):
        raise PlanError(f"planner {name!r}: factory is not callable")
    PLANNERS[name] = factory


def planner_names() -> list[str]:
    return sorted(PLANNERS)


def get_planner(name: str, **options: Any) -> Planner:
    """Build the planner registered as ``name`` with ``options`` (keyword arguments)."""
    try:
        factory = PLANNERS[name]
    except (KeyError, TypeError):
        raise PlanError(
            f"unknown planner {name!r}; known planners: {', '.join(planner_names())}"
        ) from None
    try:
        planner = factory(**options)
    except TypeError as exc:
        # A wrong option name: say which options the planner takes.
        if "argument" not in str(exc):
            raise
        raise PlanError(f"planner {name!r}: bad options {sorted(options)}: {exc}") from None
    return planner


__all__ = ["PLANNERS", "PlannerFactory", "get_planner", "planner_names", "register_planner"]
