"""The planner interface (one place): every planner turns a ``PlanRequest`` into a ``Plan``.

Plans are written in RestoreAgent's template ``1. <task> <model>. 2. <task> <model>.`` where
``<model>`` is the tool id without its task prefix (``denoise.nlmeans`` -> ``denoise nlmeans``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from restoregraph.core.errors import PlanError
from restoregraph.core.state import FailedAttempt, PlanStep, StepRecord
from restoregraph.tools.registry import ToolRegistry

MAX_PLAN_STEPS = 16


@dataclass
class PlanRequest:
    perception: dict[str, int]  # detected degradation type -> severity 1..3 (absent types omitted)
    toolbox: ToolRegistry
    history: list[StepRecord] = field(default_factory=list)
    failed: list[FailedAttempt] = field(default_factory=list)
    objective: str = "balanced"
    seed: int = 0
    instruction: str = ""
    load_image: Callable[[], np.ndarray] | None = None  # current image, loaded on demand
    reference: np.ndarray | None = None  # only the oracle planner may use it
    # User constraints (RunContext): tasks never planned, tasks always planned, task strength.
    forbidden_tasks: tuple[str, ...] = ()
    required_tasks: tuple[str, ...] = ()
    strength: dict[str, int] = field(default_factory=dict)  # task -> 1 mild, 2 normal, 3 strong
    max_tries: int = 0  # tools tried per task and position (RunContext.max_tries; 0: no limit)

    @property
    def position(self) -> int:
        """How many accepted steps the current image has been through."""
        return sum(1 for h in self.history if h["status"] == "accepted")

    def done_tasks(self) -> set[str]:
        return {h["task"] for h in self.history if h["status"] == "accepted"}

    def is_forbidden(self, tool_id: str, position: int | None = None) -> bool:
        """A tool rolled back at a position is not retried at the same point (``position``:
        this one when None; a plan's i-th kept step runs at ``self.position + i``)."""
        pos = self.position if position is None else position
        if any(f["tool"] == tool_id and f["position"] == pos for f in self.failed):
            return True
        return self.tries_exhausted(tool_id.split(".", 1)[0], pos)

    def tries(self, task: str, position: int | None = None) -> int:
        """How many of ``task``'s tools were rolled back at ``position`` (default: this one)."""
        pos = self.position if position is None else position
        return sum(
            1 for f in self.failed if f["position"] == pos and f["tool"].split(".", 1)[0] == task
        )

    def tries_exhausted(self, task: str, position: int | None = None) -> bool:
        """``max_tries`` of ``task``'s tools were rolled back at ``position``: no more there."""
        return self.max_tries > 0 and self.tries(task, position) >= self.max_tries


@dataclass
class Plan:
    steps: list[PlanStep]
    note: str = ""

    @property
    def stop(self) -> bool:
        return not self.steps

    @property
    def text(self) -> str:
        return format_plan(self.steps)


@runtime_checkable
class Planner(Protocol):
    name: str

    def plan(self, request: PlanRequest) -> Plan: ...


def format_plan(steps: Sequence[PlanStep]) -> str:
    if not steps:
        return "Stop."
    parts = []
    for i, step in enumerate(steps, 1):
        model = step["tool"].split(".", 1)[1]
        parts.append(f"{i}. {step['task']} {model}.")
    return " ".join(parts)


# (?<!\d): a step number starts where a digit run starts, so a long run of digits is scanned
# once, not once per digit (a hostile 20 000-digit reply took 15 s to refuse).
_STEP_RE = re.compile(
    r"(?<!\d)(\d+)\s*[.)]\s*([a-z_]+)\s+([a-z0-9_.]+?)\s*(?:\.(?=\s|$)|$|(?=\s+\d+\s*[.)]))"
)


def parse_plan(text: str, toolbox: ToolRegistry) -> Plan:
    """Parse ``1. <task> <model>. 2. ...`` (or ``Stop``) into a validated Plan.

    Raises ``PlanError`` for unknown tool ids, a task/model mismatch, or more than
    ``MAX_PLAN_STEPS`` steps. Never executes or evaluates anything in the text.
    """
    if not isinstance(text, str):
        raise PlanError("plan is not text")
    body = text.strip()
    if len(body) > 20_000:
        raise PlanError("plan text too long")
    if re.fullmatch(r"(?is)\s*(stop|done|none)\s*[.!]?\s*", body):
        return Plan(steps=[])
    steps: list[PlanStep] = []
    for match in _STEP_RE.finditer(body.lower()):
        task, model = match.group(2), match.group(3).rstrip(".")
        tool_id = f"{task}.{model}"
        if tool_id not in toolbox:
            raise PlanError(f"plan names unknown tool {tool_id!r}")
        steps.append(PlanStep(task=task, tool=tool_id))
        if len(steps) > MAX_PLAN_STEPS:
            raise PlanError(f"plan has more than {MAX_PLAN_STEPS} steps")
    if not steps:
        raise PlanError("no plan steps found (expected '1. <task> <model>. 2. ...' or 'Stop')")
    return Plan(steps=steps)


def validate_steps(steps: Sequence[PlanStep | dict], toolbox: ToolRegistry) -> list[PlanStep]:
    """Validate a structured plan (list of {"task", "tool"}) against the toolbox."""
    if len(steps) > MAX_PLAN_STEPS:
        raise PlanError(f"plan has {len(steps)} steps, more than {MAX_PLAN_STEPS}")
    out: list[PlanStep] = []
    for raw in steps:
        if not isinstance(raw, dict) or "tool" not in raw:
            raise PlanError(f"malformed plan step {raw!r}")
        tool_id = str(raw["tool"])
        if tool_id not in toolbox:
            raise PlanError(f"plan names unknown tool {tool_id!r}")
        task = toolbox.get(tool_id).task
        if raw.get("task", task) != task:
            raise PlanError(f"plan step {tool_id!r} is not a {raw.get('task')!r} tool")
        out.append(PlanStep(task=task, tool=tool_id))
    return out
