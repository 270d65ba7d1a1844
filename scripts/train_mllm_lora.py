#!/usr/bin/env python
"""LoRA fine-tune a Qwen2-VL-class model on RestoreGraph's exported TRL rows (image + prompt -> plan).

    # rows: restoregraph data export DATA -o OUT --format trl   (OUT/train.jsonl + images)
    python scripts/train_mllm_lora.py --model Qwen/Qwen2-VL-2B-Instruct --data OUT/train.jsonl \
        --out runs/qwen2vl-planner-lora --steps 500 --lora-r 16 --seed 0 --device cuda

    # the offline CPU check the test suite runs: a tiny random Qwen2-VL built from a config
    python scripts/train_mllm_lora.py --make-tiny runs/tiny-qwen2vl --model runs/tiny-qwen2vl \
        --data OUT/train.jsonl --out runs/tiny-lora --steps 60 --lr 1e-2 \
        --target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj

``--model`` is a local folder or a hub id already in the local Hugging Face cache (set
``HF_HUB_OFFLINE=1`` to make sure nothing is downloaded). The adapter folder (peft format) is
what ``vllm serve BASE --enable-lora --lora-modules restoregraph=OUT`` serves; see
docs/llm_planners.md. ``--eval N`` generates plans for the first N rows afterwards (constrained
to the plan grammar with ``--constrained``) and prints how many parse and match.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="base model: local folder or cached hub id")
    ap.add_argument("--data", required=True, type=Path, help="TRL rows: train.jsonl or its folder")
    ap.add_argument("--out", required=True, type=Path, help="adapter folder to write")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument(
        "--target-modules",
        default="q_proj,k_proj,v_proj,o_proj",
        help="comma-separated module names for LoRA (language model only by default)",
    )
    ap.add_argument("--scenarios", default=None,
                    help="comma-separated scenarios to keep (default: all rows)")
    ap.add_argument("--max-rows", type=int, default=0, help="use only the first N rows (0 = all)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: cuda if any)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--make-tiny", type=Path, default=None,
                    help="first build a tiny random Qwen2-VL + processor into this folder")
    ap.add_argument("--eval", type=int, default=0, help="generate for the first N rows afterwards")
    ap.add_argument("--constrained", action="store_true",
                    help="with --eval: constrain decoding to the plan grammar")
    args = ap.parse_args(argv)

    from restoregraph.core.errors import RestoreGraphError

    try:
        return run(args)
    except RestoreGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from restoregraph.lab.training import mllm

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    scenarios = args.scenarios.split(",") if args.scenarios else None
    rows = mllm.read_vision_rows(args.data, scenarios)
    if args.max_rows:
        rows = rows[: args.max_rows]
    print(f"{len(rows)} rows from {args.data}", file=sys.stderr)
    if args.make_tiny is not None:
        from restoregraph.prompts.plan import SYSTEM_PROMPT

        texts = [SYSTEM_PROMPT]
        for r in rows:
            for m in r["messages"]:
                c = m["content"]
                texts.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c))
        mllm.build_tiny_qwen2vl(args.make_tiny, texts, seed=args.seed)
        print(f"built a tiny random Qwen2-VL in {args.make_tiny}", file=sys.stderr)
    bar = tqdm(total=args.steps, desc="train", file=sys.stderr, mininterval=2.0, ncols=100)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    summary = mllm.train_mllm_lora(
        args.model,
        rows,
        args.out,
        steps=args.steps,
        lora_r=args.lora_r,
        seed=args.seed,
        lr=args.lr,
        target_modules=[t for t in args.target_modules.split(",") if t],
        device=device,
        threads=args.threads or None,
        grad_accum=args.grad_accum,
        on_step=on_step,
    )
    bar.close()
    summary["command"] = "python scripts/train_mllm_lora.py " + " ".join(sys.argv[1:])
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary), flush=True)
    if args.eval:
        from restoregraph.core.errors import PlanError
        from restoregraph.planners.base import parse_plan
        from restoregraph.tools import default_registry

        toolbox = default_registry()
        model, processor = mllm.load_with_adapter(args.model, args.out, device)
        parsed = exact = 0
        t0 = time.perf_counter()
        for row in rows[: args.eval]:
            answer = mllm.generate(
                model, processor, row, toolbox=toolbox if args.constrained else None
            )
            ref = mllm.split_messages(row)[1]
            try:
                parse_plan(answer, toolbox)
                parsed += 1
            except PlanError:
                pass
            exact += answer == ref
            print(json.dumps({"answer": answer, "reference": ref}), flush=True)
        n = min(args.eval, len(rows))
        print(
            f"eval: {parsed}/{n} parse, {exact}/{n} exact "
            f"({(time.perf_counter() - t0) / max(1, n):.2f} s per row)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
