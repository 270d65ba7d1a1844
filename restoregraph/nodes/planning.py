"""Planning: ask the configured planner for a plan; validate every tool id against the toolbox;
enforce the user's constraints (forbidden / required tasks) whatever the planner said. With
``RunContext.approve`` on, the plan goes to the approval node (a person) before execution."""

from __future__ import annotations

import logging
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from restoregraph.core.errors import PlanError, StoreError
from restoregraph.core.settings import RunContext
from restoregraph.core.state import RestoreState
from restoregraph.core.timing import timed
from restoregraph.nodes.approval import needs_approval
from restoregraph.nodes.common import emit
from restoregraph.nodes.resources import get_planner, get_registry, get_store, run_context
from restoregraph.planners import (
    Plan,
    Planner,
    PlanRequest,
    apply_constraints,
    untooled_tasks,
    validate_steps,
)
from restoregraph.planners import (
    get_planner as make_planner,
)

log = logging.getLogger(__name__)


def build_request(state: RestoreState, ctx: RunContext) -> PlanRequest:
    store = get_store(ctx)
    current = state["current"]
    reference = None
    if ctx.reference:
        from restoregraph.imageio import load_image

        reference = load_image(ctx.reference, max_pixels=ctx.max_pixels)
    return PlanRequest(
        perception=dict(state.get("perception", {})),
        toolbox=get_registry(ctx),
        history=list(state.get("history", [])),
        failed=list(state.get("failed", [])),
        objective=ctx.objective,
        seed=ctx.seed,
        instruction=state.get("instruction", ""),
        load_image=lambda: store.get(current),
        reference=reference,
        forbidden_tasks=tuple(ctx.forbidden_tasks),
        required_tasks=tuple(ctx.required_tasks),
        strength=dict(ctx.strength),
        max_tries=ctx.max_tries,
    )


def _ask(planner: Planner, request: PlanRequest) -> Plan:
    plan = planner.plan(request)
    steps = validate_steps(plan.steps, request.toolbox)
    done = request.done_tasks()
    steps = apply_constraints([s for s in steps if s["task"] not in done], request)
    while steps and request.is_forbidden(steps[0]["tool"]):
        steps.pop(0)
    return Plan(steps=steps, note=plan.note)


@timed("planning")
def planning(
    state: RestoreState, runtime: Runtime[RunContext]
) -> Command[Literal["approval", "execution", "__end__"]]:
    ctx = run_context(runtime)
    request = build_request(state, ctx)
    rounds = state.get("rounds", 0) + 1
    try:
        plan = _ask(get_planner(ctx), request)
    except StoreError:  # a damaged or changed stored image stops the run, whatever the planner
        raise
    except Exception as exc:  # a broken planner falls back to the expert rules
        reason = str(exc) if isinstance(exc, PlanError) else f"{type(exc).__name__}: {exc}"
        reason = " ".join(reason.split())[:200]  # one short line, whatever the planner raised
        log.warning("planner %r failed (%s); falling back to 'fixed'", ctx.planner, reason)
        plan = _ask(make_planner("fixed"), request)
        plan.note = f"planner {ctx.planner!r} failed ({reason}); fell back to fixed"
    if ctx.mode == "stepwise":
        plan = Plan(steps=plan.steps[:1], note=plan.note)
    missing = untooled_tasks(request)
    if missing:  # a degradation the toolbox cannot undo yet (e.g. deraindrop): say so
        skipped = f"no tool for {', '.join(missing)} in the toolbox: skipped"
        plan.note = f"{plan.note}; {skipped}" if plan.note else skipped
    emit("plan", plan=plan.text, note=plan.note, round=rounds, steps=len(plan.steps))
    update: dict[str, Any] = {
        "plan": plan.steps,
        "plan_text": plan.text,
        "planner_note": plan.note,
        "planner_notes": [f"round {rounds}: {plan.note}"] if plan.note else [],
        "rounds": rounds,
    }
    if plan.stop:
        update["stop_reason"] = "planner stopped: no remaining degradation to restore" + (
            f" (no tool for {', '.join(missing)})" if missing else ""
        )
        return Command(update=update, goto="__end__")
    if needs_approval(state, ctx):
        return Command(update=update, goto="approval")
    return Command(update=update, goto="execution")
