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


def border_ratio(before: np.ndarray, after: np.ndarray, band: float = 0.04) -> float:
    """The output's border-to-interior brightness ratio over the input's: the mean luminance
    (Rec. 709) of a band of ``band`` of the short side (at least 1 px) on all four sides,
    divided by the interior's, for ``after`` then for ``before``. 1.0: the step did not darken
    or brighten the border relative to the interior (below 1: a darker border, e.g. a vignette
    or a tool's edge artefact). The two images may differ in size; NaN when one is too small
    to have both a border band and an interior."""

    def ratio(image: np.ndarray) -> float:
        img = np.asarray(image, np.float64)
        luma = img[..., :3] @ np.array([0.2126, 0.7152, 0.0722]) if img.ndim == 3 else img
        h, w = luma.shape[:2]
        b = max(1, round(band * min(h, w)))
        if h <= 2 * b or w <= 2 * b:
            return float("nan")
        inner = np.zeros((h, w), bool)
        inner[b : h - b, b : w - b] = True
        return float((luma[~inner].mean() + 1e-6) / (luma[inner].mean() + 1e-6))

    return ratio(after) / ratio(before)


__all__ = [
    "EXPLICIT_LIMITS",
    "SafetyLimits",
    "border_ratio",
    "clipped_fraction",
    "colour_shift",
    "mean_chromaticity",
    "safety_problem",
]
