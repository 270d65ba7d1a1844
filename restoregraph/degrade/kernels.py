"""Anti-aliased blur kernels and a border-safe convolution, shared by blur, rain and snow."""

from __future__ import annotations

import math

import cv2
import numpy as np

SUPERSAMPLE = 5  # sub-samples per pixel side used to anti-alias kernels


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample coordinates (relative to the kernel centre), shape (size*S, size*S)."""
    s = SUPERSAMPLE
    offsets = (np.arange(size * s, dtype=np.float64) + 0.5) / s - size / 2.0
    return np.meshgrid(offsets, offsets)  # x, y


def _pool(samples: np.ndarray, size: int) -> np.ndarray:
    s = SUPERSAMPLE
    return samples.reshape(size, s, size, s).mean(axis=(1, 3))


def _odd(n: float) -> int:
    k = int(math.ceil(n))
    return k if k % 2 == 1 else k + 1


def disk_kernel(radius: float, softness: float = 0.0, normalize: bool = True) -> np.ndarray:
    """A disk of ``radius`` pixels (pixel coverage, so anti-aliased). ``softness`` > 0 gives a
    soft edge: the weight falls off smoothly over that many pixels inside the rim."""
    radius = max(float(radius), 0.5)
    size = _odd(2 * radius + 2)
    x, y = _grid(size)
    dist = np.hypot(x, y)
    if softness > 0:
        t = np.clip((radius - dist) / softness, 0.0, 1.0)
        samples = t * t * (3.0 - 2.0 * t)  # smoothstep
    else:
        samples = (dist <= radius).astype(np.float64)
    return _finish(_pool(samples, size), normalize)


def line_kernel(
    length: float,
    angle: float,
    width: float = 1.0,
    taper: float = 0.0,
    normalize: bool = True,
) -> np.ndarray:
    """A straight segment ``length`` pixels long and ``width`` wide through the centre, at
    ``angle`` degrees (0 = horizontal, 90 = vertical, counter-clockwise on screen).

    Pixel coverage is computed on a supersampled grid, so the kernel is anti-aliased at any
    angle. ``taper`` in [0, 1] fades the weight towards both ends (1 = fades to zero), as in a
    rain streak. With ``normalize`` the weights sum to 1 (a blur kernel); otherwise the peak is 1.
    """
    length = max(float(length), 1.0)
    width = max(float(width), 0.5)
    theta = math.radians(angle)
    size = _odd(length + width + 2)
    x, y = _grid(size)
    along = x * math.cos(theta) - y * math.sin(theta)  # screen y points down
    across = x * math.sin(theta) + y * math.cos(theta)
    half = length / 2.0
    inside = (np.abs(along) <= half) & (np.abs(across) <= width / 2.0)
    samples = inside.astype(np.float64)
    if taper > 0:
        profile = np.clip(1.0 - np.abs(along) / half, 0.0, 1.0) ** 0.7
        samples *= (1.0 - taper) + taper * profile
    return _finish(_pool(samples, size), normalize)


def _finish(kernel: np.ndarray, normalize: bool) -> np.ndarray:
    kernel = kernel.astype(np.float32)
    total = float(kernel.sum()) if normalize else float(kernel.max())
    if total <= 0:  # degenerate: identity
        kernel = np.zeros_like(kernel)
        kernel[kernel.shape[0] // 2, kernel.shape[1] // 2] = 1.0
        return kernel
    return kernel / np.float32(total)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter a float32 (H, W) or (H, W, C) image with ``kernel`` (reflected borders, any size).

    The kernels used here are point-symmetric, so correlation equals convolution.
    """
    src = np.ascontiguousarray(image, dtype=np.float32)
    out = cv2.filter2D(
        src, -1, np.ascontiguousarray(kernel, dtype=np.float32), borderType=cv2.BORDER_REFLECT
    )
    return np.asarray(out, dtype=np.float32).reshape(src.shape)


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (reflected borders); ``sigma`` in pixels, 0 returns the input."""
    src = np.ascontiguousarray(image, dtype=np.float32)
    if sigma <= 0:
        return src
    out = cv2.GaussianBlur(
        src, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT
    )
    return np.asarray(out, dtype=np.float32).reshape(src.shape)
