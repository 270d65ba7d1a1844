"""Planning: ask the configured planner for a plan; validate every tool id against the toolbox;
enforce the user's constraints (forbidden / required tasks) whatever the planner said."""

from __future__ import annotations

import logging
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from restoregraph.core.errors import PlanError
from restoregraph.core.settings import RunContext
from restoregraph.core.state import PlanStep, RestoreState
from restoregraph.graph.resources import get_planner, get_registry, get_store
from restoregraph.nodes.common import emit
from restoregraph.planners._common import needed_tasks
from restoregraph.planners.base import Plan, PlanRequest, validate_steps

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
    )


def apply_constraints(steps: list[PlanStep], request: PlanRequest) -> list[PlanStep]:
    """Enforce the user's constraints on any planner's steps: drop forbidden tasks, and add a
    required task the plan left out (the fixed rule's tool, at its place in the fixed order)."""
    from restoregraph.planners.fixed import FIXED_ORDER, choose_tool

    steps = [s for s in steps if s["task"] not in request.forbidden_tasks]
    planned = {s["task"] for s in steps}
    needed = needed_tasks(request)
    rank = {t: i for i, t in enumerate(FIXED_ORDER)}
    for task in request.required_tasks:
        if task in planned or task not in needed:
            continue
        spec = choose_tool(request, task, needed[task])
        if spec is None:
            continue
        at = next(
            (i for i, s in enumerate(steps) if rank.get(s["task"], 99) > rank.get(task, 99)),
            len(steps),
        )
        steps.insert(at, PlanStep(task=task, tool=spec.id))
    return steps


def _ask(planner: Any, request: PlanRequest) -> Plan:
    plan = planner.plan(request)
    steps = validate_steps(plan.steps, request.toolbox)
    done = request.done_tasks()
    steps = apply_constraints([s for s in steps if s["task"] not in done], request)
    while steps and request.is_forbidden(steps[0]["tool"]):
        steps.pop(0)
    return Plan(steps=steps, note=plan.note)


def planning(
    state: RestoreState, runtime: Runtime[RunContext]
) -> Command[Literal["execution", "__end__"]]:
    ctx = runtime.context
    request = build_request(state, ctx)
    rounds = state.get("rounds", 0) + 1
    try:
        plan = _ask(get_planner(ctx), request)
    except Exception as exc:  # a broken planner falls back to the expert rules
        from restoregraph.planners import get_planner as make

        reason = str(exc) if isinstance(exc, PlanError) else f"{type(exc).__name__}: {exc}"
        reason = " ".join(reason.split())[:200]  # one short line, whatever the planner raised
        log.warning("planner %r failed (%s); falling back to 'fixed'", ctx.planner, reason)
        plan = _ask(make("fixed"), request)
        plan.note = f"planner {ctx.planner!r} failed ({reason}); fell back to fixed"
    if ctx.mode == "stepwise":
        plan = Plan(steps=plan.steps[:1], note=plan.note)
    emit("plan", plan=plan.text, note=plan.note, round=rounds, steps=len(plan.steps))
    update: dict[str, Any] = {
        "plan": plan.steps,
        "plan_text": plan.text,
        "planner_note": plan.note,
        "planner_notes": [f"round {rounds}: {plan.note}"] if plan.note else [],
        "rounds": rounds,
    }
    if plan.stop:
        update["stop_reason"] = "planner stopped: no remaining degradation to restore"
        return Command(update=update, goto="__end__")
    return Command(update=update, goto="execution")
