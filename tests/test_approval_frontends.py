"""The plan approval from the front ends: the CLI (`restore --approve`, on a terminal and from
standard input), the chat (the next message answers) and the web app (the approve/edit panel)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restoregraph.chat.router import RuleRouter
from restoregraph.chat.session import ChatSession
from restoregraph.cli.main import main
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import save_image
from restoregraph.nodes.approval import answer_from_text
from restoregraph.runner import Runner


@pytest.fixture
def noisy(tmp_path: Path, astronaut_192: np.ndarray) -> Path:
    img, _ = apply_mixture(astronaut_192[48:144, 48:144], [("noise", 2)], seed=0)
    return save_image(img, tmp_path / "in.png")


def test_answer_from_text() -> None:
    assert answer_from_text("a") is True and answer_from_text("Yes please") is True
    assert answer_from_text("looks good, go") is True
    assert answer_from_text("r") == {"action": "reject"}
    assert answer_from_text("no, keep the Grain") == {
        "action": "reject",
        "reason": "keep the Grain",
    }
    edit = {"action": "edit", "plan": ["denoise.tv", "dejpeg.deblock"]}
    assert answer_from_text("e denoise.tv, dejpeg.deblock") == edit
    assert answer_from_text("use denoise.tv then dejpeg.deblock") == edit
    assert answer_from_text("e") is None and answer_from_text("hmm, not sure") is None


# --- CLI ----------------------------------------------------------------------------------------


def cli(
    argv: list[str], stdin: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0), capsys.readouterr().err


def restore_args(noisy: Path, out: Path, home: Path, approve: str = "first") -> list[str]:
    return [
        "restore", str(noisy), "-o", str(out), "--planner", "fixed", "--max-steps", "2",
        "--approve", approve, "--home", str(home), "--run-id", "cli",
    ]  # fmt: skip


def test_cli_reads_answers_from_stdin(
    noisy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    home, out = tmp_path / "home", tmp_path / "out.png"
    # a wrong id is refused and the next line read; the edited plan runs
    rc, err = cli(
        restore_args(noisy, out, home),
        "e denoise.magic\ne denoise.bilateral\n",
        capsys,
        monkeypatch,
    )
    assert rc == 0, err
    assert "plan to approve (round 1)" in err and "perceived: noise" in err
    assert "unknown tool id(s) 'denoise.magic'" in err
    assert out.exists()
    assert Runner(home).history("cli")[0]["tool"] == "denoise.bilateral"


def test_cli_without_an_answer_stops_clearly_and_resume_asks_again(
    noisy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    home, out = tmp_path / "home", tmp_path / "out.png"
    rc, err = cli(restore_args(noisy, out, home), "", capsys, monkeypatch)
    assert rc != 0 and "Traceback" not in err
    assert "waits for a plan approval and standard input ended" in err
    assert "restoregraph resume cli" in err and not out.exists()
    assert Runner(home).history("cli") == []  # nothing executed; the run waits, checkpointed
    rc, err = cli(["resume", "cli", "--home", str(home)], "r not now\n", capsys, monkeypatch)
    assert rc == 0, err
    assert "plan rejected by the user: not now" in err
    assert Runner(home).history("cli") == []


def test_cli_prompts_on_a_terminal(
    noisy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setattr("restoregraph.cli.approval.is_terminal", lambda: True)
    home, out = tmp_path / "home", tmp_path / "out.png"
    # "e" asks for the ids with the toolbox listed; Enter at the next plan (every) accepts
    rc, err = cli(restore_args(noisy, out, home, "every"), "e\ndenoise.tv\n\n", capsys, monkeypatch)
    assert rc == 0, err
    assert "[a]ccept, [e]dit or [r]eject" in err and "tools: denoise." in err
    steps = Runner(home).history("cli")
    assert steps[0]["tool"] == "denoise.tv" and len(steps) == 2 and out.exists()
    assert [a["action"] for a in Runner(home).state("cli")["approvals"]] == ["edit", "accept"]


def test_cli_refuses_approve_for_a_folder(
    noisy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    argv = ["restore", str(noisy.parent), "-o", str(tmp_path / "o"), "--approve", "first"]
    rc, err = cli(argv, "", capsys, monkeypatch)
    assert rc != 0 and "--approve" in err and "folder" in err


# --- chat ---------------------------------------------------------------------------------------


def chat(home: Path, noisy: Path, **settings: Any) -> ChatSession:
    router = RuleRouter(classifier=None)
    return ChatSession(Runner(home), noisy, router=router, planner="fixed", max_steps=2, **settings)


def test_chat_asks_and_the_next_message_answers(home: Path, noisy: Path) -> None:
    session = chat(home, noisy, approve="first")
    first = session.send("fix this photo")
    assert first.approval is not None and first.steps == []
    assert "Plan to approve (round 1)" in first.text and "Reply yes" in first.text
    assert "Nothing ran" not in first.text
    # not an answer: asked again, nothing runs
    again = session.send("what do you think?")
    assert "I need an answer to the plan first" in again.text and again.approval is not None
    bad = session.send("use denoise.magic")
    assert "unknown tool id(s) 'denoise.magic'" in bad.text and session.steps() == []
    done = session.send("use denoise.bilateral")
    assert done.approval is None and done.text.startswith("Plan edited.")
    assert done.steps[0]["tool"] == "denoise.bilateral"
    # a follow-up request asks again ("first" is per request)
    follow = session.send("now sharpen it")
    assert follow.approval is not None and follow.approval["plan"][0]["task"] == "deblur"
    no = session.send("no, leave it soft")
    assert no.approval is None and "plan rejected by the user: leave it soft" in no.text
    assert [s["tool"] for s in session.steps()] == [s["tool"] for s in done.steps]


def test_chat_structured_answer_keeps_the_follow_up_settings(home: Path, noisy: Path) -> None:
    session = chat(home, noisy, approve="every")
    session.send("fix this photo")
    reply = session.approve(True)
    while reply.approval is not None:
        reply = session.approve({"action": "accept"})
    assert reply.steps and reply.text.startswith("Plan accepted.")
    # the follow-up's settings (only deblur tools, required) hold when its plan is answered
    follow = session.send("sharpen it")
    assert follow.approval is not None
    assert set(follow.approval["tools"]) and all(
        t.startswith("deblur.") for t in follow.approval["tools"]
    )
    refused = session.approve(["denoise.tv"])  # not in this request's toolbox
    assert "unknown tool id(s) 'denoise.tv'" in refused.text
    assert session.approve(True).steps[-1]["task"] == "deblur"


# --- web app ------------------------------------------------------------------------------------


def web(home: Path, use_chat: bool, approve: str = "first") -> Any:
    from restoregraph.web.session import Workspace

    settings = {"planner": "fixed", "max_steps": 2, "approve": approve}
    return Workspace(Runner(home), settings, use_chat=use_chat)


def test_web_runner_mode_asks_and_answers(home: Path, noisy: Path) -> None:
    ws = web(home, use_chat=False)
    conv = ws.accept_upload(noisy)
    first = ws.send(conv, "fix it")
    assert first.approval is not None and first.text.startswith("Plan to approve (round 1)")
    view = ws.view(conv)
    assert view is not None and view.approval == first.approval and view.steps == []
    assert "I need an answer" in ws.send(conv, "hmm").text
    with pytest.raises(Exception, match="unknown tool id"):
        ws.approve(conv, {"action": "edit", "plan": ["denoise.magic"]})
    done = ws.approve(conv, {"action": "edit", "plan": ["denoise.bilateral"]})
    assert done.approval is None and done.text.startswith("Plan edited. Restored with")
    after = ws.view(conv)
    assert (
        after is not None and after.steps[0].tool == "denoise.bilateral" and after.approval is None
    )
    with pytest.raises(Exception, match="no plan is waiting"):
        ws.approve(conv, True)


def test_web_panel_shows_the_plan_and_its_buttons_answer(home: Path, noisy: Path) -> None:
    from restoregraph.web.server import prepare_environment

    prepare_environment(home)
    from restoregraph.web.app import build_app
    from restoregraph.web.approval import on_approve, panel_update
    from restoregraph.web.handlers import Handlers

    ws = web(home, use_chat=True, approve="every")
    demo = build_app(ws)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {
        "approval",
        "approval-plan",
        "approval-tools",
        "approval-accept",
        "approval-reject",
    } <= ids
    handlers = Handlers(ws)
    conv = ws.accept_upload(noisy)
    reply = ws.send(conv, "fix this photo")
    assert reply.approval is not None and "Plan to approve" in reply.text
    box, plan, tools = panel_update(handlers, conv.id)
    assert box["visible"] is True and "Plan to approve" in plan["value"]
    assert tools["value"] == ", ".join(s["tool"] for s in reply.approval["plan"])
    # a wrong id in the box: the chat answer says why and asks again; nothing ran
    last = list(on_approve(handlers, "edit", "denoise.magic", conv.id, []))[-1]
    assert "unknown tool id(s) 'denoise.magic'" in last[0][-1]["content"]
    assert ws.view(conv).steps == [] and ws.approval(conv) is not None
    # an empty box: an error on the page before anything is sent
    last = list(on_approve(handlers, "edit", "  ", conv.id, []))[-1]
    assert "at least one tool id" in last[3]
    last = list(on_approve(handlers, "edit", "denoise.tv", conv.id, []))[-1]
    assert last[3].startswith("Done") and "Plan edited" in last[0][-1]["content"]
    assert ws.view(conv).steps[0].tool == "denoise.tv"
    while ws.approval(conv) is not None:  # "every": the replan waits too; reject it
        last = list(on_approve(handlers, "reject", "", conv.id, []))[-1]
    assert "plan rejected by the user" in ws.view(conv).stop_reason
    assert panel_update(handlers, conv.id)[0]["visible"] is False


def test_serve_has_the_approve_option() -> None:
    from click.testing import CliRunner

    from restoregraph.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--approve [off|first|every]" in result.output
