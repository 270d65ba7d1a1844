"""Held-out evaluation of the perception CNN on synthesised mixtures of unseen clean images.

    python -m restoregraph.lab.training.perception_eval --data ../shared/data/test/CBSD68 --n 300 --seed 123

Sample ``i`` uses clean image ``i mod N`` (whole image, native size), a random mixture from
:func:`restoregraph.lab.training.perception_data.sample_mixture` (the training distribution) and the perceiver's
normal inference path. Prints, per perception type, presence precision / recall and severity
accuracy as a markdown table; ``--md FILE`` also writes it with the command, date and machine.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.lab.training.perception_data import (
    TYPE_INDEX,
    labels_of,
    labels_of_levels,
    list_images,
    sample_mixture,
)
from restoregraph.perception.cnn import CNNPerceiver, count_params, sha256_file


def evaluate(
    images: Sequence[np.ndarray],
    perceiver: CNNPerceiver,
    n: int,
    seed: int,
    progress: bool = True,
    synthesis: str = "project",
) -> dict[str, Any]:
    """Run ``n`` synthesised samples; return true/predicted levels and timings.

    ``synthesis``: ``project`` (``restoregraph.degrade`` mixtures, the training distribution of
    the first perception CNN), ``realistic`` (``restoregraph.degrade.realistic``) or ``clean``
    (the images as they are: every type absent, for the false-alarm rate)."""
    from restoregraph.degrade import apply_mixture

    true = np.zeros((n, len(PERCEPTION_TYPES)), dtype=np.int64)
    pred = np.zeros_like(true)
    presence = np.zeros(true.shape, dtype=np.float64)
    times = []
    it: Any = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, mininterval=2.0, file=sys.stderr, ncols=100, desc="evaluate")
    for i in it:
        rng = np.random.default_rng([seed, i])
        img = images[i % len(images)]
        if synthesis == "clean":
            out = img
        elif synthesis == "realistic":
            from restoregraph.degrade.realistic import realistic_mixture

            out, applied = realistic_mixture(img, rng)
            true[i] = labels_of_levels(applied.items())
        else:
            mixture = sample_mixture(rng)
            out, infos = apply_mixture(img, mixture, seed=int(rng.integers(2**31)))
            true[i] = labels_of(infos)
        t = time.perf_counter()
        result = perceiver.perceive(out)
        levels = result.levels
        times.append(time.perf_counter() - t)
        pred[i] = [levels[tp] for tp in PERCEPTION_TYPES]
        presence[i] = [1.0 - result.probs[tp][0] for tp in PERCEPTION_TYPES]
    return {"true": true, "pred": pred, "presence": presence, "times": np.asarray(times)}


def metrics(true: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for t in PERCEPTION_TYPES:
        j = TYPE_INDEX[t]
        yt, yp = true[:, j], pred[:, j]
        pos, det = yt > 0, yp > 0
        tp = int((pos & det).sum())
        rows.append(
            {
                "type": t,
                "support": int(pos.sum()),
                "precision": tp / max(1, int(det.sum())) if det.any() else float("nan"),
                "recall": tp / max(1, int(pos.sum())) if pos.any() else float("nan"),
                "false_pos": int((~pos & det).sum()),
                "recall_by_level": [
                    float(det[yt == k].mean()) if (yt == k).any() else float("nan")
                    for k in (1, 2, 3)
                ],
                "sev_acc": float((yp[pos] == yt[pos]).mean()) if pos.any() else float("nan"),
                "sev_acc_tp": (
                    float((yp[pos & det] == yt[pos & det]).mean()) if tp else float("nan")
                ),
                "sev_within1": (
                    float((np.abs(yp[pos & det] - yt[pos & det]) <= 1).mean())
                    if tp
                    else float("nan")
                ),
            }
        )
    return rows


def _fmt(v: float) -> str:
    return "–" if v != v else f"{v:.2f}"


def markdown_table(rows: Sequence[dict[str, Any]], true: np.ndarray, pred: np.ndarray) -> str:
    lines = [
        "| type | present (of n) | precision | recall | recall at level 1 / 2 / 3 "
        "| severity acc. (all present) | severity acc. (detected) | severity ±1 (detected) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['type']} | {r['support']} | {_fmt(r['precision'])} | {_fmt(r['recall'])} "
            f"| {' / '.join(_fmt(v) for v in r['recall_by_level'])} | {_fmt(r['sev_acc'])} | {_fmt(r['sev_acc_tp'])} | {_fmt(r['sev_within1'])} |"
        )
    pos, det = true > 0, pred > 0
    tp = (pos & det).sum()
    micro_p = tp / max(1, det.sum())
    micro_r = tp / max(1, pos.sum())
    lines.append(
        f"| **all (micro)** | {int(pos.sum())} | {micro_p:.2f} | {micro_r:.2f} "
        f"| {' / '.join(f'{float(det[true == k].mean()):.2f}' for k in (1, 2, 3))} "
        f"| {float((pred[pos] == true[pos]).mean()):.2f} "
        f"| {float((pred[pos & det] == true[pos & det]).mean()):.2f} "
        f"| {float((np.abs(pred - true)[pos & det] <= 1).mean()):.2f} |"
    )
    return "\n".join(lines)


def summary_lines(true: np.ndarray, pred: np.ndarray, times: np.ndarray) -> list[str]:
    n = len(true)
    clean = (true > 0).sum(1) == 0
    exact_set = float(((true > 0) == (pred > 0)).all(1).mean())
    exact_all = float((true == pred).all(1).mean())
    lines = [
        f"- samples: {n}; clean (no degradation): {int(clean.sum())}, "
        f"flagged with any degradation: {int((pred[clean] > 0).any(1).sum())}",
        f"- exact set of present types: {exact_set:.2f}; exact types and levels: {exact_all:.2f}",
        f"- inference: median {np.median(times) * 1000:.1f} ms, "
        f"p90 {np.percentile(times, 90) * 1000:.1f} ms per image "
        f"(torch threads {torch.get_num_threads()})",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m restoregraph.lab.training.perception_eval",
        description=__doc__.splitlines()[0],
    )
    ap.add_argument("--data", required=True, help="folder of clean held-out test images")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--weights", default=None, help="state dict (default: the shipped weights)")
    ap.add_argument("--md", default=None, help="also write the report to this markdown file")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads for inference (default: torch's)"
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from restoregraph.imageio import load_image

    images = [load_image(p) for p in list_images(args.data)]
    perceiver = CNNPerceiver(args.weights)
    res = evaluate(images, perceiver, args.n, args.seed, progress=not args.no_progress)
    rows = metrics(res["true"], res["pred"])
    table = markdown_table(rows, res["true"], res["pred"])
    extra = summary_lines(res["true"], res["pred"], res["times"])
    print(table)
    print("\n".join(extra))
    if args.md:
        argv_list = list(argv) if argv is not None else sys.argv[1:]
        command = shlex.join(
            ["python", "-m", "restoregraph.lab.training.perception_eval", *argv_list]
        )
        cpu = platform.processor() or platform.machine()
        header = [
            "# Perception CNN: held-out evaluation",
            "",
            f"- command: `{command}`",
            f"- date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- machine: {platform.system()} {platform.machine()} ({cpu}), "
            f"{os.cpu_count()} CPU cores, no GPU; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads",
            f"- weights: `{perceiver.weights_path.name}` sha256 "
            f"`{sha256_file(perceiver.weights_path)[:16]}…`, "
            f"{count_params(perceiver.net):,} parameters",
            f"- data: {len(images)} clean images in `{args.data}` (never trained on), "
            f"{args.n} random mixtures (0–4 degradations, random levels, the training "
            "distribution), whole images at native size",
            "- presence: a type counts as detected when P(present) = 1 - p(absent) reaches its "
            "threshold (PerceptionResult.levels); "
            "severity acc. (all present) counts misses as wrong, (detected) is over true "
            "positives only",
            "",
            table,
            "",
            *extra,
            "",
        ]
        path = Path(args.md)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(header), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
