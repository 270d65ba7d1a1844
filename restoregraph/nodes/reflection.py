"""Reflection: did the step make the image better? Accept it, or roll back to the image before it.

The gain of a step is the drop in the perceived severity of the step's own degradation, minus
any rise of the others (side effects), plus ``quality_weight`` times the change in
no-reference quality. Accept if the gain exceeds ``accept_threshold`` and the
step's own target degradation did not get worse; otherwise roll back (the current image stays the
one before the step) and record the failed attempt so rescheduling does not retry it there.

A step the user asked for (a task in ``RunContext.required_tasks``: "make it brighter") is
judged differently: it is kept unless it newly clips more than 1 % of the pixels or moves the
mean colour beyond a stated bound (``restoregraph.metrics.safety``), whatever perception thinks
of it; the reason names the check either way.

The learned step critic (``restoregraph.metrics.step_critic``: a step's PSNR gain predicted from
its features before/after, docs/step_critic.md) joins in by ``RunContext.step_critic``: ``veto``
(the default) also rolls back a requested step it predicts a clear loss for (the reason says
so); ``decide`` (opt-in; it implies ``veto``) also keeps or rolls back planned steps of the tasks
where it beat the rule on validation photos (the weights' ``decide_tasks``) by its prediction, and
leaves the other tasks to the rule; ``off`` is the rule alone. Without its weights, the rule decides and
the reason says the critic is unavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.runtime import Runtime

from restoregraph.core.settings import RunContext
from restoregraph.core.state import FailedAttempt, RestoreState, StepRecord
from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE
from restoregraph.core.timing import timed
from restoregraph.nodes.common import assess, carried_levels, emit, present_levels
from restoregraph.nodes.resources import get_store, run_context

if TYPE_CHECKING:
    from restoregraph.metrics.step_critic import StepCritic


def judge(
    task: str,
    before: dict[str, float],
    after: dict[str, float],
    quality_before: float,
    quality_after: float,
    ctx: RunContext,
) -> tuple[bool, str]:
    """Return (accept, reason) for one step from the severities and qualities around it."""
    targets = [t for t, tk in TASK_FOR_PERCEPTION_TYPE.items() if tk == task]
    target_drop = sum(before.get(t, 0.0) - after.get(t, 0.0) for t in targets)
    # Side effects count only when they make another degradation worse: a tool gets no credit
    # for other types that merely look weaker next to its own (noise masks rain, say).
    side_rise = sum(
        max(0.0, after.get(t, 0.0) - before.get(t, 0.0)) for t in after if t not in targets
    )
    dq = quality_after - quality_before
    gain = target_drop - side_rise + ctx.quality_weight * dq
    detail = (
        f"{'/'.join(targets)} severity {sum(before.get(t, 0.0) for t in targets):.2f}->"
        f"{sum(after.get(t, 0.0) for t in targets):.2f}, side effects +{side_rise:.2f}, "
        f"quality {dq:+.3f}"
    )
    if target_drop < -0.25:
        return False, f"made its own degradation worse ({detail})"
    if gain > ctx.accept_threshold:
        return True, f"improved ({detail})"
    return False, f"did not improve the image ({detail})"


def judge_requested(before: np.ndarray, after: np.ndarray, task: str = "") -> tuple[bool, str]:
    """A step the user asked for: kept unless it damaged the photo (clipping, colour shift
    beyond the task's bound: ``restoregraph.metrics.safety.limits_for``)."""
    from restoregraph.metrics.safety import limits_for, safety_problem

    problem = safety_problem(before, after, limits_for(task))
    if problem:
        return False, f"requested, but not kept: {problem}"
    return True, "requested: kept (no new clipping, no colour shift beyond the bound)"


def critic_gain(
    task: str,
    before_img: np.ndarray,
    after_img: np.ndarray,
    state: RestoreState,
    after: dict[str, float],
    q_after: float,
) -> tuple[float, StepCritic]:
    """The step critic's predicted PSNR gain (dB) of a step, and the critic. Raises
    ``ToolError`` when its weights are missing or unreadable."""
    from restoregraph.metrics.step_critic import load_step_critic, step_features

    critic = load_step_critic()
    seen = any(
        state.get("perception", {}).get(t, 0) >= 1
        for t, tk in TASK_FOR_PERCEPTION_TYPE.items()
        if tk == task
    )
    feats = step_features(
        task,
        before_img,
        after_img,
        dict(state.get("severity", {})),
        after,
        float(state.get("quality", 0.0)),
        q_after,
        seen,
    )
    return float(critic.predict(feats)), critic


def critic_veto(
    task: str,
    before_img: np.ndarray,
    after_img: np.ndarray,
    state: RestoreState,
    after: dict[str, float],
    q_after: float,
    reason: str,
) -> tuple[bool, str]:
    """A requested step that passed the safety checks: rolled back when the step critic predicts
    a loss (the reason says so); kept as it was when the critic is unavailable."""
    from restoregraph.core.errors import ToolError

    try:
        gain, critic = critic_gain(task, before_img, after_img, state, after, q_after)
    except ToolError as exc:
        return True, f"{reason}; step critic unavailable ({exc})"
    if critic.vetoes(gain):
        return False, f"requested, but not kept: the step critic predicts a loss ({gain:+.2f} dB)"
    return True, f"{reason}; the step critic predicts {gain:+.2f} dB"


def judge_with_critic(
    task: str,
    load_before: Callable[[], np.ndarray],
    after_img: np.ndarray,
    state: RestoreState,
    after: dict[str, float],
    q_after: float,
    ctx: RunContext,
) -> tuple[bool, str]:
    """A step perception planned, of a task the step critic decides (``decide_tasks``: where it
    beat the rule on the validation photos): kept when it predicts a gain above its threshold.
    The rule decides the other tasks, and every task when the critic is unavailable.
    ``load_before`` reads the image before the step, only when the critic judges it."""
    from restoregraph.core.errors import ToolError
    from restoregraph.metrics.step_critic import load_step_critic

    before = dict(state.get("severity", {}))
    q_before = float(state.get("quality", 0.0))
    try:
        if task not in load_step_critic().decide_tasks:
            return judge(task, before, after, q_before, q_after, ctx)
        gain, critic = critic_gain(task, load_before(), after_img, state, after, q_after)
    except ToolError as exc:
        accept, reason = judge(task, before, after, q_before, q_after, ctx)
        return accept, f"{reason}; step critic unavailable ({exc})"
    if critic.keeps(gain):
        return True, f"improved: the step critic predicts {gain:+.2f} dB"
    return False, f"did not improve the image: the step critic predicts {gain:+.2f} dB"


@timed("reflection")
def reflection(state: RestoreState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    step = state["pending"]
    assert step is not None
    history = state.get("history", [])
    position = sum(1 for h in history if h["status"] == "accepted")
    before = dict(state.get("severity", {}))
    q_before = float(state.get("quality", 0.0))
    candidate = state.get("candidate")
    update: dict[str, Any] = {"pending": None, "candidate": None, "pending_error": ""}
    record = StepRecord(
        index=len(history) + 1,
        position=position,
        tool=step["tool"],
        task=step["task"],
        status="failed",
        reason=state.get("pending_error", "") or "tool failed",
        input=state["current"],
        output=candidate,
        severity_before=before,
        severity_after=before,
        quality_before=q_before,
        quality_after=q_before,
        seconds=float(state.get("pending_seconds", 0.0)),
    )
    if candidate is not None:
        image = get_store(ctx).get(candidate)
        result, q_after = assess(ctx, image, candidate["sha256"])
        after = result.severity
        if step["task"] in ctx.required_tasks:
            before_img = get_store(ctx).get(state["current"])
            accept, reason = judge_requested(before_img, image, step["task"])
            if accept and ctx.step_critic in ("veto", "decide"):
                accept, reason = critic_veto(
                    step["task"], before_img, image, state, after, q_after, reason
                )
        elif ctx.step_critic == "decide":
            accept, reason = judge_with_critic(
                step["task"],
                lambda: get_store(ctx).get(state["current"]),
                image,
                state,
                after,
                q_after,
                ctx,
            )
        else:
            accept, reason = judge(step["task"], before, after, q_before, q_after, ctx)
        record["status"] = "accepted" if accept else "rolled_back"
        record["reason"] = reason
        record["severity_after"] = after
        record["quality_after"] = q_after
        if accept:
            update.update(
                current=candidate,
                severity=after,
                quality=q_after,
                perception=carried_levels(
                    present_levels(result, ctx.presence_threshold), state.get("perception", {})
                ),
            )
    if record["status"] != "accepted":
        update["failed"] = [
            FailedAttempt(tool=step["tool"], position=position, reason=record["reason"])
        ]
    update["history"] = [record]
    emit(
        "reflection",
        index=record["index"],
        tool=step["tool"],
        status=record["status"],
        reason=record["reason"],
    )
    return update
