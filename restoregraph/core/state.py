"""The state schema of the restoration graph (one place).

State holds image *references* only (``ImageRef``), never pixels: images live in the
content-addressed ``ImageStore`` (restoregraph.store.images).

The schemas are ``typing_extensions.TypedDict`` (pydantic builds JSON schemas from it on Python
< 3.12, ``typing.TypedDict`` it refuses) so that ``compile_graph().get_input_jsonschema()`` and
``get_output_jsonschema()`` work, which LangGraph Studio's input form needs. A field's docstring
(the string literal under it) is its description in those schemas (pydantic's
``use_attribute_docstrings``, set below without importing pydantic).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from typing_extensions import TypedDict


class ImageRef(TypedDict):
    """A pointer to an image in the content-addressed store."""

    uri: str
    """File path of the stored image."""
    sha256: str
    """Hash of the pixel content (also the file's name)."""
    shape: list[int]
    """[height, width, 3]."""


class PlanStep(TypedDict):
    """One step of a plan: a task and the tool that does it."""

    task: str
    """The task, e.g. "denoise"."""
    tool: str
    """The full tool id, e.g. "denoise.nlmeans"."""


StepStatus = Literal["accepted", "rolled_back", "failed"]


class StepRecord(TypedDict):
    """One executed tool call and what reflection decided about it."""

    index: int
    """1-based position in the run (counts every attempt)."""
    position: int
    """How many accepted steps preceded it (where in the pipeline it ran)."""
    tool: str
    """The tool id."""
    task: str
    """The task the tool does."""
    status: StepStatus
    """accepted, rolled_back (reflection undid it) or failed (the tool raised or timed out)."""
    reason: str
    """Why reflection decided so."""
    input: ImageRef
    """The image the tool got."""
    output: ImageRef | None
    """The image it made (None when it failed)."""
    severity_before: dict[str, float]
    """Degradation type -> expected severity before the step."""
    severity_after: dict[str, float]
    """Degradation type -> expected severity after the step."""
    quality_before: float
    """No-reference quality before the step (higher is better)."""
    quality_after: float
    """No-reference quality after the step."""
    seconds: float
    """How long the tool ran."""


class FailedAttempt(TypedDict):
    """A tool that failed or was rolled back at a position (not planned there again)."""

    tool: str
    position: int
    reason: str


class PlanApproval(TypedDict):
    """A person's answer to a plan (``RunContext.approve``; docs/approval.md)."""

    round: int
    """The planning round whose plan was reviewed."""
    action: Literal["accept", "edit", "reject"]
    """What the person decided."""
    proposed: list[str]
    """The planner's tool ids."""
    plan: list[str]
    """The tool ids that run (empty when rejected)."""
    reason: str
    """The reason given with a rejection, if any."""


class RestoreInput(TypedDict):
    """What a caller gives the graph."""

    image: str
    """Path of the image to restore (PNG, JPEG, TIFF, WebP...)."""
    instruction: NotRequired[str]
    """What to do, in words (e.g. "remove the grain but keep the colours"); the LLM planners
    read it. Given to the graph directly it sets no plan constraints: restoregraph.restore, the
    CLI and the web app route it into the context's forbidden_tasks, required_tasks and
    strength."""


class RestoreOutput(TypedDict):
    """What a caller gets back."""

    current: ImageRef
    """The restored image (in the image store)."""
    history: list[StepRecord]
    """Every executed step, accepted or not."""
    plan_text: str
    """The last plan, in words."""
    stop_reason: str
    """Why the run stopped."""
    perception: dict[str, int]
    """Degradation type -> perceived level 0..3 of the restored image."""


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
    approved_round: NotRequired[int]  # last round whose plan a person reviewed (approve)
    approvals: NotRequired[list[PlanApproval]]  # every review: accepted, edited, rejected


# What ``pydantic.with_config(ConfigDict(use_attribute_docstrings=True))`` would set: the field
# docstrings above become descriptions in the JSON schemas (core imports no pydantic).
_SCHEMA_CONFIG: dict[str, Any] = {"use_attribute_docstrings": True}
_SCHEMAS: tuple[Any, ...] = (
    ImageRef,
    PlanStep,
    StepRecord,
    FailedAttempt,
    PlanApproval,
    RestoreInput,
    RestoreOutput,
    RestoreState,
)
for _schema in _SCHEMAS:
    _schema.__pydantic_config__ = _SCHEMA_CONFIG
del _schema
