"""Measure a noisy/clean pair's noise: its level against intensity and its spatial correlation.

Used by the noise fit (``restoregraph.lab.training.noise_fit``) on real pairs and on the
synthesis, and by the tests. Statistics are taken on flat regions of the clean image (where a
residual is noise, not misalignment or an edge) with robust (sigma-clipped) standard deviations.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from restoregraph.imageio import as_float_image

# Intensity bin edges (clean value per channel) of the noise-level curve.
BIN_EDGES = (0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)
HIGHPASS_SIGMA = 5.0
CLIP_CORRECTION = 0.9866  # std of a unit gaussian truncated at +-3 sigma


def robust_std(values: np.ndarray, clip: float = 3.0, rounds: int = 3) -> float:
    """Sigma-clipped standard deviation (values beyond ``clip`` std of the mean dropped, a few
    rounds; the std is corrected for the clipped gaussian tails). Unlike the MAD it is not
    quantised on 8-bit data."""
    v = np.asarray(values, np.float64).ravel()
    if v.size < 2:
        return float("nan")
    keep = v
    for _ in range(rounds):
        mu, sd = float(keep.mean()), float(keep.std())
        if sd <= 0:
            return 0.0
        new = v[np.abs(v - mu) <= clip * sd]
        if new.size == keep.size or new.size < 2:
            keep = new if new.size >= 2 else keep
            break
        keep = new
    return float(keep.std()) / CLIP_CORRECTION


def flat_mask(clean: np.ndarray, quantile: float = 50.0) -> np.ndarray:
    """Pixels whose 5x5 neighbourhood in the clean image is smooth (local std of the luminance
    below the image's ``quantile`` and below 4/255), away from clipping."""
    lum = np.ascontiguousarray(as_float_image(clean).mean(axis=2), np.float32)
    mean = cv2.blur(lum, (5, 5))
    var = np.maximum(cv2.blur(lum * lum, (5, 5)) - mean * mean, 0.0)
    local = np.sqrt(var)
    limit = min(float(np.percentile(local, quantile)), 4.0 / 255.0)
    return (local <= limit) & (lum > 0.02) & (lum < 0.97)


def measure_noise(noisy: np.ndarray, clean: np.ndarray) -> dict[str, Any]:
    """Noise statistics of a pair (0-255 scale for levels):

    ``std``: robust std of the residual on flat pixels (all channels); ``curve``: per intensity
    bin ``[centre, std, pixels]``; ``box_ratio``: std of the residual's 2x2 block means over its
    std (0.5 for independent noise, 1 for fully correlated); ``channel_corr``: mean correlation
    of the residual between colour channels; ``flat_fraction``: share of pixels used.
    """
    n = as_float_image(noisy).astype(np.float32)
    c = as_float_image(clean).astype(np.float32)
    res = n - c
    # Drop the residual's low frequencies (exposure or white-balance drift between the shots
    # of a real pair): what is left is the noise at scales below ~10 pixels.
    res = res - cv2.GaussianBlur(res, (0, 0), HIGHPASS_SIGMA, borderType=cv2.BORDER_REFLECT)
    mask = flat_mask(c)
    h2, w2 = (res.shape[0] // 2) * 2, (res.shape[1] // 2) * 2
    res2, mask2 = res[:h2, :w2], mask[:h2, :w2]
    blocks = res2.reshape(h2 // 2, 2, w2 // 2, 2, 3).mean(axis=(1, 3))
    block_ok = mask2.reshape(h2 // 2, 2, w2 // 2, 2).all(axis=(1, 3))
    flat_res = res[mask]
    std = robust_std(flat_res)
    box_std = robust_std(blocks[block_ok])
    curve = []
    for lo, hi in zip(BIN_EDGES[:-1], BIN_EDGES[1:], strict=True):
        sel = mask[..., None] & (c >= lo) & (c < hi)
        count = int(sel.sum())
        value = robust_std(res[sel]) * 255.0 if count >= 200 else float("nan")
        curve.append([round((lo + hi) / 2, 3), round(value, 3), count])
    if flat_res.shape[0] > 10:
        corr = np.corrcoef(flat_res.T)
        channel_corr = float((corr[0, 1] + corr[0, 2] + corr[1, 2]) / 3.0)
    else:
        channel_corr = float("nan")
    return {
        "std": round(std * 255.0, 4),
        "curve": curve,
        "box_ratio": round(box_std / std, 4) if std > 0 else float("nan"),
        "channel_corr": round(channel_corr, 4),
        "flat_fraction": round(float(mask.mean()), 4),
    }
