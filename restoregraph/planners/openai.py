"""A planner backed by any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, ...).

``POST {base_url}/chat/completions`` with httpx (no ``openai`` package). A LoRA adapter is
picked by model name, as vLLM's ``--lora-modules name=path`` exposes it.

The request carries a system prompt and a user prompt (``restoregraph.prompts.plan``), the
current image as a PNG data URL (downscaled to at most ``image_max_side`` px) when
``send_image`` is true, and ``response_format`` = a JSON schema whose ``tool`` field is an enum
of the toolbox ids. A plain-text template answer (``1. <task> <model>. ...`` or ``Stop``) is
accepted too, for servers that ignore the schema. With ``experience`` (default on) the user
prompt quotes the order and model statistics distilled from the pipeline-search data for the
needed tasks and the run's objective (``restoregraph/prompts/experience.json``).

Safety: the reply is data, never code. Only ``{task, tool}`` pairs that validate against the
toolbox survive (``validate_steps`` / ``parse_plan``); everything else in the reply is dropped
and never echoed back. An invalid plan (unknown ids, too many steps) gets one retry with the
error appended; endpoint failures (connection refused, timeout, HTTP error, malformed reply)
are retried ``retries`` times with exponential backoff. When all that fails, a warning is
logged and the fallback planner plans instead, with
``Plan.note = "fell back to <name>: <reason>"``. The default fallback (``fallback=None``) is
the ``embedded`` learned planner when one is registered and can be built, else ``fixed``.
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
TOTAL_TIMEOUT_FACTOR = 2.0  # the whole reply must arrive within this many ``timeout``s
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_MODEL = "restoreagent"


class EndpointError(Exception):
    """The endpoint could not be reached or answered something that is not a chat reply."""


def plan_schema(toolbox: ToolRegistry) -> dict[str, Any]:
    """The JSON schema of a plan: ``{"steps": [{"task", "tool"}, ...]}`` (empty = stop)."""
    ids = toolbox.ids()
    tasks = [t for t in TASKS if t in set(toolbox.tasks())] or list(TASKS)
    return {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "maxItems": MAX_PLAN_STEPS,
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


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenAIPlanner:
    """Plans with an OpenAI-compatible chat endpoint; falls back to another planner on failure."""

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        send_image: bool = True,
        image_max_side: int = 512,
        structured: bool = True,
        temperature: float = 0.0,
        max_tokens: int = 512,
        fallback: str | Planner | None = None,
        trust_env: bool = True,
        experience: bool = True,
    ) -> None:
        if timeout <= 0:
            raise PlanError(f"timeout must be positive, got {timeout}")
        if retries < 0:
            raise PlanError(f"retries must be >= 0, got {retries}")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.model = model or os.environ.get("RESTOREGRAPH_LLM_MODEL") or DEFAULT_MODEL
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.timeout = float(timeout)
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

    def _fall_back(self, request: PlanRequest, reason: str) -> Plan:
        fb = self.fallback
        reason = _short(reason)
        log.warning(
            "openai planner (%s, model %r): %s; falling back to %s",
            self.base_url,
            self.model,
            reason,
            fb.name,
        )
        plan = fb.plan(request)
        note = f"fell back to {fb.name}: {reason}"
        if plan.note:
            note += f"; {plan.note}"
        return Plan(steps=list(plan.steps), note=note)

    # -- request ------------------------------------------------------------------------------
    def build_messages(self, request: PlanRequest) -> list[dict[str, Any]]:
        text = render_user_prompt(
            request.perception,
            request.toolbox,
            request.history,
            request.failed,
            request.instruction,
            experience=self.advice(request),
        )
        user: Any = text
        if self.send_image and request.load_image is not None:
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

    def _post_once(self, client: Any, payload: dict[str, Any]) -> str:
        import httpx

        url = f"{self.base_url}/chat/completions"
        # httpx's timeout bounds each read; a server that trickles a byte at a time would never
        # trip it, so the whole reply also gets a deadline.
        deadline = time.monotonic() + TOTAL_TIMEOUT_FACTOR * self.timeout
        try:
            with client.stream("POST", url, json=payload) as resp:
                if resp.status_code != 200:
                    raise EndpointError(f"HTTP {resp.status_code} from {self.base_url}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise EndpointError(f"reply larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise EndpointError(
                            f"reply not complete within {TOTAL_TIMEOUT_FACTOR * self.timeout:g} s"
                        )
        except httpx.TimeoutException:
            raise EndpointError(f"no reply within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise EndpointError(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        try:
            data = json.loads(bytes(body))
            content = data["choices"][0]["message"]["content"]
            return _reply_text(content)
        except (ValueError, KeyError, IndexError, TypeError, RecursionError, PlanError):
            raise EndpointError("malformed reply (not an OpenAI chat completion)") from None

    def complete(self, payload: dict[str, Any]) -> str:
        """POST the payload; retry transport failures, 5xx and 429 with exponential backoff."""
        import httpx

        self.last_request = payload
        headers = {"Authorization": f"Bearer {self.api_key}"}
        last: EndpointError | None = None
        with httpx.Client(
            timeout=self.timeout, headers=headers, trust_env=self.trust_env
        ) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    return self._post_once(client, payload)
                except EndpointError as exc:
                    last = exc
                    msg = str(exc)
                    if msg.startswith("HTTP ") and not msg.startswith(("HTTP 5", "HTTP 429")):
                        break  # a client error: asking again will not help
        assert last is not None
        raise last

    # -- planning -----------------------------------------------------------------------------
    def plan(self, request: PlanRequest) -> Plan:
        try:
            messages = self.build_messages(request)
        except Exception as exc:
            return self._fall_back(request, f"could not build the prompt: {exc}")
        structured = self.structured
        notes: list[str] = []
        error = ""
        for attempt in range(2):  # the first answer, then one retry for an invalid plan
            try:
                content = self.complete(self.build_payload(request, messages, structured))
            except EndpointError as exc:
                if structured and str(exc).startswith("HTTP 400"):
                    # The server may not support response_format: ask once more without it.
                    structured = False
                    notes.append("server refused response_format")
                    try:
                        content = self.complete(self.build_payload(request, messages, False))
                    except EndpointError as exc2:
                        return self._fall_back(request, str(exc2))
                else:
                    return self._fall_back(request, str(exc))
            try:
                steps = parse_reply(content, request.toolbox)
            except PlanError as exc:
                error = str(exc)
                if attempt == 0:
                    notes.append(f"retried after: {_short(error, 120)}")
                    messages = [
                        *messages,
                        {"role": "user", "content": render_retry_prompt(error)},
                    ]
                    continue
                return self._fall_back(request, f"invalid plan from the model: {error}")
            return self._finish(request, steps, notes)
        return self._fall_back(request, f"invalid plan from the model: {error}")  # unreachable

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


__all__ = ["EndpointError", "OpenAIPlanner", "image_data_url", "parse_reply", "plan_schema"]
