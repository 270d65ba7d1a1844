"""Checks a user can trust on a step's output, without a clean reference: how many pixels it
newly clipped, and how far it moved the image's mean colour.

Reflection keeps a step the user asked for ("make it brighter") unless one of these says the
step damaged the photo (``EXPLICIT_LIMITS``); the reply names the check that failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIGH = 254.5 / 255.0  # a channel at (or rounding to) 255
LOW = 0.5 / 255.0  # every channel at (or rounding to) 0


@dataclass(frozen=True)
class SafetyLimits:
    """Bounds a kept step must respect: the share of pixels it may newly clip, and the
    distance its output's mean chromaticity may move (r, g of r/(r+g+b), Euclidean)."""

    max_new_clipped: float = 0.01
    max_colour_shift: float = 0.08


EXPLICIT_LIMITS = SafetyLimits()
# Tasks whose job includes correcting colour (a low-light or hazy photo's cast): their bound is
# the largest chromaticity shift between a clean photo and its realistic synthesis
# (restoregraph.degrade.realistic, 48 training photos x 3 levels: low light p95 0.096, max 0.121;
# haze p95 0.097, max 0.170), so undoing a cast the synthesis models is not "damage".
COLOUR_CORRECTING_LIMITS = SafetyLimits(max_colour_shift=0.12)
TASK_LIMITS: dict[str, SafetyLimits] = {
    "lowlight": COLOUR_CORRECTING_LIMITS,
    "dehaze": COLOUR_CORRECTING_LIMITS,
}


def limits_for(task: str) -> SafetyLimits:
    """The bounds an explicitly requested step of ``task`` must respect."""
    return TASK_LIMITS.get(task, EXPLICIT_LIMITS)


def clipped_fraction(image: np.ndarray) -> float:
    """Share of pixels with a blown channel (>= 254.5/255) or crushed to black (all < 0.5/255)."""
    img = np.asarray(image, np.float32)
    blown = (img >= HIGH).any(axis=-1)
    crushed = (img <= LOW).all(axis=-1)
    return float((blown | crushed).mean())


def mean_chromaticity(image: np.ndarray) -> np.ndarray:
    """(r, g) of the image's mean colour normalised by its sum (brightness-independent)."""
    mean = np.asarray(image, np.float64).reshape(-1, 3).mean(axis=0)
    total = float(mean.sum())
    if total <= 1e-6:
        return np.array([1 / 3, 1 / 3])
    return mean[:2] / total


def colour_shift(before: np.ndarray, after: np.ndarray) -> float:
    """How far the mean chromaticity moved (0 for a pure brightness change)."""
    return float(np.linalg.norm(mean_chromaticity(after) - mean_chromaticity(before)))


def safety_problem(
    before: np.ndarray, after: np.ndarray, limits: SafetyLimits = EXPLICIT_LIMITS
) -> str:
    """Why the step's output cannot be kept ('' when it passes every check)."""
    newly = clipped_fraction(after) - clipped_fraction(before)
    if newly > limits.max_new_clipped:
        return f"it newly clipped {newly:.1%} of the pixels (limit {limits.max_new_clipped:.0%})"
    shift = colour_shift(before, after)
    if shift > limits.max_colour_shift:
        return (
            f"it shifted the mean colour by {shift:.3f} in chromaticity "
            f"(limit {limits.max_colour_shift:g})"
        )
    return ""


def _luma(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, np.float64)
    return img[..., :3] @ np.array([0.2126, 0.7152, 0.0722]) if img.ndim == 3 else img


def _band_mask(h: int, w: int, band: float) -> np.ndarray | None:
    """True on a band of ``band`` of the short side (at least 1 px) on all four sides; None
    when the image is too small to have both a band and an interior."""
    b = max(1, round(band * min(h, w)))
    if h <= 2 * b or w <= 2 * b:
        return None
    mask = np.ones((h, w), bool)
    mask[b : h - b, b : w - b] = False
    return mask


def _tone_curve(x: np.ndarray, y: np.ndarray, bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A monotone curve ``x -> y`` (knots, values): the mean of ``y`` per quantile bin of
    ``x`` at the bin's mean ``x``, made non-decreasing."""
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        return np.array([float(x.mean())]), np.array([float(np.median(y))])
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    knots, values = [], []
    for k in range(len(edges) - 1):
        sel = idx == k
        if sel.any():
            knots.append(float(x[sel].mean()))
            values.append(float(y[sel].mean()))
    return np.asarray(knots), np.maximum.accumulate(np.asarray(values))


def _interp(x: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Piecewise-linear through the knots, extended linearly beyond the end knots."""
    if len(knots) < 2:
        return np.full_like(x, values[0] if len(values) else 0.0)
    out = np.interp(x, knots, values)
    lo, hi = x < knots[0], x > knots[-1]
    s0 = (values[1] - values[0]) / max(knots[1] - knots[0], 1e-9)
    s1 = (values[-1] - values[-2]) / max(knots[-1] - knots[-2], 1e-9)
    out[lo] = values[0] + s0 * (x[lo] - knots[0])
    out[hi] = values[-1] + s1 * (x[hi] - knots[-1])
    return out


def border_ratio(before: np.ndarray, after: np.ndarray, band: float = 0.04) -> float:
    """Did the step darken or brighten the border *relative to what it did to the rest*?

    A band of ``band`` of the short side (at least 1 px) on all four sides is compared with the
    interior. For images of one size, the step's global tone curve is read off the interior
    (the median output luminance per input-luminance bin, Rec. 709) and the ratio is the mean
    output luminance of the band over the mean that curve predicts for the band's input: a
    pure tone change (a gamma curve, brightening a vignetted photo) gives 1.0 however it lifts
    dark corners, while a band the tool itself darkened (an edge artefact) gives below 1. For
    images of different sizes (super-resolution) it is the output's band-to-interior mean
    luminance ratio over the input's. NaN when an image is too small to have both a band and
    an interior."""
    lb, la = _luma(before), _luma(after)
    if lb.shape != la.shape:
        ratios = []
        for luma in (la, lb):
            mask = _band_mask(luma.shape[0], luma.shape[1], band)
            if mask is None:
                return float("nan")
            ratios.append((luma[mask].mean() + 1e-6) / (luma[~mask].mean() + 1e-6))
        return float(ratios[0] / ratios[1])
    mask = _band_mask(lb.shape[0], lb.shape[1], band)
    if mask is None:
        return float("nan")
    knots, values = _tone_curve(lb[~mask], la[~mask])
    predicted = _interp(lb[mask], knots, values)
    return float((la[mask].mean() + 1e-6) / (predicted.mean() + 1e-6))


__all__ = [
    "COLOUR_CORRECTING_LIMITS",
    "EXPLICIT_LIMITS",
    "TASK_LIMITS",
    "limits_for",
    "SafetyLimits",
    "border_ratio",
    "clipped_fraction",
    "colour_shift",
    "mean_chromaticity",
    "safety_problem",
]
