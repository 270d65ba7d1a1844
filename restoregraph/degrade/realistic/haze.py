"""Haze with a depth-like transmission map: I = J t + A (1 - t), t = exp(-beta d), in linear light.

The depth ``d`` in [near, 1] is estimated from the scene itself, since a clean photo has no depth
map: the vertical position (higher = farther, with a random horizon tilt), bright and
unsaturated regions (the colour-attenuation prior: V - S grows with distance), a dark-channel
estimate (bright dark channel = far), smooth low-frequency noise, all edge-aware smoothed by a
guided filter so depth steps follow object outlines. Sky (bright, low-texture regions reaching
the top of the frame) is put farthest, so it gets the lowest transmission. The airlight ``A`` is
white, grey, bluish or yellowish (smog / dust), dimmer in a dim scene (its 90th-percentile
luminance), slightly non-uniform, and distant detail is softened a little (forward scattering).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from restoregraph.degrade.realistic._common import (
    Sampler,
    as_image,
    finish,
    gaussian,
    guided_filter,
    linear_to_srgb,
    luminance,
    normalise,
    smooth_noise,
    srgb_to_linear,
)

BETA = {1: (0.3, 0.6), 2: (0.6, 1.1), 3: (1.1, 1.9)}
AIRLIGHTS: dict[str, tuple[tuple[float, float, float], tuple[float, float]]] = {
    # kind: (colour, brightness range)
    "white": ((1.0, 1.0, 1.0), (0.85, 0.98)),
    "grey": ((1.0, 1.0, 1.0), (0.62, 0.8)),
    "bluish": ((0.86, 0.93, 1.0), (0.8, 0.95)),
    "yellowish": ((1.0, 0.93, 0.78), (0.78, 0.93)),
}


def _local_std(gray: np.ndarray, radius: int) -> np.ndarray:
    k = (2 * radius + 1, 2 * radius + 1)
    mean = cv2.blur(gray, k)
    var = np.maximum(cv2.blur(gray * gray, k) - mean * mean, 0.0)
    return np.sqrt(var).astype(np.float32)


def sky_mask(image: np.ndarray) -> np.ndarray:
    """A soft [0, 1] mask of sky-like regions: bright, low-texture and connected to the top
    rows of the frame."""
    h, w = image.shape[:2]
    lum = luminance(image)
    radius = max(2, min(h, w) // 64)
    texture = _local_std(gaussian(lum, 1.0), radius)
    bright = lum > max(0.45, float(np.percentile(lum, 55)))
    smooth = texture < max(0.02, float(np.percentile(texture, 30)))
    cand = (bright & smooth).astype(np.uint8)
    opened = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(opened, connectivity=4)
    top_rows = max(1, h // 12)
    touching = set(np.unique(labels[:top_rows])) - {0}
    mask = np.isin(labels, list(touching)) if touching and count > 1 else np.zeros((h, w), bool)
    # Sky sits high: fade out candidates in the lower part of the frame.
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    fade = np.clip((0.8 - rows) / 0.3, 0.0, 1.0)
    soft = gaussian(mask.astype(np.float32), max(1.0, min(h, w) / 100.0)) * fade
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def depth_map(image: np.ndarray, s: Sampler) -> np.ndarray:
    """A smooth, scene-dependent pseudo-depth in [0, 1] (1 = farthest)."""
    h, w = image.shape[:2]
    lum = luminance(image)
    # vertical position with a random horizon tilt and curvature
    tilt = s.uniform("tilt", {1: (-0.25, 0.25), 2: (-0.25, 0.25), 3: (-0.25, 0.25)})
    horizon = s.uniform("horizon", {1: (0.35, 0.75), 2: (0.35, 0.75), 3: (0.35, 0.75)})
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    y = ys / max(h - 1, 1) + tilt * (xs / max(w - 1, 1) - 0.5)
    vertical = np.clip((horizon + 0.25 - y) / (horizon + 0.25), 0.0, 1.0) ** 0.8
    # colour attenuation prior (Zhu et al. 2015): depth ~ brightness - saturation
    vmax = image.max(axis=2)
    sat = (vmax - image.min(axis=2)) / np.maximum(vmax, 1e-3)
    cap = normalise(gaussian(vmax - 0.8 * sat, 2.0))
    # dark channel: min over the channels and a local window
    k = max(3, min(h, w) // 40) | 1
    dark = cv2.erode(image.min(axis=2), np.ones((k, k), np.uint8))
    dark = normalise(dark)
    structure = 0.5 * cap + 0.5 * dark
    noise = smooth_noise(s.rng, h, w, scale=max(h, w) / 3.0, octaves=3)
    w_vert = s.uniform("w_vertical", {1: (0.45, 0.7), 2: (0.45, 0.7), 3: (0.45, 0.7)})
    w_noise = s.uniform("w_noise", {1: (0.1, 0.25), 2: (0.1, 0.25), 3: (0.1, 0.25)})
    d = w_vert * vertical + (1.0 - w_vert) * structure + w_noise * (noise - 0.5)
    radius = max(4, min(h, w) // 24)
    d = guided_filter(lum, gaussian(d, radius / 3.0), radius, 1e-3)
    d = normalise(d)
    sky = sky_mask(image)
    d = np.maximum(d, sky)
    near = s.uniform("near", {1: (0.05, 0.3), 2: (0.05, 0.3), 3: (0.05, 0.3)})
    return (near + (1.0 - near) * np.clip(d, 0.0, 1.0)).astype(np.float32)


def haze(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Depth-dependent haze. Parameters: ``beta`` (density; t = exp(-beta d), d <= 1),
    ``airlight_kind`` (white / grey / bluish / yellowish), ``airlight`` (brightness),
    ``scatter_blur`` (softening of distant detail, pixels at 512 px), and the depth cues'
    ``tilt``, ``horizon``, ``w_vertical``, ``w_noise``, ``near``."""
    img = as_image(image)
    h, w = img.shape[:2]
    s = Sampler("haze", rng, level, overrides)
    beta = s.uniform("beta", BETA)
    kind = s.choice("airlight_kind", tuple(AIRLIGHTS), p=(0.35, 0.25, 0.25, 0.15))
    colour, (a_lo, a_hi) = AIRLIGHTS[kind]
    bright = s.uniform("airlight", {1: (a_lo, a_hi), 2: (a_lo, a_hi), 3: (a_lo, a_hi)})
    scatter = s.uniform("scatter_blur", {1: (0.5, 1.5), 2: (1.0, 2.0), 3: (1.5, 3.0)})
    depth = depth_map(img, s)
    t = np.exp(-beta * depth).astype(np.float32)

    # Airlight: brighter towards the top (light scattered from the sky), gently non-uniform.
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None, None]
    glow = smooth_noise(rng, h, w, scale=max(h, w) / 2.0, octaves=2)[..., None]
    # A dim scene (dusk, overcast) scatters dimmer light: scale the airlight by the scene's key.
    key = float(np.clip(np.percentile(luminance(img), 90) / 0.75, 0.0, 1.0))
    bright *= 0.6 + 0.4 * key
    s.values["airlight_scene_key"] = round(key, 4)
    airlight = np.asarray(colour, np.float32) * bright * (0.94 + 0.06 * rows + 0.05 * (glow - 0.5))
    airlight = np.clip(airlight, 0.0, 1.0)

    # Forward scattering softens distant detail.
    sigma = scatter * min(h, w) / 512.0
    soft = gaussian(img, sigma)
    weight = (1.0 - t)[..., None] * 0.7
    scene = img * (1.0 - weight) + soft * weight

    lin = srgb_to_linear(scene)
    a_lin = srgb_to_linear(airlight)
    out = lin * t[..., None] + a_lin * (1.0 - t[..., None])
    s.done(record)
    return finish(linear_to_srgb(out))
