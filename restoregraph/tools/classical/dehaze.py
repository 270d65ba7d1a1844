"""Dehazing with the dark channel prior (He, Sun & Tang, CVPR 2009 / TPAMI 2011).

Haze model: ``I = J t + A (1 - t)``. In haze-free patches some channel is nearly black, so the
dark channel of ``I / A`` estimates ``1 - t``. Steps: dark channel over a 15 px window (grown
for images above 600 px), atmospheric light A from the brightest input pixels among the 0.1% with the
haziest dark channel, transmission ``t = 1 - omega * dark(I / A)`` refined by a guided filter on
the grey image, then ``J = (I - A) / max(t, t0) + A`` with ``t0 = 0.1``.
"""

from __future__ import annotations

import cv2
import numpy as np

from restoregraph.tools.classical._common import as_rgb, finish, guided_filter, luminance

OMEGA = 0.9  # haze kept for depth perception (paper: 0.95; 0.9 over-dehazes less)
T0 = 0.1
TOP_FRACTION = 0.001  # brightest 0.1% of the dark channel
_PATCH_AT_600 = 15  # the paper's window for ~600 px images
_GUIDED_EPS = 1e-3


def _patch_size(h: int, w: int) -> int:
    """15 px (the paper's window) up to 600 px, growing with larger images (at most 31)."""
    size = int(round(_PATCH_AT_600 * max(min(h, w), 600) / 600.0))
    size = max(3, min(size, 31, 2 * (min(h, w) // 2) - 1))
    return size if size % 2 == 1 else size + 1


def dark_channel(image: np.ndarray, size: int) -> np.ndarray:
    """Per-pixel minimum over channels, then a ``size`` x ``size`` minimum filter."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    return cv2.erode(image.min(axis=2), kernel, borderType=cv2.BORDER_REFLECT)


def atmospheric_light(image: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Among the top 0.1% dark-channel pixels, the colour of the brightest input pixel."""
    flat_dark = dark.reshape(-1)
    n = max(1, int(round(flat_dark.size * TOP_FRACTION)))
    candidates = np.argpartition(flat_dark, flat_dark.size - n)[-n:]
    pixels = image.reshape(-1, 3)[candidates]
    brightest = pixels[np.argmax(pixels.sum(axis=1))]
    return np.clip(brightest.astype(np.float32), 0.05, 1.0)


def transmission(image: np.ndarray, airlight: np.ndarray, size: int) -> np.ndarray:
    """Guided-filter-refined transmission map in [T0, 1]."""
    normalised = image / airlight[None, None, :]
    raw = 1.0 - OMEGA * dark_channel(normalised.astype(np.float32), size)
    radius = max(2, 4 * size)
    refined = guided_filter(luminance(image), raw.astype(np.float32), radius, _GUIDED_EPS)
    return np.clip(refined, T0, 1.0).astype(np.float32)


def dcp(image: np.ndarray) -> np.ndarray:
    """Dark-channel-prior dehazing."""
    img = as_rgb(image)
    h, w = img.shape[:2]
    size = _patch_size(h, w)
    dark = dark_channel(img, size)
    airlight = atmospheric_light(img, dark)
    t = transmission(img, airlight, size)
    out = (img - airlight[None, None, :]) / t[..., None] + airlight[None, None, :]
    return finish(out)
