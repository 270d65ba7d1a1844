"""The state schema of the restoration graph (one place).

State holds image *references* only (``ImageRef``), never pixels: images live in the
content-addressed ``ImageStore`` (restoregraph.store.images).
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, NotRequired, TypedDict


class ImageRef(TypedDict):
    """A pointer to an image in the content-addressed store."""

    uri: str  # file path of the stored image
    sha256: str  # hash of the pixel content (also the file's name)
    shape: list[int]  # [H, W, 3]


class PlanStep(TypedDict):
    task: str  # e.g. "denoise"
    tool: str  # full tool id, e.g. "denoise.nlmeans"


StepStatus = Literal["accepted", "rolled_back", "failed"]


class StepRecord(TypedDict):
    """One executed tool call and what reflection decided about it."""

    index: int  # 1-based position in the run (counts every attempt)
    position: int  # how many accepted steps preceded it (where in the pipeline it ran)
    tool: str
    task: str
    status: StepStatus
    reason: str
    input: ImageRef
    output: ImageRef | None
    severity_before: dict[str, float]
    severity_after: dict[str, float]
    quality_before: float
    quality_after: float
    seconds: float


class FailedAttempt(TypedDict):
    tool: str
    position: int
    reason: str


class RestoreInput(TypedDict):
    """What a caller gives the graph."""

    image: str  # path of the image to restore
    instruction: NotRequired[str]


class RestoreOutput(TypedDict):
    """What a caller gets back."""

    current: ImageRef
    history: list[StepRecord]
    plan_text: str
    stop_reason: str
    perception: dict[str, int]


class RestoreState(TypedDict):
    """The full internal state."""

    image: str
    instruction: NotRequired[str]
    original: NotRequired[ImageRef]
    current: NotRequired[ImageRef]
    perception: NotRequired[dict[str, int]]  # degradation type -> severity 0..3
    severity: NotRequired[dict[str, float]]  # type -> expected severity (prob-weighted)
    quality: NotRequired[float]  # no-reference quality of ``current`` (higher is better)
    plan: NotRequired[list[PlanStep]]  # remaining steps
    plan_text: NotRequired[str]
    planner_note: NotRequired[str]
    planner_notes: Annotated[list[str], operator.add]  # every round's note (fallbacks...), kept
    candidate: NotRequired[ImageRef | None]  # execution output awaiting reflection
    pending: NotRequired[PlanStep | None]  # the step being executed
    pending_error: NotRequired[str]
    pending_seconds: NotRequired[float]
    history: Annotated[list[StepRecord], operator.add]
    failed: Annotated[list[FailedAttempt], operator.add]
    rounds: NotRequired[int]  # planning rounds so far
    stop_reason: NotRequired[str]
    abandoned: NotRequired[list[str]]  # summaries of branches undone by the user
