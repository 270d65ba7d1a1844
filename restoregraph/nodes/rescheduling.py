"""Rescheduling: go on with the plan, replan (after a rollback or when the plan is done but
degradations remain), or stop. The step budget bounds every run."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from restoregraph.core.settings import RunContext
from restoregraph.core.state import RestoreState
from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE
from restoregraph.nodes.resources import run_context


def remaining_tasks(state: RestoreState) -> set[str]:
    done = {h["task"] for h in state.get("history", []) if h["status"] == "accepted"}
    needed = {TASK_FOR_PERCEPTION_TYPE[t] for t in state.get("perception", {})}
    return needed - done


Route = Literal["execution", "planning", "__end__"]


def route(state: RestoreState, ctx: RunContext) -> tuple[Route, str]:
    """Return (next node, stop reason) — a pure function, unit-tested for every edge."""
    history = state.get("history", [])
    if len(history) >= ctx.max_steps:
        return "__end__", f"step budget of {ctx.max_steps} reached"
    last = history[-1] if history else None
    rolled_back = last is not None and last["status"] != "accepted"
    if ctx.mode == "stepwise" or rolled_back:
        if state.get("rounds", 0) >= ctx.max_rounds + len(history):
            return "__end__", "planning round limit reached"
        return "planning", ""
    if state.get("plan"):
        return "execution", ""
    if remaining_tasks(state) and state.get("rounds", 0) < ctx.max_rounds:
        return "planning", ""
    return "__end__", "plan complete"


def rescheduling(
    state: RestoreState, runtime: Runtime[RunContext]
) -> Command[Literal["execution", "planning", "__end__"]]:
    goto, reason = route(state, run_context(runtime))
    update: dict[str, Any] = {}
    if goto == "__end__":
        update["stop_reason"] = reason
    return Command(update=update, goto=goto)
