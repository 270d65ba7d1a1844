"""Shared pieces of the realistic synthesis: parameter sampling, colour spaces, filters, JPEG."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
from PIL import Image

from restoregraph.core.errors import InputError
from restoregraph.imageio import as_float_image, to_uint8

LEVELS = (1, 2, 3)

# Per-level sampling ranges: level -> (lo, hi).
Ranges = Mapping[int, tuple[float, float]]


def check_level(level: object) -> int:
    if isinstance(level, bool) or not isinstance(level, int | np.integer) or level not in LEVELS:
        raise InputError(f"degradation level must be 1, 2 or 3, got {level!r}")
    return int(level)


def as_image(image: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1], contiguous (a copy when the input is not already that)."""
    return np.ascontiguousarray(as_float_image(image), dtype=np.float32)


def finish(image: np.ndarray) -> np.ndarray:
    out = np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0)
    return np.ascontiguousarray(out, dtype=np.float32)


class Sampler:
    """Draws a function's random parameters for a level, honouring explicit overrides.

    Every parameter is drawn from ``rng`` whether or not it is overridden, so the random stream
    (drop positions, noise fields) does not depend on which parameters were given. ``values``
    records what was used (plain floats / ints / lists), for logs and tests.
    """

    def __init__(
        self, name: str, rng: np.random.Generator, level: int, overrides: Mapping[str, Any]
    ) -> None:
        self.name = name
        self.rng = rng
        self.level = check_level(level)
        self.overrides = dict(overrides)
        self.values: dict[str, Any] = {}

    def _take(self, key: str, drawn: Any) -> Any:
        value = self.overrides.get(key, drawn)
        self.values[key] = value
        return value

    def uniform(self, key: str, ranges: Ranges, log: bool = False) -> float:
        lo, hi = ranges[self.level]
        u = float(self.rng.random())
        if log:
            drawn = float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))
        else:
            drawn = lo + u * (hi - lo)
        return float(self._take(key, round(drawn, 6)))

    def integer(self, key: str, ranges: Mapping[int, tuple[int, int]]) -> int:
        lo, hi = ranges[self.level]
        return int(self._take(key, int(self.rng.integers(lo, hi + 1))))

    def choice(self, key: str, options: tuple[Any, ...], p: tuple[float, ...] | None = None) -> Any:
        index = int(self.rng.choice(len(options), p=p))
        return self._take(key, options[index])

    def flag(self, key: str, probability: float) -> bool:
        return bool(self._take(key, bool(self.rng.random() < probability)))

    def done(self, record: dict[str, Any] | None) -> None:
        unknown = sorted(set(self.overrides) - set(self.values))
        if unknown:
            valid = ", ".join(sorted(self.values))
            raise InputError(f"{self.name}: unknown parameter(s) {unknown}; valid: {valid}")
        if record is not None:
            record.update(self.values)


# ----------------------------------------------------------------------------- colour / tone


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    x = np.clip(image, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    x = np.clip(image, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


class ToneCurve:
    """A camera tone curve: sRGB gamma, then a blend with a smoothstep S-curve (``contrast`` in
    [0, 1], 0 = plain sRGB), then an exposure-style ``gamma`` tweak. Monotonic, so invertible
    (by table)."""

    def __init__(self, contrast: float = 0.0, gamma: float = 1.0) -> None:
        self.contrast = float(contrast)
        self.gamma = float(gamma)
        x = np.linspace(0.0, 1.0, 4097, dtype=np.float64)
        self._x = x
        self._y = self._forward_exact(x)

    def _forward_exact(self, lin: np.ndarray) -> np.ndarray:
        y = np.asarray(linear_to_srgb(lin.astype(np.float32)), dtype=np.float64)
        s = y * y * (3.0 - 2.0 * y)
        y = (1.0 - self.contrast) * y + self.contrast * s
        return np.power(np.clip(y, 0.0, 1.0), self.gamma)

    def forward(self, lin: np.ndarray) -> np.ndarray:
        return np.interp(np.clip(lin, 0.0, 1.0), self._x, self._y).astype(np.float32)

    def inverse(self, img: np.ndarray) -> np.ndarray:
        return np.interp(np.clip(img, 0.0, 1.0), self._y, self._x).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    return (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


# ----------------------------------------------------------------------------------- filters


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    src = np.ascontiguousarray(image, dtype=np.float32)
    if sigma <= 0.05:
        return src.copy()
    out = cv2.GaussianBlur(src, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)
    return np.asarray(out, dtype=np.float32).reshape(src.shape)


def filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve (flipped kernel, so true convolution) with reflected borders."""
    src = np.ascontiguousarray(image, dtype=np.float32)
    k = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    out = cv2.filter2D(src, -1, k, borderType=cv2.BORDER_REFLECT)
    return np.asarray(out, dtype=np.float32).reshape(src.shape)


def box(image: np.ndarray, radius: int) -> np.ndarray:
    k = 2 * int(radius) + 1
    out = cv2.blur(np.ascontiguousarray(image, np.float32), (k, k), borderType=cv2.BORDER_REFLECT)
    return np.asarray(out, np.float32).reshape(np.shape(image))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide: smooths ``src`` while keeping ``guide``'s
    edges."""
    g = np.ascontiguousarray(guide, np.float32)
    s = np.ascontiguousarray(src, np.float32)
    mean_g, mean_s = box(g, radius), box(s, radius)
    cov = box(g * s, radius) - mean_g * mean_s
    var = box(g * g, radius) - mean_g * mean_g
    a = cov / (var + np.float32(eps))
    b = mean_s - a * mean_g
    return (box(a, radius) * g + box(b, radius)).astype(np.float32)


def smooth_noise(
    rng: np.random.Generator, height: int, width: int, scale: float, octaves: int = 3
) -> np.ndarray:
    """Low-frequency fractal noise in [0, 1]: ``octaves`` bicubic-upsampled random grids whose
    coarsest cell is ``scale`` pixels (amplitude halves per octave)."""
    total = np.zeros((height, width), np.float32)
    amp, weight = 1.0, 0.0
    cell = max(float(scale), 2.0)
    for _ in range(octaves):
        gh = max(2, int(np.ceil(height / cell)) + 2)
        gw = max(2, int(np.ceil(width / cell)) + 2)
        grid = rng.random((gh, gw), dtype=np.float32)
        up = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        total += np.float32(amp) * up[:height, :width]
        weight += amp
        amp *= 0.5
        cell = max(cell / 2.0, 2.0)
    total /= np.float32(weight)
    lo, hi = float(total.min()), float(total.max())
    return ((total - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [1.0, 99.0])
    return np.clip((x - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)


def screen(image: np.ndarray, layer: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Screen-blend a single-channel [0, 1] light layer of ``colour`` over the image."""
    light = np.clip(layer, 0.0, 1.0)[..., None] * colour[None, None, :]
    return (1.0 - (1.0 - image) * (1.0 - light)).astype(np.float32)


# -------------------------------------------------------------------------------- resampling


def jpeg(image: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    """A Pillow JPEG round-trip; ``subsampling`` 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(
        buf, format="JPEG", quality=int(quality), subsampling=int(subsampling)
    )
    buf.seek(0)
    with Image.open(buf) as decoded:
        arr = np.asarray(decoded.convert("RGB"), dtype=np.float32)
    return arr / np.float32(255.0)


INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


def resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    out = cv2.resize(
        np.ascontiguousarray(image, np.float32),
        (max(1, int(width)), max(1, int(height))),
        interpolation=INTERPOLATIONS[method],
    )
    return np.asarray(out, np.float32).reshape(max(1, int(height)), max(1, int(width)), -1)
