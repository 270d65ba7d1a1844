"""Routing of every edge, and the drawn graph's edges match the routes the code can take."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END

from restoregraph.core.settings import RunContext
from restoregraph.graph.builder import compile_graph
from restoregraph.nodes.reflection import judge
from restoregraph.nodes.rescheduling import route

REF = {"uri": "x", "sha256": "0" * 64, "shape": [8, 8, 3]}


def rec(tool: str, status: str, index: int = 1) -> dict[str, Any]:
    return {
        "index": index,
        "position": 0,
        "tool": tool,
        "task": tool.split(".")[0],
        "status": status,
        "reason": "",
        "input": REF,
        "output": REF,
        "severity_before": {},
        "severity_after": {},
        "quality_before": 0.0,
        "quality_after": 0.0,
        "seconds": 0.0,
    }


def test_continue_plan_after_accepted_step() -> None:
    state: Any = {
        "history": [rec("denoise.tv", "accepted")],
        "plan": [{"task": "dejpeg", "tool": "dejpeg.deblock"}],
        "rounds": 1,
    }
    assert route(state, RunContext()) == ("execution", "")


def test_replan_after_rollback() -> None:
    state: Any = {
        "history": [rec("denoise.tv", "rolled_back")],
        "plan": [{"task": "dejpeg", "tool": "dejpeg.deblock"}],
        "rounds": 1,
    }
    assert route(state, RunContext())[0] == "planning"


def test_replan_after_failed_tool() -> None:
    state: Any = {"history": [rec("denoise.tv", "failed")], "plan": [], "rounds": 1}
    assert route(state, RunContext())[0] == "planning"


def test_stop_when_plan_done_and_nothing_remains() -> None:
    state: Any = {
        "history": [rec("denoise.tv", "accepted")],
        "plan": [],
        "perception": {"noise": 1},
        "rounds": 1,
    }
    assert route(state, RunContext()) == (END, "plan complete")


def test_replan_when_plan_done_but_degradations_remain() -> None:
    state: Any = {
        "history": [rec("denoise.tv", "accepted")],
        "plan": [],
        "perception": {"haze": 2},
        "rounds": 1,
    }
    assert route(state, RunContext())[0] == "planning"


def test_round_limit_stops_replanning() -> None:
    state: Any = {
        "history": [rec("denoise.tv", "accepted")],
        "plan": [],
        "perception": {"haze": 2},
        "rounds": 4,
    }
    assert route(state, RunContext(max_rounds=4)) == (END, "plan complete")


def test_step_budget_stops() -> None:
    hist = [rec("denoise.tv", "accepted", i) for i in range(1, 4)]
    state: Any = {"history": hist, "plan": [{"task": "dejpeg", "tool": "dejpeg.deblock"}]}
    goto, reason = route(state, RunContext(max_steps=3))
    assert goto == END and "budget" in reason


def test_stepwise_always_replans() -> None:
    state: Any = {
        "history": [rec("denoise.tv", "accepted")],
        "plan": [{"task": "dejpeg", "tool": "dejpeg.deblock"}],
        "rounds": 1,
    }
    assert route(state, RunContext(mode="stepwise"))[0] == "planning"


def test_judge_accepts_improvement_and_rejects_harm() -> None:
    ctx = RunContext()
    ok, _ = judge("denoise", {"noise": 2.5, "jpeg": 1.0}, {"noise": 0.3, "jpeg": 1.0}, 0, 0, ctx)
    assert ok
    bad, why = judge("denoise", {"noise": 1.0}, {"noise": 2.0}, 0, 0, ctx)
    assert not bad and "worse" in why
    flat, _ = judge("dehaze", {"haze": 0.0}, {"haze": 0.0}, 0.0, -1.0, ctx)
    assert not flat


def test_drawn_edges_match_routes() -> None:
    g = compile_graph().get_graph()
    edges = {(e.source, e.target, bool(e.conditional)) for e in g.edges}
    assert edges == {
        ("__start__", "perception", False),
        ("perception", "planning", False),
        ("planning", "execution", True),
        ("planning", "__end__", True),
        ("planning", "approval", True),
        ("approval", "execution", True),
        ("approval", "__end__", True),
        ("execution", "reflection", False),
        ("reflection", "rescheduling", False),
        ("rescheduling", "execution", True),
        ("rescheduling", "planning", True),
        ("rescheduling", "__end__", True),
    }
    # every target `route` can return is a drawn edge out of rescheduling
    targets = {t for s, t, _ in edges if s == "rescheduling"}
    assert {"execution", "planning", END} <= targets


def test_cli_objectives_match_metrics_and_context() -> None:
    import typing

    from restoregraph.cli.options import OBJECTIVE_NAMES
    from restoregraph.metrics import OBJECTIVES

    assert set(OBJECTIVE_NAMES) == set(OBJECTIVES)
    hints = typing.get_type_hints(RunContext)
    assert set(typing.get_args(hints["objective"])) == set(OBJECTIVES)
