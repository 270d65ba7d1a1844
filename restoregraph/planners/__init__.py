"""Planners: the registry of planner factories (one place).

>>> planner = get_planner("fixed")                                  # doctest: +SKIP
>>> planner = get_planner("openai", base_url="http://gpu:8000/v1")  # doctest: +SKIP

Factories import their module lazily, so a planner's heavy dependencies (metrics, perception,
httpx) load only when that planner is built.
"""

from __future__ import annotations

from typing import Any

from restoregraph.planners.base import (
    MAX_PLAN_STEPS,
    Plan,
    Planner,
    PlanRequest,
    format_plan,
    parse_plan,
    validate_steps,
)
from restoregraph.planners.constraints import apply_constraints, untooled_tasks
from restoregraph.planners.registry import (
    PLANNERS,
    PlannerFactory,
    get_planner,
    planner_names,
    register_planner,
)


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


_BUILTIN: dict[str, PlannerFactory] = {
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

for _name, _factory in _BUILTIN.items():
    register_planner(_name, _factory)


__all__ = [
    "MAX_PLAN_STEPS",
    "PLANNERS",
    "Plan",
    "PlanRequest",
    "Planner",
    "PlannerFactory",
    "apply_constraints",
    "format_plan",
    "get_planner",
    "parse_plan",
    "planner_names",
    "register_planner",
    "untooled_tasks",
    "validate_steps",
]
