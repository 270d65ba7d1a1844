"""Helpers every planner shares: which tasks are still needed, and which tools may be used."""

from __future__ import annotations

from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE
from restoregraph.planners.base import PlanRequest
from restoregraph.tools.registry import ToolSpec


def needed_tasks(request: PlanRequest, with_tools_only: bool = True) -> dict[str, int]:
    """Task -> detected level for every degradation still to undo.

    A task is needed when perception reports a type it undoes (level >= 1), it has not been
    accepted already in this run, and the toolbox has at least one tool for it. When two types
    map onto one task (``blur`` and ``motion_blur`` -> ``deblur``) the worst level counts.
    Unknown perception types are ignored.

    User constraints: a forbidden task is never needed; a required task is needed even when
    perception misses it (at level 2 when not perceived); a task with a ``strength`` gets that
    level instead of the perceived one (so the tool choice follows the asked strength).

    ``with_tools_only=False`` keeps the tasks the toolbox has no tool for (to say so).
    """
    done = request.done_tasks()
    tooled = set(request.toolbox.tasks())

    def usable(task: str) -> bool:
        return task in tooled or not with_tools_only

    forbidden = set(request.forbidden_tasks)
    out: dict[str, int] = {}
    for ptype, level in request.perception.items():
        task = TASK_FOR_PERCEPTION_TYPE.get(ptype)
        if task is None or task in done or not usable(task) or task in forbidden:
            continue
        try:
            lvl = int(level)
        except (TypeError, ValueError):
            continue
        if lvl < 1:
            continue
        out[task] = max(out.get(task, 0), min(lvl, 3))
    for task in request.required_tasks:
        if task not in done and usable(task) and task not in forbidden:
            out.setdefault(task, 2)
    for task, level in request.strength.items():
        if task in out:
            out[task] = level
    return out


def allowed_tools(request: PlanRequest, task: str) -> list[ToolSpec]:
    """The task's tools in registry order, without those rolled back at this position
    (none at all for a forbidden task)."""
    if task in request.forbidden_tasks:
        return []
    return [s for s in request.toolbox.for_task(task) if not request.is_forbidden(s.id)]


def skipped_note(request: PlanRequest, tasks: list[str]) -> str:
    """The planner note for needed ``tasks`` left out because their tools were rolled back at
    this point: all of them, or ``max_tries`` of them (the run's bound on tries)."""
    if not tasks:
        return ""
    parts = []
    for task in tasks:
        n = request.tries(task)
        if request.tries_exhausted(task) and n < len(request.toolbox.for_task(task)):
            parts.append(f"{task} ({n} tools rolled back here, the limit of max_tries)")
        else:
            parts.append(task)
    return f"skipped (every tool rolled back here): {', '.join(parts)}"
