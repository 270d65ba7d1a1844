"""Calibrate the per-type presence thresholds of the perception CNN.

    python -m restoregraph.lab.training.perception_calibrate --data ../shared/data/train --n 400 --seed 7

A type counts as present when P(present) = 1 - p(absent) reaches its threshold
(:class:`PerceptionResult`). This picks, per type, the threshold in [0.2, 0.8] that maximises the
F-beta score of presence (beta 0.5 by default: precision weighs more, since a false positive makes
the agent run a needless tool that can damage the image) on fresh random mixtures of the *training* images (new seed, whole images,
the perceiver's inference path). Test sets are never used for tuning. The thresholds are written
next to the weights (``perception_cnn.thresholds.json``) and :class:`CNNPerceiver` loads them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.lab.training.perception import TRAIN_SUBSETS
from restoregraph.lab.training.perception_data import list_images
from restoregraph.lab.training.perception_eval import evaluate
from restoregraph.perception.cnn import DEFAULT_WEIGHTS, CNNPerceiver, thresholds_path

GRID = np.round(np.arange(0.2, 0.8001, 0.05), 2)
FA_GRID = GRID  # the shipped thresholds stay within 0.2-0.8


def recall_at_fa(
    true: np.ndarray, presence: np.ndarray, clean_presence: np.ndarray, max_fa: float
) -> dict[str, float]:
    """Per type, the lowest grid threshold (best recall on the degraded samples) whose false
    alarm rate on clean photos is at most ``max_fa``; the grid's top when none is."""
    out: dict[str, float] = {}
    for j, t in enumerate(PERCEPTION_TYPES):
        ok = [float(th) for th in FA_GRID if float((clean_presence[:, j] >= th).mean()) <= max_fa]
        out[t] = min(ok) if ok else float(FA_GRID[-1])
        pos = true[:, j] > 0
        recall = float((presence[pos, j] >= out[t]).mean()) if pos.any() else float("nan")
        fa = float((clean_presence[:, j] >= out[t]).mean())
        print(f"{t:15s} threshold {out[t]:.2f}  recall {recall:.3f}  clean FA {fa:.3f}")
    return out


def best_thresholds(true: np.ndarray, presence: np.ndarray, beta: float = 0.5) -> dict[str, float]:
    """Per type, the grid threshold with the best presence F-beta (ties: the one nearest 0.5)."""
    b2 = beta * beta
    out: dict[str, float] = {}
    for j, t in enumerate(PERCEPTION_TYPES):
        pos = true[:, j] > 0
        best: tuple[float, float, float] = (-1.0, 0.0, 0.5)
        for th in GRID:
            det = presence[:, j] >= th
            tp = float((pos & det).sum())
            denom = b2 * float(pos.sum()) + float(det.sum())
            fbeta = (1 + b2) * tp / max(1.0, denom)
            key = (round(fbeta, 6), -abs(float(th) - 0.5), float(th))
            if key[:2] > best[:2]:
                best = key
        out[t] = best[2]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m restoregraph.lab.training.perception_calibrate",
        description=__doc__.splitlines()[0],
    )
    ap.add_argument("--data", required=True, help="folder holding CBSD432/ and ImageNetSample/")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--beta", type=float, default=0.5, help="F-beta criterion (0.5: precision)")
    ap.add_argument(
        "--criterion",
        choices=["fbeta", "recall-at-fa"],
        default="fbeta",
        help="fbeta: best presence F-beta on mixtures; recall-at-fa: best recall on project and "
        "realistic mixtures with at most --max-fa false alarms per type on clean photos",
    )
    ap.add_argument("--max-fa", type=float, default=0.02)
    ap.add_argument("--global-view", action="store_true", help="perceive with the global view")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--out", default=None, help="default: next to the weights")
    args = ap.parse_args(argv)

    from restoregraph.imageio import load_image

    paths = list_images(args.data, TRAIN_SUBSETS)
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(paths), size=min(args.n, len(paths)), replace=False))
    images = [load_image(paths[i]) for i in chosen]
    # raw 0.5 thresholds
    perceiver = CNNPerceiver(args.weights, thresholds={}, global_view_=args.global_view)
    res = evaluate(images, perceiver, args.n, args.seed, progress=True)
    if args.criterion == "fbeta":
        thresholds = best_thresholds(res["true"], res["presence"], beta=args.beta)
        criterion = (
            f"max presence F-beta (beta={args.beta}) per type on training-image "
            "mixtures, grid 0.2-0.8"
        )
    else:
        real = evaluate(images, perceiver, args.n, args.seed + 1, True, synthesis="realistic")
        clean = evaluate(images, perceiver, len(images), args.seed, True, synthesis="clean")
        true = np.concatenate([res["true"], real["true"]])
        presence = np.concatenate([res["presence"], real["presence"]])
        thresholds = recall_at_fa(true, presence, clean["presence"], args.max_fa)
        criterion = (
            f"per type the lowest threshold (grid 0.2-0.8) with at most {args.max_fa:g} false "
            "alarms on the clean training photos (whole images), i.e. best recall on project "
            "and realistic mixtures of the training photos at that false-alarm rate"
        )
    out = Path(args.out) if args.out else thresholds_path(Path(args.weights))
    argv_list = list(argv) if argv is not None else sys.argv[1:]
    doc = {
        "thresholds": thresholds,
        "command": " ".join(
            ["python", "-m", "restoregraph.lab.training.perception_calibrate", *argv_list]
        ),
        "n": args.n,
        "seed": args.seed,
        "criterion": criterion,
        "global_view": bool(args.global_view),
    }
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(json.dumps(thresholds, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
