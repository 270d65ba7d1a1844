"""Approval: a person accepts, edits or rejects the plan before it runs (``RunContext.approve``).

The node pauses the run with LangGraph's ``interrupt()``; its value (``approval_request``) holds
the plan and what perception saw. The run goes on when the caller resumes the thread with
``Command(resume=answer)`` (``Runner.approve`` does it for a run on disk):

* accept: ``True``, ``"accept"`` or ``{"action": "accept"}``: the plan runs as proposed;
* edit: ``{"action": "edit", "plan": ["denoise.tv", "dejpeg.deblock"]}`` (or a list of tool ids):
  these tools run instead, in this order (ids of the run's toolbox; ``{"task", "tool"}`` dicts
  are accepted too);
* reject: ``False``, ``"reject"`` or ``{"action": "reject", "reason": "..."}``: the run stops,
  nothing more is executed, and ``stop_reason`` says so.

An answer that is none of these (an unknown tool id, an empty edited plan) asks again: the next
interrupt's value carries the same plan and an ``error``. ``approve="first"`` asks once per
request (the first plan of a run, and again after ``Runner.continue_run`` or ``undo``);
``"every"`` asks before every plan and replan. See docs/approval.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from restoregraph.core.errors import PlanError
from restoregraph.core.settings import RunContext
from restoregraph.core.state import PlanApproval, PlanStep, RestoreState
from restoregraph.nodes.common import emit
from restoregraph.nodes.resources import get_registry, run_context
from restoregraph.planners import format_plan, validate_steps
from restoregraph.tools.registry import ToolRegistry

KIND = "plan_approval"
ANSWER_HELP = (
    'answer True or {"action": "accept"}, {"action": "edit", "plan": [tool ids]} or '
    '{"action": "reject", "reason": "..."}'
)
_ACCEPT = {"accept", "accepted", "approve", "approved", "yes", "ok"}
_REJECT = {"reject", "rejected", "no", "stop", "cancel"}


def needs_approval(state: RestoreState, ctx: RunContext) -> bool:
    """Whether the plan just made waits for a person: every plan (``every``), or the first of
    a request (``first``: no plan reviewed since the run started or was continued / undone)."""
    if ctx.approve == "every":
        return True
    return ctx.approve == "first" and not state.get("approved_round")


def approval_request(
    state: RestoreState, registry: ToolRegistry, error: str = ""
) -> dict[str, Any]:
    """The interrupt's value: what a person needs to decide (JSON-serialisable)."""
    return {
        "kind": KIND,
        "round": int(state.get("rounds", 0)),
        "plan": [dict(s) for s in state.get("plan", [])],
        "plan_text": state.get("plan_text", ""),
        "note": state.get("planner_note", ""),
        "perception": dict(state.get("perception", {})),
        "steps_done": len(state.get("history", [])),
        "tools": [spec.id for spec in registry],
        "error": error,
        "answers": ANSWER_HELP,
    }


def parse_answer(
    answer: Any, registry: ToolRegistry
) -> tuple[Literal["accept", "edit", "reject"], list[PlanStep], str]:
    """``(action, steps, reason)`` of a resume value; ``PlanError`` with a one-line message for
    anything else (front ends call it to check an answer before resuming)."""
    if answer is True or (isinstance(answer, str) and answer.strip().lower() in _ACCEPT):
        return "accept", [], ""
    if answer is False or (isinstance(answer, str) and answer.strip().lower() in _REJECT):
        return "reject", [], ""
    if isinstance(answer, Sequence) and not isinstance(answer, str | bytes):
        answer = {"action": "edit", "plan": list(answer)}
    if not isinstance(answer, Mapping):
        raise PlanError(f"not an answer to the plan: {answer!r}; {ANSWER_HELP}")
    action = str(answer.get("action", "")).strip().lower()
    if action in _ACCEPT:
        return "accept", [], ""
    if action in _REJECT:
        return "reject", [], " ".join(str(answer.get("reason", "")).split())[:200]
    if action != "edit":
        raise PlanError(f"unknown action {answer.get('action')!r}; {ANSWER_HELP}")
    raw = answer.get("plan")
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise PlanError('an edited plan needs "plan": a list of tool ids')
    if not raw:
        raise PlanError(
            'the edited plan is empty; give at least one tool id, or {"action": "reject"}'
        )
    items = [r if isinstance(r, Mapping) else {"tool": str(r).strip()} for r in raw]
    unknown = [str(i.get("tool")) for i in items if i.get("tool") not in registry]
    if unknown:
        raise PlanError(
            f"unknown tool id(s) {', '.join(repr(u) for u in unknown)}; "
            f"the toolbox has: {', '.join(spec.id for spec in registry)}"
        )
    return "edit", validate_steps([dict(i) for i in items], registry), ""


def approval(
    state: RestoreState, runtime: Runtime[RunContext]
) -> Command[Literal["execution", "__end__"]]:
    ctx = run_context(runtime)
    registry = get_registry(ctx)
    error = ""
    while True:  # a wrong answer asks again (replayed in order when the node resumes)
        answer = interrupt(approval_request(state, registry, error))
        try:
            action, steps, reason = parse_answer(answer, registry)
            break
        except PlanError as exc:
            error = str(exc)
    rounds = int(state.get("rounds", 0))
    proposed = [s["tool"] for s in state.get("plan", [])]
    if action == "accept":
        steps = list(state.get("plan", []))
    record = PlanApproval(
        round=rounds,
        action=action,
        proposed=proposed,
        plan=[s["tool"] for s in steps],
        reason=reason,
    )
    emit("approval", action=action, round=rounds, plan=format_plan(steps) if steps else "")
    update: dict[str, Any] = {
        "approved_round": rounds,
        "approvals": [*state.get("approvals", []), record],
    }
    if action == "reject":
        update["plan"] = []
        update["stop_reason"] = "plan rejected by the user" + (f": {reason}" if reason else "")
        return Command(update=update, goto="__end__")
    if action == "edit":
        update["plan"] = steps
        update["plan_text"] = format_plan(steps)
        update["planner_notes"] = [f"round {rounds}: plan edited by the user"]
    return Command(update=update, goto="execution")


_ID = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)+")
_YES = ("a", "accept", "approve", "yes", "y", "ok", "okay", "sure", "go", "run", "fine")
_YES_PHRASES = ("looks good", "sounds good", "go ahead", "do it", "lgtm")
_NO = ("r", "reject", "no", "n", "nope", "stop", "cancel", "abort")


def answer_from_text(text: str) -> Any:
    """A typed answer (the CLI prompt, a chat message) as a resume value, or None when the text
    is not one: ``a`` / ``yes`` / ``accept`` -> ``True``; ``r`` / ``no`` / ``reject`` [reason]
    -> a rejection with the rest as the reason; tool ids (``e denoise.tv, dejpeg.deblock``,
    ``use denoise.tv``) -> an edit. ``e`` or ``edit`` alone is None (ask for the ids)."""
    low = " ".join(text.lower().split())
    ids = _ID.findall(low)
    words = low.split(" ", 1)
    first = words[0].strip(".,!:;") if words[0] else ""
    rest = words[1].strip(" .,!:;-") if len(words) > 1 else ""
    if ids:
        return {"action": "edit", "plan": ids}
    if first in _NO:
        return (
            {"action": "reject", "reason": " ".join(text.split()[1:]).strip(" .,!:;-")}
            if rest
            else {"action": "reject"}
        )
    if first in _YES or low.startswith(_YES_PHRASES):
        return True
    return None


def question_text(request: dict[str, Any]) -> str:
    """The plan a run waits on, as a question for a person (chat, web app)."""
    plan = " -> ".join(s["tool"] for s in request.get("plan", []))
    seen = ", ".join(f"{k} {v}" for k, v in request.get("perception", {}).items()) or "nothing"
    return (
        f"Plan to approve (round {request.get('round')}): {plan} (perceived: {seen}). "
        "Reply yes to run it, no to cancel, or name the tools to run instead "
        "(e.g. denoise.tv, dejpeg.deblock)."
    )
