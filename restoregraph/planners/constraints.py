"""The user's plan constraints, enforced on any planner's steps (part of the planner interface:
the planning node calls it whatever planner wrote the plan)."""

from __future__ import annotations

from restoregraph.core.state import PlanStep
from restoregraph.planners._common import needed_tasks
from restoregraph.planners.base import PlanRequest
from restoregraph.planners.fixed import FIXED_ORDER, choose_tool


def apply_constraints(steps: list[PlanStep], request: PlanRequest) -> list[PlanStep]:
    """Enforce the user's constraints on any planner's steps: drop forbidden tasks, and add a
    required task the plan left out (the fixed rule's tool, at its place in the fixed order)."""
    steps = [s for s in steps if s["task"] not in request.forbidden_tasks]
    planned = {s["task"] for s in steps}
    needed = needed_tasks(request)
    rank = {t: i for i, t in enumerate(FIXED_ORDER)}
    for task in request.required_tasks:
        if task in planned or task not in needed:
            continue
        spec = choose_tool(request, task, needed[task])
        if spec is None:
            continue
        at = next(
            (i for i, s in enumerate(steps) if rank.get(s["task"], 99) > rank.get(task, 99)),
            len(steps),
        )
        steps.insert(at, PlanStep(task=task, tool=spec.id))
    return steps


def untooled_tasks(request: PlanRequest) -> list[str]:
    """Tasks the image needs (perceived, or required by the user) that the toolbox has no tool
    for: the planner skips them, and the planning node says so."""
    available = set(request.toolbox.tasks())
    return [t for t in needed_tasks(request, with_tools_only=False) if t not in available]


__all__ = ["apply_constraints", "untooled_tasks"]
