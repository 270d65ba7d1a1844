"""Rain streak removal by directional morphology, with rain-veil compensation.

Rain streaks are thin, bright, achromatic and share one direction. For each candidate direction
(every 5 degrees within 30 degrees of the vertical) the rain layer is estimated as

    open_along( I - open_across(I) )

(a grey opening with a short line across the streaks keeps the background and drops anything
thinner than the line; the residual is then opened with a longer line along the streaks, which
keeps only elongated structures in that direction). The direction with the most streak energy
wins; the layer, measured on the minimum over channels (rain brightens every channel), is
subtracted from each channel. Distant rain also veils the scene like haze; that contrast loss is
half-compensated from the darkest pixels (a dark-pixel prior).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from restoregraph.tools.classical._common import as_rgb, finish

ANGLES = tuple(range(-30, 31, 5))  # degrees from the vertical, positive = top-left to bottom-right
ACROSS = 5  # px: removes streaks up to ~3 px wide
ALONG = 9  # px: minimum streak length kept as rain
VEIL_GREY = 0.8  # the brightness distant rain veils towards
VEIL_SHARE = 0.5  # how much of the estimated veil to remove (conservative)
VEIL_MAX = 0.15
_DARK_PERCENTILE = 0.5


@functools.cache
def line_element(length: int, angle: float) -> np.ndarray:
    """A one-pixel line structuring element, ``angle`` degrees from the vertical."""
    size = int(length) | 1
    centre = size // 2
    kernel = np.zeros((size, size), dtype=np.uint8)
    theta = np.radians(angle)
    dx, dy = np.sin(theta), np.cos(theta)
    for s in np.linspace(-centre, centre, 4 * size):
        kernel[int(round(centre + s * dy)), int(round(centre + s * dx))] = 1
    kernel.setflags(write=False)
    return kernel


def _open(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(plane, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REFLECT)


def rain_layer(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(estimated additive rain layer (H, W), streak angle in degrees from the vertical)."""
    grey = np.ascontiguousarray(as_rgb(image).min(axis=2))
    best: tuple[float, float, np.ndarray] | None = None
    for angle in ANGLES:
        thin = grey - _open(grey, line_element(ACROSS, angle + 90.0))
        layer = _open(np.ascontiguousarray(thin), line_element(ALONG, float(angle)))
        energy = float(layer.sum())
        if best is None or energy > best[0]:
            best = (energy, float(angle), layer)
    assert best is not None
    return best[2], best[1]


def median(image: np.ndarray) -> np.ndarray:
    """Remove rain streaks (directional morphology) and half of the rain veil."""
    img = as_rgb(image)
    layer, _ = rain_layer(img)
    out = img - layer[..., None]
    dark = float(np.percentile(out.min(axis=2), _DARK_PERCENTILE))
    veil = float(np.clip(VEIL_SHARE * dark / VEIL_GREY, 0.0, VEIL_MAX))
    if veil > 0.0:
        out = (out - VEIL_GREY * veil) / (1.0 - veil)
    return finish(out)
