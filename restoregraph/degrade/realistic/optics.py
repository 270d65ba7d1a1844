"""Optical blur: camera-shake motion blur from random trajectories, and lens defocus.

Both are applied in linear light (so highlights smear into bright streaks / bokeh discs as in a
real exposure), per channel.

Motion: a camera trajectory is a random walk with inertia (velocity perturbed by gaussian
shake, occasional jerks), smoothed by a cubic spline through a few of its points, scaled to the
level's extent and rasterised by bilinear splatting of many time samples (slow parts of the path
collect more weight, as they do during an exposure).

Defocus: a disc with a soft edge (radius by level); optionally the radius varies mildly across
the frame (focus falling off away from a random in-focus point), by blending two blur radii.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from restoregraph.degrade.kernels import disk_kernel
from restoregraph.degrade.realistic._common import (
    Sampler,
    as_image,
    filter2d,
    finish,
    linear_to_srgb,
    smooth_noise,
    srgb_to_linear,
)

EXTENT = {1: (0.012, 0.025), 2: (0.025, 0.045), 3: (0.045, 0.075)}  # x short side
RADIUS = {1: (1.5, 3.0), 2: (3.0, 5.0), 3: (5.0, 8.0)}  # pixels at 512 px


def _span(lo: float, hi: float) -> dict[int, tuple[float, float]]:
    return {1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}


def trajectory_kernel(
    rng: np.random.Generator, extent: float, shake: float, jerk: float, samples: int = 2000
) -> np.ndarray:
    """A normalised motion-blur kernel whose path spans about ``extent`` pixels. ``shake`` in
    [0, 1] sets how erratic the path is (0 = nearly straight), ``jerk`` the probability per step
    of a sudden change of direction."""
    steps = 64
    velocity = np.exp(1j * rng.uniform(0, 2 * np.pi))
    pos = np.zeros(steps, np.complex128)
    for t in range(1, steps):
        kick = (rng.normal() + 1j * rng.normal()) * shake * 0.6
        if rng.random() < jerk:
            kick += 1.5 * np.exp(1j * rng.uniform(0, 2 * np.pi))
        velocity = 0.85 * velocity + kick
        velocity /= max(abs(velocity), 1e-6)
        velocity *= rng.uniform(0.3, 1.0)  # speed varies: slow parts collect more light
        pos[t] = pos[t - 1] + velocity
    knots = np.linspace(0, steps - 1, 7).astype(int)
    tk = knots.astype(np.float64)
    spline_x = CubicSpline(tk, pos.real[knots])
    spline_y = CubicSpline(tk, pos.imag[knots])
    tt = np.linspace(0, steps - 1, samples)
    # time warp: the camera lingers where the walk was slow
    speed = np.abs(np.diff(pos))
    speed = np.interp(tt, np.arange(steps - 1) + 0.5, speed)
    dwell = np.cumsum(1.0 / np.maximum(speed, 0.05))
    tt = np.interp(np.linspace(dwell[0], dwell[-1], samples), dwell, tt)
    # plus a little high-frequency tremor
    x = spline_x(tt) + 0.15 * shake * np.cumsum(rng.normal(size=samples)) / np.sqrt(samples)
    y = spline_y(tt) + 0.15 * shake * np.cumsum(rng.normal(size=samples)) / np.sqrt(samples)
    x -= x.mean()
    y -= y.mean()
    span = max(float(np.ptp(x)), float(np.ptp(y)), 1e-6)
    x *= extent / span
    y *= extent / span
    size = int(np.ceil(extent)) + 4
    size += 1 - size % 2
    c = size // 2
    kernel = np.zeros((size, size), np.float64)
    fx, fy = x + c, y + c
    ix, iy = np.floor(fx).astype(int), np.floor(fy).astype(int)
    ax, ay = fx - ix, fy - iy
    for ox, oy, wgt in (
        (0, 0, (1 - ax) * (1 - ay)),
        (1, 0, ax * (1 - ay)),
        (0, 1, (1 - ax) * ay),
        (1, 1, ax * ay),
    ):
        np.add.at(kernel, (np.clip(iy + oy, 0, size - 1), np.clip(ix + ox, 0, size - 1)), wgt)
    kernel /= kernel.sum()
    return kernel.astype(np.float32)


def motion_blur(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Camera-shake blur. Parameters: ``extent`` (path extent, fraction of the short side),
    ``shake`` (0 = straight, 1 = erratic), ``jerk`` (probability of sudden turns)."""
    img = as_image(image)
    s = Sampler("motion_blur", rng, level, overrides)
    extent = s.uniform("extent", EXTENT) * min(img.shape[:2])
    shake = s.uniform("shake", _span(0.05, 0.8))
    jerk = s.uniform("jerk", _span(0.0, 0.08))
    kernel = trajectory_kernel(rng, max(extent, 1.0 + 1.5 * s.level), shake, jerk)
    s.values["kernel_size"] = int(kernel.shape[0])
    out = linear_to_srgb(filter2d(srgb_to_linear(img), kernel))
    s.done(record)
    return finish(out)


def defocus(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Lens defocus. Parameters: ``radius`` (pixels at 512 px), ``softness`` (soft disc edge, as
    a fraction of the radius), ``varying`` (whether the blur changes across the frame) and
    ``min_ratio`` (the smallest radius there, as a fraction of ``radius``)."""
    img = as_image(image)
    h, w = img.shape[:2]
    s = Sampler("blur", rng, level, overrides)
    radius = s.uniform("radius", RADIUS) * min(h, w) / 512.0
    softness = s.uniform("softness", _span(0.15, 0.5))
    varying = s.flag("varying", 0.5)
    min_ratio = s.uniform("min_ratio", _span(0.4, 0.8))
    lin = srgb_to_linear(img)
    radius = max(radius, 0.5 + 0.5 * s.level)  # small images still get a visible blur
    kernel = disk_kernel(radius, softness=softness * radius)
    out = filter2d(lin, kernel)
    if varying:
        # focus falls off away from a random point, plus smooth irregularity (field curvature)
        fy, fx = rng.uniform(0.2, 0.8, 2)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        dist = np.hypot(ys / h - fy, xs / w - fx) / 0.8
        irregular = smooth_noise(rng, h, w, scale=max(h, w) / 2.0, octaves=2)
        amount = np.clip(0.7 * dist + 0.3 * irregular, 0.0, 1.0)[..., None]
        small_r = max(0.5, radius * min_ratio)
        sharper = filter2d(lin, disk_kernel(small_r, softness=softness * small_r))
        out = sharper * (1.0 - amount) + out * amount
    s.done(record)
    return finish(linear_to_srgb(out))
