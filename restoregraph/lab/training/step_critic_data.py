"""Training data of the step critic (``restoregraph.metrics.step_critic``): single tool steps on
degraded crops of clean training photos, with their run-time features and true PSNR gain.

For each sample: a random crop (96-128 px a side) of a clean photo, degraded by a random mixture
of 1-3 degradations (the project's synthesis ``restoregraph.degrade.apply_mixture``, or with
probability ``--realistic`` the realistic one ``restoregraph.degrade.realistic``); then plausible
tool steps are run on it, as reflection would see them: the tasks of the applied degradations,
the tasks perception reports, and one other task (a false alarm, or a user's request for a
degradation that is not there), each with a random tool of the registry. A second round starts
from the best step's output (a partly restored image) when its gain was positive. Each step is
one JSON line: the critic's features (``step_features``), what the reflection rule reads
(severities, quality before/after), the safety check of explicit requests, and the true gain
(PSNR after minus before against the clean crop: needs the clean image, so only here).

Held-out split by source photo (``restoregraph.lab.common.is_heldout``, 20 %)::

    nice -n 10 python -m restoregraph.lab.training.step_critic_data \\
        --data ../shared/data/train --out data/step_critic --minutes 18 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError, RestoreGraphError
from restoregraph.core.tasks import (
    DEGRADATION_TYPES,
    PERCEPTION_TYPE_FOR_DEGRADATION,
    TASK_FOR_DEGRADATION,
    TASK_FOR_PERCEPTION_TYPE,
)
from restoregraph.lab.common import is_heldout, list_images

SUBSETS = ("CBSD432", "ImageNetSample")  # clean photos only (never the PolyU noisy pairs)
STEPS_FILE = "steps.jsonl"
MANIFEST_FILE = "manifest.json"
COUNT_P = (0.4, 0.4, 0.2)  # 1, 2 or 3 degradations


def list_sources(root: Path) -> list[str]:
    """Clean training photos under ``root`` (``SUBSETS``), as ``subset/name`` paths."""
    if not root.is_dir():
        raise InputError(f"{root}: no such data folder (e.g. ../shared/data/train)")
    rels = [
        f"{sub}/{p.name}"
        for sub in SUBSETS
        if (root / sub).is_dir()
        for p in list_images(root / sub)
    ]
    if not rels:
        raise InputError(f"{root}: holds none of {', '.join(SUBSETS)}")
    return rels


def random_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    lo: int = 96,
    hi: int = 128,
    long: tuple[int, int] | None = None,
) -> np.ndarray:
    """A random crop, each side ``lo..hi`` px; with ``long``, one side (at random) ``long`` px
    (a long side of 192 or more lets NIQE into the quality score, as on photos at run time)."""
    h, w = image.shape[:2]
    ch = min(h, int(rng.integers(lo, hi + 1)))
    cw = min(w, int(rng.integers(lo, hi + 1)))
    if long is not None:
        side = int(rng.integers(long[0], long[1] + 1))
        if rng.random() < 0.5:
            ch = min(h, side)
        else:
            cw = min(w, side)
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(image[top : top + ch, left : left + cw, :3], dtype=np.float32)


def degrade_crop(
    clean: np.ndarray, rng: np.random.Generator, realistic: float
) -> tuple[np.ndarray, list[tuple[str, int]], str]:
    """(degraded, [(degradation type, level)], synthesis name) of one clean crop."""
    if rng.random() < realistic:
        from restoregraph.degrade.realistic import realistic_mixture

        out, labels = realistic_mixture(clean, rng, camera=bool(rng.random() < 0.5))
        return out, [(t, int(v)) for t, v in labels.items()], "realistic"
    from restoregraph.degrade import apply_mixture

    n = int(rng.choice((1, 2, 3), p=COUNT_P))
    types = [str(t) for t in rng.choice(DEGRADATION_TYPES, size=n, replace=False)]
    # low resolution last: the others are synthesised at full size
    types.sort(key=lambda t: t == "low_resolution")
    mixture = [(t, int(rng.integers(1, 4))) for t in types]
    out, _ = apply_mixture(clean, mixture, seed=int(rng.integers(0, 2**31 - 1)))
    return out, mixture, "project"


def psnr_to(image: np.ndarray, clean: np.ndarray) -> float:
    from restoregraph.metrics import psnr
    from restoregraph.metrics.fullref import match_size

    img = image if image.shape == clean.shape else match_size(image, clean)
    return float(psnr(img, clean))


class _State:
    """An image with what reflection knows of it (perception, quality, statistics)."""

    def __init__(self, image: np.ndarray, perceiver: Any, clean: np.ndarray) -> None:
        from restoregraph.metrics import quality_score
        from restoregraph.metrics.step_critic import image_stats

        self.image = image
        result = perceiver.perceive(image)
        self.severity = {k: float(v) for k, v in result.severity.items()}
        self.levels = {k: int(v) for k, v in result.levels.items()}
        self.quality = float(quality_score(image))
        self.stats = image_stats(image)
        self.psnr = psnr_to(image, clean)

    def seen(self, task: str) -> bool:
        return any(
            self.levels.get(t, 0) >= 1 for t, tk in TASK_FOR_PERCEPTION_TYPE.items() if tk == task
        )


def _choose_tasks(
    true_tasks: Sequence[str],
    state: _State,
    tasks: Sequence[str],
    rng: np.random.Generator,
    cap: int,
) -> list[str]:
    seen = [TASK_FOR_PERCEPTION_TYPE[t] for t, lvl in state.levels.items() if lvl >= 1]
    chosen = list(dict.fromkeys([*true_tasks, *seen]))
    others = [t for t in tasks if t not in chosen]
    if others:
        chosen.append(str(rng.choice(others)))
    order = rng.permutation(len(chosen))
    firsts = [chosen[i] for i in order if chosen[i] in true_tasks][:1]  # one true task always
    rest = [chosen[i] for i in order if chosen[i] not in firsts]
    return (firsts + rest)[:cap]


def _step(
    state: _State,
    task: str,
    tool: Any,
    clean: np.ndarray,
    perceiver: Any,
    true_tasks: Sequence[str],
) -> tuple[dict[str, Any], _State] | None:
    from restoregraph.metrics.safety import limits_for, safety_problem
    from restoregraph.metrics.step_critic import step_features

    t0 = time.perf_counter()
    try:
        out = np.clip(np.asarray(tool.run(state.image), np.float32), 0.0, 1.0)
    except Exception as exc:  # a tool that fails is not a step reflection sees
        print(f"  {tool.id}: failed ({exc})", file=sys.stderr)
        return None
    tool_s = time.perf_counter() - t0
    after = _State(out, perceiver, clean)
    feats = step_features(
        task,
        state.image,
        out,
        state.severity,
        after.severity,
        state.quality,
        after.quality,
        state.seen(task),
        stats_before=state.stats,
    )
    record = {
        "task": task,
        "tool": tool.id,
        "seen": state.seen(task),
        "degraded_for_task": task in true_tasks,
        "psnr_before": round(state.psnr, 4),
        "psnr_after": round(after.psnr, 4),
        "gain": round(after.psnr - state.psnr, 4),
        "severity_before": {k: round(v, 5) for k, v in state.severity.items()},
        "severity_after": {k: round(v, 5) for k, v in after.severity.items()},
        "quality_before": round(state.quality, 6),
        "quality_after": round(after.quality, 6),
        "safety_problem": safety_problem(state.image, out, limits_for(task)),
        "features": [float(f"{v:.6g}") for v in feats],
        "tool_s": round(tool_s, 4),
    }
    return record, after


def build_sample(
    clean: np.ndarray,
    rng: np.random.Generator,
    registry: Any,
    perceiver: Any,
    realistic: float = 0.3,
    round1: int = 4,
    round2: int = 3,
) -> list[dict[str, Any]]:
    """The step records of one clean crop (see the module doc)."""
    degraded, mixture, synthesis = degrade_crop(clean, rng, realistic)
    base = {"mixture": [[t, lvl] for t, lvl in mixture], "synthesis": synthesis}
    tasks = registry.tasks()
    true_tasks = [
        TASK_FOR_DEGRADATION.get(t)
        or TASK_FOR_PERCEPTION_TYPE[PERCEPTION_TYPE_FOR_DEGRADATION.get(t, t)]
        for t, _ in mixture
    ]
    state = _State(degraded, perceiver, clean)
    records: list[dict[str, Any]] = []
    best: tuple[float, _State, str] | None = None
    for task in _choose_tasks(true_tasks, state, tasks, rng, round1):
        specs = registry.for_task(task)
        if not specs:
            continue
        tool = specs[int(rng.integers(len(specs)))]
        done = _step(state, task, tool, clean, perceiver, true_tasks)
        if done is None:
            continue
        rec, after = done
        records.append({**base, "round": 1, **rec})
        if task in true_tasks and rec["gain"] > 0 and (best is None or rec["gain"] > best[0]):
            best = (rec["gain"], after, task)
    if best is not None and round2 > 0:
        _, state2, done_task = best
        left = [t for t in true_tasks if t != done_task]
        for task in _choose_tasks(left or [done_task], state2, tasks, rng, round2):
            specs = registry.for_task(task)
            if not specs:
                continue
            tool = specs[int(rng.integers(len(specs)))]
            step = _step(state2, task, tool, clean, perceiver, left)
            if step is not None:
                records.append({**base, "round": 2, **step[0]})
    return records


def build(
    data: Path,
    out: Path,
    seed: int = 0,
    minutes: float = 18.0,
    max_samples: int = 0,
    realistic: float = 0.3,
    log: Callable[[str], None] = print,
    crop: tuple[int, int] = (96, 128),
    heldout_only: bool = False,
    long: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Build ``out/steps.jsonl`` until ``minutes`` pass (or ``max_samples``); return the manifest."""
    import torch

    from restoregraph.imageio import as_float_image, load_image
    from restoregraph.metrics.step_critic import FEATURE_NAMES
    from restoregraph.perception import default_perceiver
    from restoregraph.tools import default_registry

    torch.set_num_threads(1)
    sources = list_sources(data)
    if heldout_only:
        sources = [s for s in sources if is_heldout(s)]
    out.mkdir(parents=True, exist_ok=True)
    registry, perceiver = default_registry(), default_perceiver()
    order = np.random.default_rng([seed, 0x57E9]).permutation(len(sources))
    t0 = time.perf_counter()
    n_steps = n_samples = 0
    path = out / STEPS_FILE
    with open(path, "w", encoding="utf-8") as f:
        while True:
            if max_samples and n_samples >= max_samples:
                break
            if time.perf_counter() - t0 > minutes * 60:
                break
            src = sources[int(order[n_samples % len(order)])]
            rng = np.random.default_rng([seed, n_samples])
            clean = random_crop(as_float_image(load_image(data / src)), rng, *crop, long=long)
            recs = build_sample(clean, rng, registry, perceiver, realistic)
            held = is_heldout(src)
            for r in recs:
                f.write(
                    json.dumps({"sample": n_samples, "source": src, "heldout": held, **r}) + "\n"
                )
            f.flush()
            n_samples += 1
            n_steps += len(recs)
            if n_samples % 25 == 0:
                el = time.perf_counter() - t0
                log(f"{n_samples} samples, {n_steps} steps, {n_steps / el:.2f} steps/s")
    elapsed = time.perf_counter() - t0
    manifest = {
        "command": " ".join(
            ["python -m restoregraph.lab.training.step_critic_data", *sys.argv[1:]]
        ),
        "data": str(data),
        "seed": seed,
        "realistic": realistic,
        "crop": list(crop),
        "heldout_only": heldout_only,
        "long": list(long) if long else None,
        "samples": n_samples,
        "steps": n_steps,
        "seconds": round(elapsed, 1),
        "steps_per_s": round(n_steps / elapsed, 3) if elapsed > 0 else None,
        "features": list(FEATURE_NAMES),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(
        f"done: {n_samples} samples, {n_steps} steps in {elapsed:.0f} s ({manifest['steps_per_s']} steps/s)"
    )
    return manifest


def load_steps(folder: Path) -> list[dict[str, Any]]:
    path = folder / STEPS_FILE
    if not path.is_file():
        raise InputError(f"{path}: no step data (build it with `python -m {__name__}`)")
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/train", help="clean training photos")
    ap.add_argument("--out", default="data/step_critic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=18.0, help="time budget")
    ap.add_argument("--max-samples", type=int, default=0, help="stop after this many (0: time)")
    ap.add_argument("--realistic", type=float, default=0.3, help="share of realistic synthesis")
    ap.add_argument("--crop", type=int, nargs=2, default=(96, 128), metavar=("LO", "HI"))
    ap.add_argument("--heldout-only", action="store_true", help="only the held-out photos")
    ap.add_argument(
        "--long", type=int, nargs=2, default=None, metavar=("LO", "HI"), help="one side's range"
    )
    args = ap.parse_args(argv)
    try:
        build(
            Path(args.data),
            Path(args.out),
            args.seed,
            args.minutes,
            args.max_samples,
            args.realistic,
            crop=(int(args.crop[0]), int(args.crop[1])),
            heldout_only=args.heldout_only,
            long=(int(args.long[0]), int(args.long[1])) if args.long else None,
        )
    except RestoreGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
