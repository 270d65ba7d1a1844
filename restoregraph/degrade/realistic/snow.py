"""Falling snow: flakes at three depths plus a bright, low-contrast veil.

Far flakes are dense, tiny dots; mid flakes are small soft discs, a share of them streaked by
their fall during the exposure; near flakes are few, large, very soft blobs (out of focus) with
a lower opacity. Flakes are drawn anti-aliased at twice the resolution with a random brightness
each, blurred by their depth, and alpha-composited in a slightly bluish white. The veil (snow
in the air, overcast light) brightens and flattens the scene.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from restoregraph.degrade.kernels import line_kernel
from restoregraph.degrade.realistic._common import Sampler, as_image, filter2d, finish, gaussian

# flakes per square frame (short side x short side) per layer, at any resolution
FAR = {1: (150.0, 300.0), 2: (300.0, 600.0), 3: (600.0, 1100.0)}
MID = {1: (60.0, 120.0), 2: (120.0, 240.0), 3: (240.0, 450.0)}
NEAR = {1: (2.0, 5.0), 2: (4.0, 9.0), 3: (7.0, 15.0)}
VEIL = {1: (0.04, 0.1), 2: (0.08, 0.16), 3: (0.14, 0.26)}


def _span(lo: float, hi: float) -> dict[int, tuple[float, float]]:
    return {1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}


def _flakes(
    rng: np.random.Generator, h: int, w: int, count: int, radius: tuple[float, float]
) -> np.ndarray:
    """``count`` anti-aliased discs (radius range in pixels) with random brightness on an
    (h, w) float32 canvas."""
    ss = 2 if h * w <= 4_000_000 else 1
    shift = 3
    canvas = np.zeros((h * ss, w * ss), np.float32)
    xs = rng.uniform(0, w, count)
    ys = rng.uniform(0, h, count)
    rs = rng.uniform(radius[0], radius[1], count)
    bs = rng.uniform(0.55, 1.0, count)
    scale = ss * (1 << shift)
    for x, y, r, b in zip(xs, ys, rs, bs, strict=True):
        centre = (int(x * scale), int(y * scale))
        cv2.circle(canvas, centre, max(1, int(r * scale)), float(b), -1, cv2.LINE_AA, shift)
    return np.asarray(cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA), np.float32)


def snow(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Falling snow. Parameters: ``far``, ``mid``, ``near`` (flakes per square frame per
    layer), ``size`` (flake size scale), ``streaked`` (share of mid flakes with a fall streak),
    ``fall`` (streak length, pixels at 512 px), ``angle`` (fall direction from the vertical),
    ``opacity``, ``veil``."""
    img = as_image(image)
    h, w = img.shape[:2]
    unit = min(h, w) / 512.0
    area = h * w / min(h, w) ** 2  # counts are per square frame
    s = Sampler("snow", rng, level, overrides)
    n_far = s.uniform("far", FAR)
    n_mid = s.uniform("mid", MID)
    n_near = s.uniform("near", NEAR)
    size = s.uniform("size", _span(0.8, 1.3))
    streaked = s.uniform("streaked", _span(0.0, 0.6))
    fall = s.uniform("fall", _span(6.0, 22.0))
    angle = s.uniform("angle", _span(-30.0, 30.0))
    opacity = s.uniform("opacity", {1: (0.75, 0.9), 2: (0.8, 0.95), 3: (0.85, 1.0)})
    veil = s.uniform("veil", VEIL)

    px = max(unit, 0.5) * size
    far = _flakes(rng, h, w, int(round(n_far * area)), (0.7 * px, 1.4 * px))
    far = gaussian(far, 0.4 * px) * 0.8
    n_mid_all = int(round(n_mid * area))
    n_streak = int(round(n_mid_all * streaked))
    mid = _flakes(rng, h, w, n_mid_all - n_streak, (1.6 * px, 3.5 * px))
    mid = gaussian(mid, 0.7 * px)
    if n_streak:
        moving = _flakes(rng, h, w, n_streak, (1.2 * px, 2.8 * px))
        kernel = line_kernel(max(2.0, fall * unit), 90.0 + angle, width=1.0, taper=0.6)
        moving = gaussian(filter2d(moving, kernel), 0.6 * px)
        peak = float(moving.max())
        moving = moving / peak * 0.9 if peak > 0 else moving
        mid = np.maximum(mid, moving)
    near = _flakes(rng, h, w, max(0, int(round(n_near * area))), (6.0 * px, 14.0 * px))
    near = gaussian(near, 3.0 * px) * 0.75
    layer = np.clip(far + mid + near, 0.0, 1.0) * opacity

    mean = img.reshape(-1, 3).mean(axis=0)
    brightness = float(np.clip(0.75 + 0.5 * mean.mean(), 0.8, 1.0))
    flake_colour = np.array([0.95, 0.97, 1.0], np.float32) * brightness
    veil_colour = np.array([0.86, 0.88, 0.92], np.float32) * (0.9 + 0.1 * brightness)
    out = img * (1.0 - veil) + veil * veil_colour
    a = layer[..., None]
    out = out * (1.0 - a) + flake_colour * a
    s.done(record)
    return finish(out)
