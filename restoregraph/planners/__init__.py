"""Planners: the registry of planner factories (one place).

>>> planner = get_planner("fixed")                                  # doctest: +SKIP
>>> planner = get_planner("openai", base_url="http://gpu:8000/v1")  # doctest: +SKIP

Factories import their module lazily, so a planner's heavy dependencies (metrics, perception,
httpx) load only when that planner is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# ``restoregraph.graph``'s package __init__ builds the graph, whose planning node imports
# ``planners.base``, which imports ``graph.state``: importing the graph package first keeps
# ``import restoregraph.planners`` (as the very first import) free of a circular import.
import restoregraph.graph  # noqa: F401
from restoregraph.core.errors import PlanError
from restoregraph.planners.base import (
    MAX_PLAN_STEPS,
    Plan,
    Planner,
    PlanRequest,
    format_plan,
    parse_plan,
    validate_steps,
)

PlannerFactory = Callable[..., Planner]


def _fixed(**options: Any) -> Planner:
    from restoregraph.planners.fixed import FixedPlanner

    return FixedPlanner(**options)


def _random(mode: str) -> PlannerFactory:
    def factory(**options: Any) -> Planner:
        from restoregraph.planners.random import RandomPlanner

        return RandomPlanner(mode=mode, **options)  # type: ignore[arg-type]

    factory.__name__ = f"_{mode.replace('-', '_')}"
    return factory


def _explore(**options: Any) -> Planner:
    from restoregraph.planners.explore import ExplorePlanner

    # the statistics distilled from the search data (restoregraph/prompts/experience.json)
    options.setdefault("experience", "default")
    return ExplorePlanner(**options)


def _oracle(**options: Any) -> Planner:
    from restoregraph.planners.oracle import OraclePlanner

    return OraclePlanner(**options)


def _embedded(**options: Any) -> Planner:
    from restoregraph.planners.embedded import EmbeddedPlanner

    return EmbeddedPlanner(**options)


def _openai(**options: Any) -> Planner:
    from restoregraph.planners.openai import OpenAIPlanner

    return OpenAIPlanner(**options)


def _smollm(**options: Any) -> Planner:
    from restoregraph.planners.smollm import SmolLMPlanner

    return SmolLMPlanner(**options)


PLANNERS: dict[str, PlannerFactory] = {
    "fixed": _fixed,
    "random": _random("random"),
    "random-order": _random("random-order"),
    "random-model": _random("random-model"),
    "explore": _explore,
    "oracle": _oracle,
    "embedded": _embedded,
    "openai": _openai,
    "smollm": _smollm,
}


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


__all__ = [
    "MAX_PLAN_STEPS",
    "PLANNERS",
    "Plan",
    "PlanRequest",
    "Planner",
    "PlannerFactory",
    "format_plan",
    "get_planner",
    "parse_plan",
    "planner_names",
    "register_planner",
    "validate_steps",
]
