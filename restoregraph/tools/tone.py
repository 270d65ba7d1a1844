"""Soft limits on a tone-changing tool's raw output, so that brightening or dehazing does not
blow highlights or crush shadows that the input still had.

A network that brightens a low-light photo or removes haze is trained on images whose whole
range fits in [0, 1]; on a real photo with a bright sky or deep shadows it pushes some pixels
past the ends, and a plain clamp then turns them into flat, hue-shifted patches (a sky clipped
to cyan). :func:`protect_tones` instead rolls the pixel's *largest* channel off smoothly above
``SHOULDER`` and below ``TOE``: above, it scales all three channels by the same factor, so hue
and the order of brightness are kept; below, it shifts them by the same offset (a factor on a
near-black pixel would blow its other channels up into coloured specks). Where the network overshoots far (a bright sky brightened again),
the shoulder starts earlier (:func:`shoulder_for`), as a camera's highlight curve does. Inside
``[TOE, knee]`` the output is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SHOULDER = 0.9  # above this the largest channel is rolled off towards 1
MIN_SHOULDER = 0.5  # the lowest the shoulder moves to (see :func:`shoulder_for`)
TOE = 0.02  # below this it is rolled off towards 0
TOP = 0.98  # where the shoulder puts the raw output's 99.5th percentile (of the largest channel)
MAX_TOE = 0.12  # the highest the toe moves to (see :func:`toe_for`)
BOTTOM = 2.0 / 255.0  # where the toe puts the 0.5th percentile of what the input had not crushed


def _bisect(below: Callable[[float], bool], lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) bracketing where ``below`` turns False on [lo, hi] (30 halvings)."""
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if below(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _shoulder(m: np.ndarray, knee: float) -> np.ndarray:
    span = 1.0 - knee
    return 1.0 - span * np.exp(-(m - knee) / span)


def shoulder_for(m: np.ndarray, quantile: float = 99.5) -> float:
    """The knee of the shoulder: ``SHOULDER``, moved down (to at most ``MIN_SHOULDER``) until
    the raw output's ``quantile`` percentile of the largest channel lands at or below ``TOP``:
    the stronger the network overshoots on a bright sky, the earlier the roll-off starts, as a
    camera's highlight curve does; an output inside the range keeps its tones."""
    top = float(np.percentile(m, quantile)) if m.size else 0.0
    if top <= SHOULDER or float(_shoulder(np.array(top), SHOULDER)) <= TOP:
        return SHOULDER
    # f(top) rises with the knee: the largest knee that keeps f(top) <= TOP
    return _bisect(
        lambda knee: float(_shoulder(np.array(top), knee)) <= TOP, MIN_SHOULDER, SHOULDER
    )[0]


def _toe(m: np.ndarray, knee: float) -> np.ndarray:
    return knee * np.exp((m - knee) / knee)


def toe_for(m: np.ndarray, quantile: float = 0.5) -> float:
    """The knee of the toe: ``TOE``, moved up (to at most ``MAX_TOE``) until the ``quantile``
    percentile of ``m`` (the largest channel, over the pixels the input had not crushed to
    black) lands at or above ``BOTTOM``: a dehazer that pushes shadows far below zero gets an
    earlier toe instead of black patches."""
    low = float(np.percentile(m, quantile)) if m.size else 1.0
    if low >= TOE or float(_toe(np.array(low), TOE)) >= BOTTOM:
        return TOE
    # f(low) rises with the knee: the smallest knee that lifts f(low) to BOTTOM
    return _bisect(lambda knee: float(_toe(np.array(low), knee)) < BOTTOM, TOE, MAX_TOE)[1]


def _roll(m: np.ndarray, lit: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The smooth (C1) curve on the largest channel (identity between the toe and shoulder),
    and where the toe applies."""
    out = m.copy()
    knee = shoulder_for(m)
    hi = m > knee
    out[hi] = _shoulder(m[hi], knee)
    toe = toe_for(m if lit is None else m[lit])
    lo = m < toe
    out[lo] = _toe(m[lo], toe)
    return out, lo


def protect_tones(raw: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
    """``raw`` (H, W, 3) float output of a tool, any range -> float32 in [0, 1], hue kept.
    With the tool's input ``before`` (same size), the toe adapts to the pixels the input had
    not crushed to black (those stay free to end at black)."""
    raw = np.asarray(raw, np.float32)
    m = raw.max(axis=-1)
    lit = None
    if before is not None and np.shape(before)[:2] == m.shape:
        lit = np.asarray(before, np.float32).max(axis=-1) > 0.5 / 255.0
    target, dark = _roll(m, lit)
    # highlights: all three channels scaled by one factor (hue kept); shadows: all three
    # shifted by one offset (a factor on a near-zero largest channel would blow up the others)
    scale = np.where(dark | (m <= 1e-6), 1.0, target / np.where(m > 1e-6, m, 1.0))
    out = raw * scale[..., None]
    out[dark] += (target - m)[dark][:, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


__all__ = [
    "BOTTOM",
    "MAX_TOE",
    "MIN_SHOULDER",
    "SHOULDER",
    "TOE",
    "TOP",
    "protect_tones",
    "shoulder_for",
    "toe_for",
]
