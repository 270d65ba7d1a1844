"""Raindrops on the lens or a window: blurred refractive blobs over a slightly defocused scene.

Each drop is a disc (slightly elliptical) that shows the scene behind it refracted: a flipped,
demagnified and blurred view of the region around it, with a darker soft rim and a small
specular highlight. The scene around the drops is mildly defocused (the camera focuses past the
glass). Real photos of this kind: ``real/raindrop_real`` and the RainDrop pairs.
"""

from __future__ import annotations

import cv2
import numpy as np

from restoregraph.degrade._spec import Degradation, Number, Param


def _drop_view(image: np.ndarray, cx: int, cy: int, r: int, blur: float) -> np.ndarray:
    """What the drop at (cx, cy) of radius r shows: the scene within ~2.5 r, flipped and
    squeezed into the drop's box, blurred."""
    h, w = image.shape[:2]
    span = int(2.5 * r)
    y0, y1 = max(0, cy - span), min(h, cy + span + 1)
    x0, x1 = max(0, cx - span), min(w, cx + span + 1)
    patch = image[y0:y1, x0:x1][::-1, ::-1]
    size = 2 * r + 1
    view = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=cv2.INTER_AREA)
    if blur > 0:
        view = cv2.GaussianBlur(view, (0, 0), blur)
    return np.asarray(view, np.float32).reshape(size, size, 3)


def _raindrop(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    h, w = image.shape[:2]
    out = image.copy()
    defocus = float(p["defocus"])
    if defocus > 0:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), defocus), np.float32).reshape(h, w, 3)
    n = max(1, round(float(p["density"]) * h * w / 10_000.0))
    base = float(p["radius"]) * min(h, w) / 256.0
    for _ in range(n):
        r = max(2, int(round(base * rng.uniform(0.4, 1.6))))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ar = rng.uniform(0.7, 1.3)  # ellipticity: drops run and flatten
        size = 2 * r + 1
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
        dist = np.sqrt((xx / ar) ** 2 + (yy * ar) ** 2) / r
        alpha = np.clip((1.0 - dist) * 3.0, 0.0, 1.0)  # soft edge
        rim = np.exp(-(((dist - 0.85) / 0.12) ** 2)) * 0.35
        view = _drop_view(image, cx, cy, r, blur=0.25 * r)
        glint = np.exp(-(((xx + 0.35 * r) ** 2 + (yy + 0.4 * r) ** 2) / (0.02 * r * r + 1.0)))
        drop = view * (1.0 - rim[..., None]) + 0.9 * glint[..., None] * 0.6
        drop = drop * 0.92 + 0.05  # water scatters: lower contrast, slightly brighter
        ys, xs = cy - r, cx - r
        y0, x0 = max(0, ys), max(0, xs)
        y1, x1 = min(h, ys + size), min(w, xs + size)
        if y1 <= y0 or x1 <= x0:
            continue
        sl = (slice(y0 - ys, y1 - ys), slice(x0 - xs, x1 - xs))
        a = alpha[sl][..., None]
        out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1.0 - a) + drop[sl] * a
    return out


RAINDROP = Degradation(
    type="raindrop",
    doc="refractive water drops on the lens/window over a mildly defocused scene",
    params=(
        Param(
            "density",
            ranges=((0.6, 1.2), (1.2, 2.4), (2.4, 4.0)),
            valid=(0.01, 50.0),
            sets_level=True,
            doc="drops per 10 000 pixels",
        ),
        Param(
            "radius",
            ranges=((5.0, 9.0), (6.0, 11.0), (7.0, 13.0)),
            valid=(1.0, 64.0),
            doc="typical drop radius in pixels at a 256 px short side (scaled with the image)",
        ),
        Param(
            "defocus",
            ranges=((0.3, 0.8), (0.6, 1.2), (0.9, 1.6)),
            valid=(0.0, 10.0),
            doc="Gaussian defocus of the scene behind the glass (sigma, pixels)",
        ),
    ),
    apply=_raindrop,
)
