"""Raindrops on the lens or a window in front of it.

Each drop is an irregular blob (ellipse with low-order wobble, some elongated downwards like a
running drop) that acts as a small fish-eye lens: it shows a flipped, scaled (usually zoomed
out: a wider view) and blurred picture of the scene around it, squeezed towards its rim. Its
edge is soft, its rim darker (light leaving at grazing angles), with a specular highlight near
the top and a faint bright caustic crescent near the bottom. The camera focuses past the glass,
so the drops are out of focus (soft alpha) and the scene right around them is slightly defocused
(the thin water film). Drop sizes follow a power law: many small, a few large.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from restoregraph.degrade.realistic._common import Sampler, as_image, finish, gaussian

# drops per square frame (short side x short side), at any resolution
COUNT = {1: (12.0, 30.0), 2: (30.0, 60.0), 3: (60.0, 100.0)}
R_MAX = {1: (0.06, 0.09), 2: (0.07, 0.11), 3: (0.08, 0.13)}  # largest radius, x short side


def _span(lo: float, hi: float) -> dict[int, tuple[float, float]]:
    return {1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}


def raindrops(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Raindrops on the lens. Parameters: ``count`` (drops per square frame), ``r_max``
    (largest radius, fraction of the short side), ``zoom`` (how much wider than the drop the
    refracted view is), ``rim`` (rim darkening), ``highlight``, ``edge_blur`` (defocus of the
    drops, fraction of the mean radius), ``film_blur`` (defocus of the scene around them,
    pixels at 512 px), ``running`` (share of elongated, running drops)."""
    img = as_image(image)
    h, w = img.shape[:2]
    short = min(h, w)
    s = Sampler("raindrop", rng, level, overrides)
    count = s.uniform("count", COUNT)
    r_max = s.uniform("r_max", R_MAX) * short
    zoom = s.uniform("zoom", _span(1.3, 2.4))
    rim = s.uniform("rim", _span(0.06, 0.18))
    highlight = s.uniform("highlight", _span(0.2, 0.5))
    edge_blur = s.uniform("edge_blur", _span(0.12, 0.3))
    film_blur = s.uniform("film_blur", _span(1.5, 3.5)) * short / 512.0
    running = s.uniform("running", _span(0.0, 0.3))

    n = max(1, int(round(count * h * w / short**2)))
    r_min = max(1.5, 0.012 * short)
    radii = r_min + (r_max - r_min) * rng.random(n) ** 2.5
    radii = np.sort(radii)  # small drops first: large ones lie on top
    centres_x = rng.uniform(0, w, n)
    centres_y = rng.uniform(0, h, n)

    map_x = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    alpha = np.zeros((h, w), np.float32)
    shade = np.ones((h, w), np.float32)  # multiplicative: dark rim
    light = np.zeros((h, w), np.float32)  # additive: highlight and caustic
    for r, cx, cy in zip(radii, centres_x, centres_y, strict=True):
        aspect = float(rng.uniform(0.8, 1.25))
        rot = float(rng.uniform(0, math.pi))
        wob = rng.uniform(0.0, 0.12, 2)
        phase = rng.uniform(0, 2 * math.pi, 2)
        stretch = float(rng.uniform(0.3, 1.0)) if rng.random() < running else 0.0
        view_shift = rng.normal(0.0, 0.3, 2) * r
        spec = rng.uniform(0.7, 1.0)
        ext = int(math.ceil(r * (1.4 + stretch))) + 2
        x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
        y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - np.float32(cx), yy - np.float32(cy)
        # shape: rotated ellipse with wobble, elongated downwards for running drops
        u = dx * math.cos(rot) + dy * math.sin(rot)
        v = -dx * math.sin(rot) + dy * math.cos(rot)
        ang = np.arctan2(dy, dx)
        radius = r * (
            1.0 + wob[0] * np.cos(2 * ang + phase[0]) + wob[1] * np.cos(3 * ang + phase[1])
        )
        radius = radius * (1.0 + stretch * np.clip(np.sin(ang), 0.0, None) ** 2)
        rho = np.sqrt((u / aspect) ** 2 + (v * aspect) ** 2) / np.maximum(radius, 1e-3)
        inside = rho < 1.0
        if not inside.any():
            continue
        a = np.clip((1.0 - rho) / 0.12, 0.0, 1.0)
        a = a * a * (3.0 - 2.0 * a)
        take = a > alpha[y0:y1, x0:x1]
        # refraction: a flipped, zoomed-out view, compressed towards the rim (fish-eye)
        k = zoom * (1.0 + 0.35 * np.clip(rho, 0.0, 1.0) ** 2)
        src_x = np.float32(cx + view_shift[0]) - dx * k
        src_y = np.float32(cy + view_shift[1]) - dy * k
        map_x[y0:y1, x0:x1] = np.where(take, src_x, map_x[y0:y1, x0:x1])
        map_y[y0:y1, x0:x1] = np.where(take, src_y, map_y[y0:y1, x0:x1])
        ring = np.exp(-(((rho - 0.85) / 0.18) ** 2)) * rim
        # the rim is darker on the upper side (light comes from above, exits at the bottom)
        ring = ring * (1.0 + 0.4 * np.clip(-np.sin(ang), 0.0, 1.0))
        shade[y0:y1, x0:x1] = np.where(take, 1.0 - ring, shade[y0:y1, x0:x1])
        hx, hy = -0.35 * r, -0.42 * r
        glint = np.exp(-((dx - hx) ** 2 + (dy - hy) ** 2) / (2 * (0.12 * r + 0.5) ** 2))
        caustic = np.exp(-(((rho - 0.7) / 0.1) ** 2)) * np.clip(np.sin(ang), 0.0, 1.0) ** 3
        spot = highlight * spec * glint + 0.15 * caustic
        light[y0:y1, x0:x1] = np.where(take, spot, light[y0:y1, x0:x1])
        alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], a)

    # what the drops show: the scene (itself out of focus through the water) refracted
    content_src = gaussian(img, max(1.0, 0.2 * float(np.mean(radii))))
    content = cv2.remap(content_src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    content = np.asarray(content, np.float32).reshape(h, w, 3)
    content = content * shade[..., None] + light[..., None]
    content = content * 0.9 + 0.07  # water scatters: lower contrast, brighter

    # the drops are out of focus: soften their edges (and their rims / highlights with them)
    blur = max(0.8, edge_blur * float(np.mean(radii)))
    alpha = gaussian(alpha, blur)
    content = gaussian(content, blur * 0.7)
    # the water film around the drops defocuses the scene a little
    film = np.clip(gaussian(alpha, 0.6 * float(np.mean(radii)) + 1.0) * 2.0, 0.0, 1.0)
    scene = img + (gaussian(img, film_blur) - img) * film[..., None]
    out = scene * (1.0 - alpha[..., None]) + content * alpha[..., None]
    s.done(record)
    return finish(out)
