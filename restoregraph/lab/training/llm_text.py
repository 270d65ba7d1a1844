"""LoRA fine-tuning of SmolLM2-135M-Instruct on perception text -> plan rows, on CPU.

A plain PyTorch loop (not TRL's SFTTrainer): batch 1, loss on the answer tokens only, and the
LM head computed only for those positions (``logits_to_keep``), which with LoRA on the top
``layers`` decoder layers alone makes a step ~3 s at one thread on this 2-core CPU instead of
~6 s. The chat layout is SmolLM2's own template: system prompt, user prompt
(``restoregraph.prompts.plan``), then the answer followed by ``<|im_end|>``.

The adapter is saved in peft's format (``adapter_config.json`` + ``adapter_model.safetensors``,
what ``vllm serve --enable-lora --lora-modules`` reads); ``pack_adapter`` turns it into the
project's shipped-weights layout (a ``.pt`` state dict + a ``.json`` LoRA config beside it).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError, PlanError
from restoregraph.lab.training.lr_schedule import warmup_cosine
from restoregraph.lab.training.textdata import Row, split_row
from restoregraph.llm.lora import _torch, encode_prompt, end_token_id, generate_text

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def encode_row(tok: Any, row: Row) -> tuple[list[int], list[int]]:
    """``(prompt ids, answer ids + <|im_end|>)`` for one row."""
    messages, answer = split_row(row)
    completion = list(tok(answer, add_special_tokens=False)["input_ids"]) + [end_token_id(tok)]
    return encode_prompt(tok, messages), completion


def lora_config(r: int, layers: int | None, n_layers: int) -> Any:
    from peft import LoraConfig

    kwargs: dict[str, Any] = {}
    if layers is not None and 0 < layers < n_layers:
        kwargs["layers_to_transform"] = list(range(n_layers - layers, n_layers))
    return LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.0,
        target_modules=list(TARGET_MODULES),
        task_type="CAUSAL_LM",
        **kwargs,
    )


def answer_loss(model: Any, prompt: list[int], completion: list[int]) -> Any:
    """Mean cross-entropy of the answer tokens given the prompt (logits only where needed)."""
    torch = _torch()
    ids = torch.tensor([prompt + completion])
    n = len(completion)
    logits = model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits.float(), ids[0, -n:])


def train_lora_text(
    rows: Sequence[Row],
    out_dir: str | Path,
    steps: int = 300,
    seed: int = 0,
    lr: float = 5e-4,
    lora_r: int = 8,
    layers: int | None = 10,
    threads: int = 1,
    warmup: int = 10,
    base: tuple[Any, Any] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on ``rows`` for ``steps`` single-row steps; save it to ``out_dir``.

    ``base`` = ``(model, tokenizer)`` to train on (default: SmolLM2 from ``load_base``); the
    model is wrapped in place by peft. Returns a summary (losses, seconds, ...), also written to
    ``out_dir/training.json`` together with ``meta``.
    """
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    if not rows:
        raise InputError("no training rows")
    torch = _torch()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        return _train(
            rows,
            Path(out_dir),
            steps,
            seed,
            lr,
            lora_r,
            layers,
            threads,
            warmup,
            base,
            on_step,
            meta,
        )
    finally:
        torch.set_num_threads(old_threads)


def _train(
    rows: Sequence[Row],
    out: Path,
    steps: int,
    seed: int,
    lr: float,
    lora_r: int,
    layers: int | None,
    threads: int,
    warmup: int,
    base: tuple[Any, Any] | None,
    on_step: Callable[[int, float], None] | None,
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    torch = _torch()
    from peft import get_peft_model

    random.seed(seed)
    torch.manual_seed(seed)
    if base is None:
        from restoregraph.llm.smollm import load_base

        base = load_base()
    model, tok = base
    encoded = [encode_row(tok, r) for r in rows]
    n_layers = int(model.config.num_hidden_layers)
    peft_model = get_peft_model(model, lora_config(lora_r, layers, n_layers))
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10 %
        return warmup_cosine(step, steps, lr, warmup, floor=0.1)

    rng = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        if not order:
            order = list(range(len(encoded)))
            rng.shuffle(order)
        prompt, completion = encoded[order.pop()]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = answer_loss(peft_model, prompt, completion)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        losses.append(value)
        if on_step is not None:
            on_step(step, value)
    seconds = time.perf_counter() - t0
    peft_model.eval()
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out), safe_serialization=True)
    fields = {
        "steps": steps,
        "seed": seed,
        "lr": lr,
        "lora_r": lora_r,
        "layers": layers,
        "threads": threads,
        "rows": len(rows),
        "seconds": round(seconds, 1),
    }
    return write_training_summary(out, fields, losses, params, max_window=20, extra=meta)


def write_training_summary(
    out: Path,
    fields: dict[str, Any],
    losses: Sequence[float],
    params: Sequence[Any],
    *,
    max_window: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``out/training.json``: the run's settings, the mean loss of the first and last steps
    (a window of ``min(max_window, steps // 5)``, at least 1) and the trainable parameters."""
    window = max(1, min(max_window, len(losses) // 5))
    summary = {
        **fields,
        "loss_first": round(sum(losses[:window]) / window, 4),
        "loss_last": round(sum(losses[-window:]) / window, 4),
        "trainable_params": sum(p.numel() for p in params),
        **(extra or {}),
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


# -- shipped layout --------------------------------------------------------------------------


# -- generation and evaluation ---------------------------------------------------------------


def plan_agreement(answer: str, reference: str, toolbox: Any) -> tuple[bool, bool, bool]:
    """``(parses, same tools in the same order, same tasks in the same order)``."""
    from restoregraph.planners.base import parse_plan

    try:
        got = parse_plan(answer, toolbox).steps
    except PlanError:
        return False, False, False
    try:
        ref = parse_plan(reference, toolbox).steps
    except PlanError:
        return True, False, False
    return (
        True,
        [s["tool"] for s in got] == [s["tool"] for s in ref],
        [s["task"] for s in got] == [s["task"] for s in ref],
    )


def evaluate_rows(
    model: Any, tok: Any, rows: Sequence[Row], toolbox: Any, max_new_tokens: int = 64
) -> dict[str, Any]:
    """Generate for each row; count answers that parse, match the reference plan exactly, and
    match its task order (overall and per scenario). Also returns each row's answer."""
    parsed = exact = order = 0
    per: dict[str, dict[str, int]] = {}
    details = []
    t0 = time.perf_counter()
    for row in rows:
        messages, reference = split_row(row)
        answer = generate_text(model, tok, messages, max_new_tokens)
        ok, same, same_order = plan_agreement(answer, reference, toolbox)
        parsed += ok
        exact += same
        order += same_order
        sc = per.setdefault(
            str(row.get("scenario")), {"rows": 0, "parsed": 0, "exact": 0, "order": 0}
        )
        sc["rows"] += 1
        sc["parsed"] += ok
        sc["exact"] += same
        sc["order"] += same_order
        details.append(
            {
                "scenario": row.get("scenario"),
                "sample": row.get("sample"),
                "reference": reference,
                "answer": answer,
                "parsed": ok,
                "exact": same,
            }
        )
    n = max(1, len(rows))
    return {
        "rows": len(rows),
        "parsed": parsed,
        "exact": exact,
        "task_order": order,
        "parse_rate": round(parsed / n, 3),
        "exact_rate": round(exact / n, 3),
        "order_rate": round(order / n, 3),
        "per_scenario": per,
        "seconds_per_row": round((time.perf_counter() - t0) / n, 2),
        "details": details,
    }


def fixed_baseline(rows: Sequence[Row], toolbox: Any) -> dict[str, Any]:
    """How often the fixed planner's plan equals the reference, on the ``fresh`` rows (their
    perception is read back from the prompt text)."""
    from restoregraph.lab.training.textdata import perception_from_prompt
    from restoregraph.planners.base import PlanRequest, format_plan
    from restoregraph.planners.fixed import FixedPlanner

    fresh = [r for r in rows if r.get("scenario") == "fresh"]
    exact = order = 0
    for row in fresh:
        messages, reference = split_row(row)
        perception = perception_from_prompt(messages[-1]["content"])
        steps = FixedPlanner().plan(PlanRequest(perception=perception, toolbox=toolbox)).steps
        _, same, same_order = plan_agreement(format_plan(steps), reference, toolbox)
        exact += same
        order += same_order
    return {"rows": len(fresh), "exact": exact, "task_order": order}


__all__ = [
    "TARGET_MODULES",
    "answer_loss",
    "encode_row",
    "evaluate_rows",
    "fixed_baseline",
    "lora_config",
    "plan_agreement",
    "train_lora_text",
]
