"""The objectives a plan can optimise, and the full-reference metrics each one sums (one place).

An objective scores candidate restorations against a clean reference: the metrics named here are
z-scored over the candidates and summed (``restoregraph.metrics.objective_scores``, the
RestoreAgent balanced score). ``RunContext.objective``, the CLI's ``--objective`` choices, the
oracle planner and the pipeline search all take their names from ``OBJECTIVE_NAMES``.
"""

from __future__ import annotations

# objective -> the metrics it sums (their names in restoregraph.metrics.METRICS)
OBJECTIVE_METRICS: dict[str, tuple[str, ...]] = {
    "balanced": ("psnr", "ssim", "ms_ssim", "gmsd", "haarpsi"),
    "psnr": ("psnr",),
    "ssim": ("ssim",),
    "perceptual": ("ms_ssim", "gmsd", "haarpsi"),
}

OBJECTIVE_NAMES: tuple[str, ...] = tuple(OBJECTIVE_METRICS)
