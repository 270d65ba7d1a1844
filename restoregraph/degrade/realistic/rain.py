"""Rain streaks: 1-3 depth layers of anti-aliased streaks, motion-blurred and defocused, plus a
slight veil.

Each layer has its own density, streak length, width, brightness and defocus: the near layer
is sparse, long, wide, soft and bright; far layers are dense, short, thin and faint. Every streak
gets its own length, width and brightness around its layer's values, and the fall direction
(wind) is shared with a small per-layer jitter. Streaks are drawn at twice the resolution, then
blurred along the fall direction (tapered ends, as in a finite exposure) and screen-blended in a
colour that follows the scene's light (rain looks dim in a dark scene).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from restoregraph.degrade.kernels import line_kernel
from restoregraph.degrade.realistic._common import (
    Sampler,
    as_image,
    filter2d,
    finish,
    gaussian,
    screen,
)

# streaks per 10 000 pixels (of the frame scaled to a 512-pixel short side), over all layers
DENSITY = {1: (4.0, 8.0), 2: (8.0, 16.0), 3: (16.0, 30.0)}
LENGTH = {1: (0.08, 0.15), 2: (0.1, 0.2), 3: (0.12, 0.25)}  # near layer, x min(h, w)
VEIL = {1: (0.02, 0.06), 2: (0.05, 0.12), 3: (0.1, 0.2)}
ALPHA = {1: (0.45, 0.7), 2: (0.6, 0.85), 3: (0.7, 0.95)}


def _streak_layer(
    rng: np.random.Generator,
    h: int,
    w: int,
    count: int,
    length: float,
    width: float,
    angle: float,
) -> np.ndarray:
    """``count`` streaks (length, width in pixels; angle from the vertical in degrees) on a
    float32 (h, w) canvas, anti-aliased at 2x (up to 4 Mpixel) and area-downsampled."""
    ss = 2 if h * w <= 4_000_000 else 1
    canvas = np.zeros((h * ss, w * ss), np.float32)
    theta = math.radians(angle)
    dx, dy = math.sin(theta), math.cos(theta)
    xs = rng.uniform(-0.1 * w, 1.1 * w, count)
    ys = rng.uniform(-0.1 * h, 1.1 * h, count)
    lengths = length * rng.uniform(0.55, 1.45, count)
    widths = width * rng.uniform(0.7, 1.3, count)
    bright = rng.uniform(0.45, 1.0, count)
    jitter = rng.normal(0.0, 0.03, count)  # small per-streak direction spread
    shift = 4  # fixed-point bits for sub-pixel coordinates
    scale = ss * (1 << shift)
    for x, y, ln, wd, b, j in zip(xs, ys, lengths, widths, bright, jitter, strict=True):
        ex, ey = dx + j, dy
        p0 = (int((x - ex * ln / 2) * scale), int((y - ey * ln / 2) * scale))
        p1 = (int((x + ex * ln / 2) * scale), int((y + ey * ln / 2) * scale))
        thick = max(1, int(round(wd * ss)))
        cv2.line(canvas, p0, p1, float(b), thick, cv2.LINE_AA, shift)
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.float32)


def rain_streaks(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Rain streaks. Parameters: ``layers`` (1-3), ``density`` (streaks per 10k pixels at a
    512-pixel short side),
    ``length`` (near-layer streak length, fraction of the short side), ``width`` (near-layer
    width, pixels at 512 px), ``angle`` (from the vertical, degrees), ``motion`` (extra blur
    along the fall, fraction of the length), ``defocus`` (near-layer blur, pixels at 512 px),
    ``alpha`` (opacity), ``veil``."""
    img = as_image(image)
    h, w = img.shape[:2]
    unit = min(h, w) / 512.0
    s = Sampler("rain", rng, level, overrides)
    layers = s.integer("layers", {1: (1, 2), 2: (1, 3), 3: (2, 3)})
    density = s.uniform("density", DENSITY)
    length = s.uniform("length", LENGTH) * min(h, w)
    width = s.uniform("width", {1: (1.0, 2.0), 2: (1.2, 2.5), 3: (1.5, 3.0)})
    angle = s.uniform("angle", {1: (-25.0, 25.0), 2: (-25.0, 25.0), 3: (-25.0, 25.0)})
    motion = s.uniform("motion", {1: (0.2, 0.6), 2: (0.2, 0.6), 3: (0.2, 0.6)})
    defocus = s.uniform("defocus", {1: (0.8, 2.0), 2: (0.8, 2.0), 3: (0.8, 2.0)})
    alpha = s.uniform("alpha", ALPHA)
    veil = s.uniform("veil", VEIL)

    # Rain lit by the scene: dimmer in a dark scene, tinted a little by its average colour.
    mean = img.reshape(-1, 3).mean(axis=0)
    light = float(np.clip(0.55 + 0.9 * mean.mean(), 0.6, 1.0))
    colour = np.clip(light * (0.85 + 0.15 * mean / max(float(mean.max()), 1e-3)), 0.0, 1.0)
    colour = colour.astype(np.float32)

    veil_colour = np.clip(0.6 + 0.35 * mean / max(float(mean.max()), 1e-3), 0.0, 1.0)
    out = img * (1.0 - veil) + veil * veil_colour.astype(np.float32)
    shares = (
        (1.0, 0.0, 0.0) if layers == 1 else (0.3, 0.7, 0.0) if layers == 2 else (0.15, 0.35, 0.5)
    )
    # depth factors per layer (near -> far): size, brightness, defocus
    depth = ((1.0, 1.0, 1.0), (0.55, 0.75, 0.45), (0.3, 0.55, 0.2))
    # counts are per frame, whatever its resolution: density is per 10 000 pixels of the frame
    # scaled to a 512-pixel short side
    area = 26.2144 * h * w / min(h, w) ** 2
    for index in range(layers):
        size, gain, blur = depth[index]
        ang = angle + float(rng.normal(0.0, 3.0)) * index
        count = max(1, int(round(density * area * shares[index])))
        ln = length * size
        layer = _streak_layer(rng, h, w, count, ln, max(0.6, width * size * max(unit, 0.6)), ang)
        kernel = line_kernel(max(1.0, motion * ln), 90.0 + ang, width=1.0, taper=0.5)
        layer = filter2d(layer, kernel)
        layer = gaussian(layer, defocus * blur * unit)
        peak = float(np.percentile(layer[layer > 0], 99)) if np.any(layer > 0) else 1.0
        layer = np.clip(layer / max(peak, 1e-3), 0.0, 1.0)
        out = screen(out, alpha * gain * layer, colour)
    s.done(record)
    return finish(out)
