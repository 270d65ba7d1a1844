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
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--out", default=None, help="default: next to the weights")
    args = ap.parse_args(argv)

    from restoregraph.imageio import load_image

    paths = list_images(args.data, TRAIN_SUBSETS)
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(paths), size=min(args.n, len(paths)), replace=False))
    images = [load_image(paths[i]) for i in chosen]
    perceiver = CNNPerceiver(args.weights, thresholds={})  # raw 0.5 thresholds
    res = evaluate(images, perceiver, args.n, args.seed, progress=True)
    thresholds = best_thresholds(res["true"], res["presence"], beta=args.beta)
    out = Path(args.out) if args.out else thresholds_path(Path(args.weights))
    argv_list = list(argv) if argv is not None else sys.argv[1:]
    doc = {
        "thresholds": thresholds,
        "command": " ".join(
            ["python", "-m", "restoregraph.lab.training.perception_calibrate", *argv_list]
        ),
        "n": args.n,
        "seed": args.seed,
        "criterion": f"max presence F-beta (beta={args.beta}) per type on training-image "
        "mixtures, grid 0.2-0.8",
    }
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(json.dumps(thresholds, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
