"""Image quality metrics for RestoreGraph.

Images are float32 RGB arrays (H, W, 3) in [0, 1] (uint8/uint16/gray arrays are converted).

Full reference ``fn(img, ref)``: ``psnr`` (dB, capped at 100), ``ssim``, ``ms_ssim``,
``haarpsi`` (higher is better) and ``gmsd`` (lower is better) -- :mod:`.fullref`;
``lpips`` and ``dists`` (lower is better, need weights) -- :mod:`.learned`.
No reference ``fn(img)``: ``niqe``, ``brisque``, ``piqe`` (lower is better) -- :mod:`.noref`;
optional pyiqa metrics via ``pyiqa_metric`` -- :mod:`.pyiqa_backend`.

``METRICS`` / ``compute`` / ``available_metrics`` -- :mod:`.registry`;
``balanced_scores`` / ``objective_scores`` / ``OBJECTIVES`` / ``quality_score`` -- :mod:`.balanced`
(``OBJECTIVES``, objective name -> metrics, is ``restoregraph.core.objectives.OBJECTIVE_METRICS``).
"""

from restoregraph.metrics.balanced import (
    OBJECTIVES,
    balanced_scores,
    objective_scores,
    quality_score,
)
from restoregraph.metrics.fullref import PSNR_CAP, gmsd, haarpsi, match_size, ms_ssim, psnr, ssim
from restoregraph.metrics.learned import dists, lpips
from restoregraph.metrics.noref import brisque, niqe, piqe
from restoregraph.metrics.pyiqa_backend import pyiqa_metric
from restoregraph.metrics.registry import METRICS, MetricSpec, available_metrics, compute

__all__ = [
    "METRICS",
    "OBJECTIVES",
    "PSNR_CAP",
    "MetricSpec",
    "available_metrics",
    "balanced_scores",
    "brisque",
    "compute",
    "dists",
    "gmsd",
    "haarpsi",
    "lpips",
    "match_size",
    "ms_ssim",
    "niqe",
    "objective_scores",
    "piqe",
    "psnr",
    "pyiqa_metric",
    "quality_score",
    "ssim",
]
