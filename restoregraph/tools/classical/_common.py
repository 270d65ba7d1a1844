"""Small helpers shared by the classical tools (float32 RGB in [0, 1] everywhere).

OpenCV is imported by the functions that use it, so that importing a tool module (to read its
availability check) costs no OpenCV import.
"""

from __future__ import annotations

import numpy as np

# Below this many pixels the noise estimate is done on the full image; above, on a centre crop.
_SIGMA_MAX_SIDE = 768


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as contiguous float32 (no copy when it already is)."""
    return np.ascontiguousarray(image, dtype=np.float32)


def finish(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], replace non-finite values, return contiguous float32."""
    out = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB image."""
    return (0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]).astype(
        np.float32
    )


def _centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    top = max(0, (h - side) // 2)
    left = max(0, (w - side) // 2)
    return image[top : top + side, left : left + side]


# Daubechies-2 high-pass decomposition filter (as pywt.Wavelet("db2").dec_hi).
_DB2_HI = np.array(
    [-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145],
    dtype=np.float64,
)


def estimate_noise(image: np.ndarray) -> float:
    """Gaussian noise standard deviation on the [0, 1] scale.

    The same estimator as ``skimage.restoration.estimate_sigma`` (Donoho's median absolute
    deviation of the finest diagonal db2 wavelet subband, averaged over channels), written
    with OpenCV so that it does not need PyWavelets (not a dependency).
    """
    import cv2

    crop = _centre_crop(image, _SIGMA_MAX_SIDE)
    if min(crop.shape[:2]) < 8:
        return 0.0
    arr = crop.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    sigmas = []
    kernel = np.ascontiguousarray(_DB2_HI[::-1])  # cv2 correlates: flip to convolve
    for c in range(arr.shape[2]):
        dd = cv2.sepFilter2D(
            np.ascontiguousarray(arr[..., c]),
            cv2.CV_64F,
            kernel,
            kernel,
            borderType=cv2.BORDER_REFLECT,
        )[1::2, 1::2]
        sigmas.append(float(np.median(np.abs(dd))) / 0.6744897501960817)
    sigma = float(np.mean(sigmas))
    return sigma if np.isfinite(sigma) else 0.0


def box(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window with reflected borders."""
    import cv2

    k = 2 * radius + 1
    return cv2.boxFilter(image, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a single-channel guide (src may have channels)."""
    guide = guide.astype(np.float32)
    src = src.astype(np.float32)
    mean_i = box(guide, radius)
    var_i = box(guide * guide, radius) - mean_i * mean_i
    if src.ndim == 3:
        mean_i3 = mean_i[..., None]
        mean_p = box(src, radius)
        cov_ip = box(guide[..., None] * src, radius) - mean_i3 * mean_p
        a = cov_ip / (var_i[..., None] + eps)
        b = mean_p - a * mean_i3
        return box(a, radius) * guide[..., None] + box(b, radius)
    mean_p = box(src, radius)
    cov_ip = box(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a, radius) * guide + box(b, radius)
