"""Run settings (the graph's ``context_schema``) and the run-scoped resources built from them.

Every setting is declared once, below, as a dataclass field whose ``metadata`` holds what the rest
of the project derives from it (the style of open_deep_research's ``Configuration``):

- ``help``: one line, the CLI option's help text;
- ``bounds``: ``(lo, hi)`` inclusive, checked by ``RunContext.__post_init__`` (an ``IntRange`` on
  the CLI);
- ``choices``: the allowed values, checked the same way (a ``Choice`` on the CLI);
- ``error``: the message when a bound or choice is broken (``str.format`` with ``name``,
  ``value``, ``lo``, ``hi`` and ``either``), when not the default one;
- ``serialise``: ``False`` for the library objects that a run's metadata does not record;
- ``cli``: further ``click.option`` arguments (a ``metavar``, a ``type`` when the default is
  ``None``; ``flags``: the option's names when not ``--field-name``).

The default is the field's own. ``restoregraph.cli.options.run_option`` builds the CLI options
from this, ``RunContext.settings`` the serialised settings.
"""

from __future__ import annotations

import os
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.objectives import OBJECTIVE_NAMES
from restoregraph.core.tasks import TASKS

MODES: tuple[str, ...] = ("plan", "stepwise")
APPROVE_MODES: tuple[str, ...] = ("off", "first", "every")
STEP_CRITIC_MODES: tuple[str, ...] = ("off", "veto", "decide")


def home_dir() -> Path:
    """Where runs, checkpoints and the image store live (``RESTOREGRAPH_HOME``)."""
    env = os.environ.get("RESTOREGRAPH_HOME")
    return Path(env) if env else Path.home() / ".restoregraph"


@dataclass
class RunContext:
    """Settings of one run. Everything has a default; the CLI fills them from its options."""

    # the embedded plan scorer (restoregraph/planners/embedded.py); it plans with the fixed
    # rules when its weights are missing.
    planner: str = field(
        default="embedded",
        metadata={
            "help": "embedded | fixed | random | explore | oracle | openai ... (docs/planners.md)."
        },
    )
    # (the Literal is for type checkers; the runtime check uses OBJECTIVE_NAMES, a test keeps
    # the two equal)
    objective: Literal["balanced", "psnr", "ssim", "perceptual"] = field(
        default="balanced",
        metadata={
            "help": "What the plan optimises.",
            "choices": OBJECTIVE_NAMES,
            "error": "unknown objective {value!r}",
        },
    )
    mode: Literal["plan", "stepwise"] = field(
        default="plan",
        metadata={
            "help": "One plan executed in full, or replan after every step.",
            "choices": MODES,
        },
    )
    # human in the loop: the run pauses after planning (LangGraph's interrupt()) until the plan
    # is accepted, edited or rejected (docs/approval.md)
    approve: Literal["off", "first", "every"] = field(
        default="off",
        metadata={
            "help": "Ask for approval of the first plan, or of every plan and replan "
            "(docs/approval.md).",
            "choices": APPROVE_MODES,
        },
    )
    max_steps: int = field(
        default=8, metadata={"help": "Step budget (tool calls).", "bounds": (1, 100)}
    )
    max_rounds: int = field(default=4, metadata={"help": "Planning rounds."})
    max_tries: int = field(
        default=2,
        metadata={
            "help": "Tools tried per task at one point of the run: after this many are rolled "
            "back there, the task is skipped at that point (with a note); 0: no limit.",
            "bounds": (0, 100),
        },
    )
    toolbox: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "Only these tool ids (see `restoregraph tools list`; default: every tool).",
            "cli": {"metavar": "ID,ID,..."},
        },
    )
    accept_threshold: float = field(
        default=0.0, metadata={"help": "Reflection accepts a step whose gain exceeds this."}
    )
    quality_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of no-reference quality in the reflection gain."},
    )
    presence_threshold: int = field(
        default=1, metadata={"help": "Minimum perceived level that counts as present."}
    )
    # the learned step critic in reflection (restoregraph/metrics/step_critic.py); "veto" by
    # default: it catches most harmful requested steps on held-out photos; "decide" is opt-in
    # (better on average there, but it rolls back helpful dehazing on larger images)
    step_critic: Literal["off", "veto", "decide"] = field(
        default="veto",
        metadata={
            "help": "Learned step critic in reflection: veto = a requested step it predicts a "
            "loss for is not kept; decide = also keep/roll back planned steps by its "
            "prediction (docs/step_critic.md).",
            "choices": STEP_CRITIC_MODES,
        },
    )
    tool_timeout: float = field(
        default=600.0, metadata={"help": "Seconds before a tool call counts as failed."}
    )
    # None: $RESTOREGRAPH_MAX_PIXELS, or 50 MP
    max_pixels: int | None = field(
        default=None,
        metadata={"help": "Refuse larger images (default 50 MP).", "cli": {"type": int}},
    )
    seed: int = field(default=0, metadata={"help": "Same seed, same result."})
    store_dir: str = field(
        default="", metadata={"help": "Image store folder (default: $RESTOREGRAPH_HOME/store)."}
    )
    reference: str = field(default="", metadata={"help": "Clean reference (oracle planner only)."})
    planner_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Planner option, repeatable (e.g. -P base_url=http://127.0.0.1:8000/v1 "
            "-P model=planner -P timeout=120 for --planner openai, which falls back to "
            "embedded when the server fails; docs/planners.md).",
            "cli": {
                "flags": ("-P", "--planner-option", "planner_option"),
                "multiple": True,
                "metavar": "KEY=VALUE",
            },
        },
    )
    # Plan constraints (what a user asked for in words; restoregraph.chat fills them):
    forbidden_tasks: tuple[str, ...] = field(
        default=(),
        metadata={"help": 'Tasks never planned ("don\'t denoise", "keep the grain").'},
    )
    required_tasks: tuple[str, ...] = field(
        default=(), metadata={"help": "Tasks planned even when perception misses them."}
    )
    strength: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Task -> 1 mild, 2 normal, 3 strong."},
    )
    # Objects for library use (not serialised): a custom registry, planner or perceiver.
    registry: Any = field(
        default=None, metadata={"help": "A custom tool registry.", "serialise": False}
    )
    planner_obj: Any = field(
        default=None, metadata={"help": "A planner object.", "serialise": False}
    )
    perceiver: Any = field(
        default=None, metadata={"help": "A custom perceiver.", "serialise": False}
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            check_setting(f, getattr(self, f.name))
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
        """The serialisable settings (what a run's metadata records for resume): tuples as
        lists, dicts copied."""
        out: dict[str, Any] = {}
        for name in SERIALISED:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def bounds(cls, name: str) -> tuple[Any, Any]:
        """The ``(lo, hi)`` bounds of setting ``name`` (``max_steps``: ``(1, 100)``)."""
        lo, hi = RUN_FIELDS[name].metadata["bounds"]
        return lo, hi

    @classmethod
    def from_settings(cls, data: dict[str, Any]) -> RunContext:
        """The inverse of ``settings``: lists back to tuples."""
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**kwargs)


def check_setting(f: Field[Any], value: Any) -> None:
    """Raise ``RestoreGraphError`` when ``value`` breaks the bounds or choices of field ``f``."""
    meta = f.metadata
    if "bounds" in meta:
        lo, hi = meta["bounds"]
        if not lo <= value <= hi:
            template = meta.get("error", "{name} must be within {lo}..{hi}, got {value}")
            raise RestoreGraphError(template.format(name=f.name, value=value, lo=lo, hi=hi))
    if "choices" in meta and value not in meta["choices"]:
        *first, last = (repr(c) for c in meta["choices"])
        either = f"{', '.join(first)} or {last}" if first else last
        template = meta.get("error", "{name} must be {either}, got {value!r}")
        raise RestoreGraphError(template.format(name=f.name, value=value, either=either))


# RunContext's fields by name, and the names of those ``settings()`` records, in field order.
RUN_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(RunContext)}
SERIALISED: tuple[str, ...] = tuple(
    name for name, f in RUN_FIELDS.items() if f.metadata.get("serialise", True)
)
