"""Run settings (the graph's ``context_schema``) and the run-scoped resources built from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.tasks import TASKS


def home_dir() -> Path:
    """Where runs, checkpoints and the image store live (``RESTOREGRAPH_HOME``)."""
    env = os.environ.get("RESTOREGRAPH_HOME")
    return Path(env) if env else Path.home() / ".restoregraph"


@dataclass
class RunContext:
    """Settings of one run. Everything has a default; the CLI fills them from its options."""

    # the embedded plan scorer (restoregraph/planners/embedded.py); it plans with the fixed
    # rules when its weights are missing. restoregraph.cli.options.PLANNER_DEFAULT matches it.
    planner: str = "embedded"
    objective: Literal["balanced", "psnr", "ssim", "perceptual"] = "balanced"
    mode: Literal["plan", "stepwise"] = "plan"
    max_steps: int = 8  # tool executions, attempts included
    max_rounds: int = 4  # planning rounds
    toolbox: tuple[str, ...] | None = None  # restrict to these tool ids (None = all)
    accept_threshold: float = 0.0  # reflection accepts a step whose gain exceeds this
    quality_weight: float = 1.0  # weight of no-reference quality in the reflection gain
    presence_threshold: int = 1  # minimum perceived level that counts as present
    tool_timeout: float = 600.0  # seconds before a tool call counts as failed
    max_pixels: int | None = None  # refuse larger inputs (None: $RESTOREGRAPH_MAX_PIXELS or 50 MP)
    seed: int = 0
    store_dir: str = ""  # "" -> $RESTOREGRAPH_HOME/store
    reference: str = ""  # clean reference image path (oracle planner / evaluation only)
    planner_options: dict[str, Any] = field(default_factory=dict)
    # Plan constraints (what a user asked for in words; restoregraph.chat fills them):
    forbidden_tasks: tuple[str, ...] = ()  # never planned ("don't denoise", "keep the grain")
    required_tasks: tuple[str, ...] = ()  # planned even when perception misses them
    strength: dict[str, int] = field(default_factory=dict)  # task -> 1 mild, 2 normal, 3 strong
    # Objects for library use (not serialised): a custom registry, planner or perceiver.
    registry: Any = None
    planner_obj: Any = None
    perceiver: Any = None

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_steps > 100:
            raise RestoreGraphError(f"max_steps must be within 1..100, got {self.max_steps}")
        if self.mode not in ("plan", "stepwise"):
            raise RestoreGraphError(f"mode must be 'plan' or 'stepwise', got {self.mode!r}")
        if self.objective not in ("balanced", "psnr", "ssim", "perceptual"):
            raise RestoreGraphError(f"unknown objective {self.objective!r}")
        self.forbidden_tasks = tuple(self.forbidden_tasks)
        self.required_tasks = tuple(self.required_tasks)
        self.strength = dict(self.strength)
        for task in (*self.forbidden_tasks, *self.required_tasks, *self.strength):
            if task not in TASKS:
                raise RestoreGraphError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        both = set(self.forbidden_tasks) & set(self.required_tasks)
        if both:
            raise RestoreGraphError(
                f"task(s) both forbidden and required: {', '.join(sorted(both))}"
            )
        for task, level in self.strength.items():
            if level not in (1, 2, 3):
                raise RestoreGraphError(f"strength of {task!r} must be 1, 2 or 3, got {level!r}")

    def settings(self) -> dict[str, Any]:
        """The serialisable settings (what a run's metadata records for resume)."""
        keep = [
            "planner",
            "objective",
            "mode",
            "max_steps",
            "max_rounds",
            "toolbox",
            "accept_threshold",
            "quality_weight",
            "presence_threshold",
            "tool_timeout",
            "max_pixels",
            "seed",
            "store_dir",
            "reference",
            "planner_options",
            "forbidden_tasks",
            "required_tasks",
            "strength",
        ]
        out = {k: getattr(self, k) for k in keep}
        if out["toolbox"] is not None:
            out["toolbox"] = list(out["toolbox"])
        out["forbidden_tasks"] = list(self.forbidden_tasks)
        out["required_tasks"] = list(self.required_tasks)
        out["strength"] = dict(self.strength)
        return out

    @classmethod
    def from_settings(cls, data: dict[str, Any]) -> RunContext:
        data = dict(data)
        if data.get("toolbox") is not None:
            data["toolbox"] = tuple(data["toolbox"])
        return cls(**data)
