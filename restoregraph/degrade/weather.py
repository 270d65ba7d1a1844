"""Weather: rain streaks, haze (atmospheric scattering) and falling snow."""

from __future__ import annotations

import cv2
import numpy as np

from restoregraph.degrade._spec import Degradation, Number, Param
from restoregraph.degrade.kernels import convolve, disk_kernel, gaussian, line_kernel


def _seeds(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    """A sparse float32 field: each pixel is a seed with probability ``density``, with a random
    brightness in [0.55, 1]. The uniform draws are made once, so at a higher density (same rng
    state) the seeds are a superset of those at a lower one."""
    u = rng.random(shape, dtype=np.float32)
    brightness = rng.uniform(0.55, 1.0, size=shape).astype(np.float32)
    return np.where(u < density, brightness, np.float32(0.0))


def _screen(image: np.ndarray, layer: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Screen blend of a [0, 1] single-channel light layer of ``color`` over the image."""
    light = layer[..., None] * color[None, None, :]
    return 1.0 - (1.0 - image) * (1.0 - light)


# ---------------------------------------------------------------------------------------- rain


def _rain(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    h, w = image.shape[:2]
    density = float(p["density"])
    length = float(p["length"])
    angle = float(p["angle"])
    width = float(p["width"])
    alpha = float(p["alpha"])
    # Rain falls down, tilted by `angle` from the vertical: 90 degrees in kernel terms is vertical.
    direction = 90.0 - angle
    jitter = float(rng.uniform(-4.0, 4.0))
    # Near layer: long, wide, bright streaks. Far layer: shorter, thinner, fainter, denser.
    layers = (
        (density, length, direction, width, 1.0),
        (density * 1.6, length * 0.55, direction + jitter, max(0.7, width * 0.55), 0.55),
    )
    streaks = np.zeros((h, w), dtype=np.float32)
    for dens, ln, ang, wd, gain in layers:
        seeds = _seeds(rng, (h, w), dens)
        kernel = line_kernel(ln, ang, width=wd, taper=0.8, normalize=False)
        streaks += np.float32(gain) * convolve(seeds, kernel)
    streaks = gaussian(np.clip(streaks, 0.0, 1.0), 0.6)
    # Veiling: distant rain scatters light and lowers contrast a little.
    veil = np.float32(p["veil"])
    hazy = image * (1.0 - veil) + veil * np.float32(0.8)
    color = np.array([0.92, 0.94, 0.97], dtype=np.float32)
    return _screen(hazy, np.float32(alpha) * streaks, color)


RAIN = Degradation(
    type="rain",
    doc="two layers of tapered, anti-aliased, semi-transparent rain streaks (screen-blended)",
    params=(
        Param(
            "density",
            ranges=((0.0012, 0.002), (0.002, 0.0035), (0.0035, 0.006)),
            valid=(0.0, 0.1),
            sets_level=True,
            doc="probability that a pixel starts a streak (near layer)",
        ),
        Param(
            "length",
            ranges=((20.0, 27.0), (27.0, 34.0), (34.0, 40.0)),
            valid=(1.0, 200.0),
            doc="streak length in pixels",
        ),
        Param(
            "angle",
            ranges=((-30.0, 30.0), (-30.0, 30.0), (-30.0, 30.0)),
            valid=(-60.0, 60.0),
            doc="tilt from the vertical in degrees",
        ),
        Param(
            "width",
            ranges=((1.0, 1.7), (1.7, 2.3), (2.3, 3.0)),
            valid=(0.5, 10.0),
            doc="streak width in pixels",
        ),
        Param(
            "alpha",
            ranges=((0.35, 0.45), (0.45, 0.6), (0.6, 0.75)),
            valid=(0.0, 1.0),
            doc="streak opacity",
        ),
        Param(
            "veil",
            ranges=((0.0, 0.04), (0.04, 0.08), (0.08, 0.14)),
            valid=(0.0, 1.0),
            doc="contrast loss from the rain curtain (blend towards grey)",
        ),
    ),
    apply=_rain,
)


# ---------------------------------------------------------------------------------------- haze


def pseudo_depth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth pseudo-depth map in [0, 1] (1 = far): far at the top, near at the bottom, with
    low-frequency variation so the haze is not a plain gradient."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    gradient = np.broadcast_to(1.0 - y, (h, w))
    gh = 4
    gw = min(32, max(2, round(gh * w / max(h, 1))))
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    resized = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    field: np.ndarray = np.asarray(resized, dtype=np.float32).reshape(h, w)
    field = gaussian(field, 0.08 * min(h, w))
    spread = float(np.abs(field).max())
    if spread > 0:
        field = field / spread
    depth = 0.3 + 0.55 * gradient + 0.15 * field
    return np.clip(gaussian(depth.astype(np.float32), 0.02 * min(h, w)), 0.0, 1.0)


def _haze(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    h, w = image.shape[:2]
    depth = pseudo_depth(rng, h, w)
    t = np.exp(-np.float32(p["beta"]) * depth)[..., None]
    airlight = np.float32(p["airlight"]) * np.array([0.97, 0.99, 1.0], dtype=np.float32)
    return image * t + airlight * (1.0 - t)


HAZE = Degradation(
    type="haze",
    doc="atmospheric scattering I = J t + A (1 - t), t = exp(-beta d), smooth pseudo-depth d",
    params=(
        Param(
            "beta",
            ranges=((0.6, 1.0), (1.0, 1.4), (1.4, 1.8)),
            valid=(0.0, 5.0),
            sets_level=True,
            doc="scattering coefficient (larger = thicker haze)",
        ),
        Param(
            "airlight",
            ranges=((0.7, 1.0), (0.7, 1.0), (0.7, 1.0)),
            valid=(0.0, 1.0),
            doc="atmospheric light A (slightly blue-tinted grey)",
        ),
    ),
    apply=_haze,
)


# ---------------------------------------------------------------------------------------- snow

# (radius factor, density factor, opacity, streak factor, defocus blur) for far, mid, near flakes
_SNOW_LAYERS = (
    (0.45, 1.0, 0.55, 0.35, 0.0),
    (0.9, 0.3, 0.8, 0.7, 0.4),
    (1.8, 0.06, 0.9, 1.0, 1.0),
)


def _snow(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    h, w = image.shape[:2]
    density = float(p["density"])
    size = float(p["size"])
    streak = float(p["streak"])
    direction = 90.0 - float(p["angle"])
    cover = np.ones((h, w), dtype=np.float32)  # fraction of light still coming from the scene
    for radius_f, dens_f, opacity, streak_f, blur in _SNOW_LAYERS:
        seeds = _seeds(rng, (h, w), density * dens_f)
        radius = max(0.6, size * radius_f)
        flake = disk_kernel(radius, softness=radius * 0.8, normalize=False)
        ln = streak * streak_f
        if ln >= 1.5:
            trail = line_kernel(ln, direction, width=1.0, normalize=True)
            flake = cv2.filter2D(
                np.pad(flake, trail.shape[0] // 2), -1, trail, borderType=cv2.BORDER_CONSTANT
            )
            flake = flake / max(float(flake.max()), 1e-6)
        layer = convolve(seeds, flake)
        layer = gaussian(layer, blur * size * 0.5) if blur > 0 else layer
        cover *= 1.0 - np.float32(opacity) * np.clip(layer, 0.0, 1.0)
    veil = np.float32(p["veil"])
    hazy = image * (1.0 - veil) + veil * np.float32(0.85)
    white = np.array([0.96, 0.97, 1.0], dtype=np.float32)
    alpha = (1.0 - cover)[..., None]
    return hazy * (1.0 - alpha) + white * alpha


SNOW = Degradation(
    type="snow",
    doc="three layers (far/mid/near) of soft snowflakes with short motion streaks",
    params=(
        Param(
            "density",
            ranges=((0.003, 0.006), (0.006, 0.012), (0.012, 0.024)),
            valid=(0.0, 0.2),
            sets_level=True,
            doc="probability that a pixel holds a far flake (mid/near layers are sparser)",
        ),
        Param(
            "size",
            ranges=((1.6, 2.2), (2.2, 2.8), (2.8, 3.5)),
            valid=(0.5, 20.0),
            doc="base flake radius in pixels (far flakes 0.45x, mid 0.9x, near 1.8x)",
        ),
        Param(
            "streak",
            ranges=((3.0, 6.0), (6.0, 9.0), (9.0, 12.0)),
            valid=(0.0, 60.0),
            doc="motion streak length of the near flakes in pixels",
        ),
        Param(
            "angle",
            ranges=((-35.0, 35.0), (-35.0, 35.0), (-35.0, 35.0)),
            valid=(-90.0, 90.0),
            doc="fall direction, tilt from the vertical in degrees (wind)",
        ),
        Param(
            "veil",
            ranges=((0.03, 0.08), (0.08, 0.14), (0.14, 0.2)),
            valid=(0.0, 1.0),
            doc="whitening / contrast loss of the snowy air",
        ),
    ),
    apply=_snow,
)
