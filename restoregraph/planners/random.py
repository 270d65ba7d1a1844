"""Random baselines: random order and/or random model over the needed tasks.

Three variants of one class (``mode``), each registered under its own name:

* ``random``        -- random task order, random model per task;
* ``random-order``  -- random task order, the fixed planner's model choice;
* ``random-model``  -- the fixed planner's task order, random model per task.

The generator is seeded with ``request.seed + len(request.history)`` so a run is reproducible
and every planning round of a run draws differently. Forbidden tools (rolled back at this
position) are never drawn; a task whose every tool is forbidden is skipped this round.
"""

from __future__ import annotations

import random as _random
from typing import Literal

from restoregraph.core.errors import PlanError
from restoregraph.core.state import PlanStep
from restoregraph.planners._common import allowed_tools, needed_tasks, skipped_note
from restoregraph.planners.base import Plan, PlanRequest
from restoregraph.planners.fixed import choose_tool, task_order

RandomMode = Literal["random", "random-order", "random-model"]
MODES: tuple[str, ...] = ("random", "random-order", "random-model")


class RandomPlanner:
    """Random order and/or random model (``mode``), reproducible per seed."""

    def __init__(self, mode: RandomMode = "random") -> None:
        if mode not in MODES:
            raise PlanError(f"unknown random planner mode {mode!r}; known: {', '.join(MODES)}")
        self.mode: str = mode
        self.name: str = mode

    @property
    def random_order(self) -> bool:
        return self.mode in ("random", "random-order")

    @property
    def random_model(self) -> bool:
        return self.mode in ("random", "random-model")

    def plan(self, request: PlanRequest) -> Plan:
        rng = _random.Random(request.seed + len(request.history))
        needed = needed_tasks(request)
        tasks = task_order(needed)  # a canonical order first, so shuffling is reproducible
        if self.random_order:
            rng.shuffle(tasks)
        steps: list[PlanStep] = []
        skipped: list[str] = []
        for task in tasks:
            if self.random_model:
                tools = allowed_tools(request, task)
                spec = rng.choice(tools) if tools else None
            else:
                spec = choose_tool(request, task, needed[task])
            if spec is None:
                skipped.append(task)
            else:
                steps.append(PlanStep(task=task, tool=spec.id))
        note = skipped_note(request, skipped)
        return Plan(steps=steps, note=note)


class RandomOrderPlanner(RandomPlanner):
    """``random-order``: random task order, the fixed planner's model choice."""

    def __init__(self) -> None:
        super().__init__(mode="random-order")


class RandomModelPlanner(RandomPlanner):
    """``random-model``: the fixed task order, a random model per task."""

    def __init__(self) -> None:
        super().__init__(mode="random-model")


__all__ = ["MODES", "RandomModelPlanner", "RandomOrderPlanner", "RandomPlanner"]
