"""Human in the loop: the plan approval interrupt (RunContext.approve), resumed with
Command(resume=...) through a real SQLite checkpointer; the answers (accept, edit, reject, a
wrong answer); first vs every; and how editing state with update_state behaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langgraph.types import Command

from restoregraph.core.errors import InputError, PlanError
from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.graph import build_graph, compile_graph, make_checkpointer
from restoregraph.imageio import load_image, save_image
from restoregraph.nodes.approval import parse_answer
from restoregraph.runner import Runner
from restoregraph.tools import default_registry

FIXED: dict[str, Any] = {"planner": "fixed", "max_steps": 2}


@pytest.fixture
def noisy(tmp_path: Path, astronaut_192: np.ndarray) -> Path:
    img, _ = apply_mixture(astronaut_192[48:144, 48:144], [("noise", 2)], seed=0)
    return save_image(img, tmp_path / "in.png")


def tools(history: list[Any]) -> list[str]:
    return [h["tool"] for h in history]


# --- the answers ------------------------------------------------------------------------------


def test_parse_answer_accepts_edits_and_rejects() -> None:
    reg = default_registry()
    assert parse_answer(True, reg)[0] == "accept"
    assert parse_answer({"action": "accept"}, reg)[0] == "accept"
    assert parse_answer(" Accept ", reg)[0] == "accept"
    action, steps, _ = parse_answer(
        {"action": "edit", "plan": ["denoise.tv", "dejpeg.deblock"]}, reg
    )
    assert action == "edit"
    assert steps == [
        {"task": "denoise", "tool": "denoise.tv"},
        {"task": "dejpeg", "tool": "dejpeg.deblock"},
    ]
    assert parse_answer(["denoise.tv"], reg)[1] == [{"task": "denoise", "tool": "denoise.tv"}]
    assert parse_answer({"action": "reject", "reason": "too  slow"}, reg) == (
        "reject",
        [],
        "too slow",
    )
    assert parse_answer(False, reg)[0] == "reject"
    with pytest.raises(PlanError, match=r"unknown tool id\(s\) 'denoise\.magic'"):
        parse_answer({"action": "edit", "plan": ["denoise.tv", "denoise.magic"]}, reg)
    with pytest.raises(PlanError, match="empty"):
        parse_answer({"action": "edit", "plan": []}, reg)
    with pytest.raises(PlanError, match="unknown action"):
        parse_answer({"action": "maybe"}, reg)
    with pytest.raises(PlanError, match="not an answer"):
        parse_answer(42, reg)
    # edited plans are checked against the run's toolbox, not every installed tool
    with pytest.raises(PlanError, match="unknown tool"):
        parse_answer(["denoise.nlmeans"], reg.subset(["denoise.tv"]))


# --- through the Runner (SQLite checkpointer on disk) --------------------------------------------


def test_first_plan_waits_then_accept_runs_it(home: Path, noisy: Path, tmp_path: Path) -> None:
    runner = Runner(home)
    out = tmp_path / "out.png"
    first = runner.start(noisy, out, RunContext(approve="first", **FIXED), run_id="acc")
    request = first.approval
    assert request is not None and request["kind"] == "plan_approval"
    assert request["round"] == 1 and request["plan"] and request["plan"][0]["task"] == "denoise"
    assert request["perception"].get("noise", 0) >= 1 and request["error"] == ""
    assert "denoise.tv" in request["tools"] and request["plan_text"]
    assert first.history == [] and first.output is None and not out.exists()  # nothing executed
    assert runner.meta("acc")["finished"] is False
    # a fresh Runner (another process) on the same SQLite file sees the same pending plan
    again = Runner(home).resume("acc")
    assert again.approval == request and again.history == []
    done = Runner(home).approve("acc", True)
    assert done.approval is None  # "first": the replans after it are not asked
    assert tools(done.history)[0] == request["plan"][0]["tool"]
    assert done.output == out and out.exists() and runner.meta("acc")["finished"] is True
    assert done.state["approvals"][0]["action"] == "accept"
    with pytest.raises(InputError, match="not waiting"):
        runner.approve("acc", True)


def test_edit_runs_the_edited_plan_and_a_wrong_edit_runs_nothing(home: Path, noisy: Path) -> None:
    runner = Runner(home)
    first = runner.start(noisy, None, RunContext(approve="first", **FIXED), run_id="edit")
    assert first.approval is not None
    with pytest.raises(PlanError, match="unknown tool id"):
        runner.approve("edit", {"action": "edit", "plan": ["denoise.nope"]})
    assert runner.resume("edit").approval == first.approval  # still waiting, nothing ran
    done = runner.approve("edit", {"action": "edit", "plan": ["denoise.bilateral"]})
    assert tools(done.history)[0] == "denoise.bilateral"
    record = done.state["approvals"][0]
    assert record["action"] == "edit" and record["plan"] == ["denoise.bilateral"]
    assert record["proposed"] == [s["tool"] for s in first.approval["plan"]]
    assert "round 1: plan edited by the user" in done.state["planner_notes"]


def test_reject_stops_with_a_reason_and_nothing_executed(home: Path, noisy: Path) -> None:
    runner = Runner(home)
    runner.start(noisy, None, RunContext(approve="first", **FIXED), run_id="rej")
    done = runner.approve("rej", {"action": "reject", "reason": "keep the grain"})
    assert done.history == [] and done.approval is None
    assert done.state["stop_reason"] == "plan rejected by the user: keep the grain"
    assert runner.meta("rej")["finished"] is True
    assert load_image(done.state["current"]["uri"]).shape == load_image(noisy).shape


def test_every_asks_before_each_replan(home: Path, noisy: Path) -> None:
    runner = Runner(home)
    ctx = RunContext(approve="every", mode="stepwise", planner="fixed", max_steps=2)
    result = runner.start(noisy, None, ctx, run_id="every")
    rounds = []
    while result.approval is not None:
        rounds.append(result.approval["round"])
        result = runner.approve("every", True)
    assert rounds == [1, 2] and len(result.history) == 2
    assert [a["round"] for a in result.state["approvals"]] == [1, 2]


def test_continue_run_asks_again_with_first(home: Path, noisy: Path) -> None:
    runner = Runner(home)
    result = runner.start(noisy, None, RunContext(approve="first", **FIXED), run_id="cont")
    result = runner.approve("cont", True)
    assert result.approval is None
    more = runner.continue_run("cont", instruction="sharpen it", required_tasks=("deblur",))
    assert more.approval is not None and more.approval["plan"][0]["task"] == "deblur"


def test_approval_off_never_interrupts(home: Path, noisy: Path) -> None:
    result = Runner(home).start(noisy, None, RunContext(**FIXED), run_id="off")
    assert result.approval is None and result.history
    assert "approved_round" not in result.state and "approvals" not in result.state


# --- the compiled graph, as LangGraph users drive it ----------------------------------------------


def test_graph_interrupt_and_command_resume(home: Path, noisy: Path) -> None:
    cp = home / "cp.sqlite"
    home.mkdir(parents=True, exist_ok=True)
    graph = compile_graph(make_checkpointer(cp))
    config: Any = {"configurable": {"thread_id": "g"}}
    context = {"planner": "fixed", "max_steps": 1, "approve": "first"}
    out = graph.invoke({"image": str(noisy)}, config, context=context)
    (pending,) = out["__interrupt__"]
    assert pending.value["plan"] and graph.get_state(config).next == ("approval",)
    # an unknown tool id asks again, with the reason, through a new interrupt
    graph2 = compile_graph(make_checkpointer(cp))  # a new graph on the same file: a restart
    out = graph2.invoke(Command(resume=["denoise.magic"]), config, context=context)
    (again,) = out["__interrupt__"]
    assert "denoise.magic" in again.value["error"] and again.value["plan"] == pending.value["plan"]
    out = graph2.invoke(
        Command(resume={"action": "edit", "plan": ["denoise.tv"]}), config, context=context
    )
    assert "__interrupt__" not in out
    assert tools(out["history"]) == ["denoise.tv"] and graph2.get_state(config).next == ()


def test_update_state_on_the_plan(home: Path, noisy: Path) -> None:
    """interrupt_before=["execution"] + a plain update_state of the plan ends the run with
    nothing executed (routing goes through Command, and an update "as planning" carries no
    goto); an update that is itself a Command with goto="execution" runs the edited plan."""
    home.mkdir(parents=True, exist_ok=True)
    graph = build_graph().compile(
        checkpointer=make_checkpointer(home / "cp.sqlite"), interrupt_before=["execution"]
    )
    context = {"planner": "fixed", "max_steps": 1}
    edited = [{"task": "denoise", "tool": "denoise.bilateral"}]

    plain: Any = {"configurable": {"thread_id": "plain"}}
    graph.invoke({"image": str(noisy)}, plain, context=context)
    assert graph.get_state(plain).next == ("execution",)
    graph.update_state(plain, {"plan": edited}, as_node="planning")
    assert graph.get_state(plain).next == ()  # the pitfall: the run is over
    graph.invoke(None, plain, context=context)
    assert graph.get_state(plain).values.get("history", []) == []  # nothing executed

    cmd: Any = {"configurable": {"thread_id": "command"}}
    graph.invoke({"image": str(noisy)}, cmd, context=context)
    update = Command(
        update={"plan": edited, "plan_text": "1. denoise bilateral."}, goto="execution"
    )
    graph.update_state(cmd, update, as_node="planning")
    assert graph.get_state(cmd).next == ("execution",)
    graph.invoke(None, cmd, context=context)
    assert tools(graph.get_state(cmd).values["history"]) == ["denoise.bilateral"]


def test_as_tool_refuses_approval(home: Path) -> None:
    from restoregraph import as_tool
    from restoregraph.core.errors import RestoreGraphError

    with pytest.raises(RestoreGraphError, match="cannot ask for plan approval"):
        as_tool(home=home, approve="first")
    assert as_tool(home=home, approve="off").name == "restore_image"
