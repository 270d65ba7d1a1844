"""Full-reference metrics: PSNR, SSIM, MS-SSIM, GMSD, HaarPSI.

All functions take ``(img, ref)``: float32 RGB arrays (H, W, 3) in [0, 1] of the same shape
(uint8/uint16/gray arrays are converted). Different shapes raise ``InputError``; use
:func:`match_size` first when a pipeline changes the size (e.g. after super-resolution).

Numbers are those of piq 0.8 (``data_range=1``, RGB, default parameters):

* ``psnr``: over all three channels, squared errors summed in float64, computed here (piq adds
  ``1e-8`` to the MSE, which biases high PSNRs). Identical images, and any pair above 100 dB,
  give ``PSNR_CAP`` = 100 dB instead of infinity, so scores stay finite for z-scores and JSON.
* ``ssim`` / ``ms_ssim``: the same algorithm as ``piq.ssim`` / ``piq.multi_scale_ssim`` (11x11
  Gaussian window, sigma 1.5, K1=0.01, K2=0.03, 'valid' filtering, per-channel mean; ``ssim``
  average-pools by ``round(min(H, W) / 256)`` first, as piq and the reference MATLAB code do),
  re-implemented with separable float32 OpenCV filters because piq's grouped 11x11 convolutions
  take ~15 ms on a 256x256 image on CPU. The tests check agreement with piq (5e-5 for SSIM,
  1e-5 for MS-SSIM; piq's own float32 convolutions are the larger error). Identical images
  give exactly 1.
* ``ms_ssim`` needs ``(11 - 1) * 2 ** (levels - 1) + 1`` pixels on the short side: 161 px for the
  standard 5 scales. Smaller images use as many scales as fit, with the first weights of
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) renormalised to sum to 1 -- exactly what piq computes
  when given those ``scale_weights``. Images are never upsampled.
* Images under 11 px on a side (the loader refuses under 8 px) use a Gaussian window truncated
  to the image, so SSIM stays defined there too.
* ``gmsd`` (lower is better, 0 for identical images) and ``haarpsi`` (1 for identical images):
  piq's algorithms re-implemented with OpenCV in float64 (agreement with piq checked in the
  tests). Going through torch costs ~10x more on a busy 2-core machine (OpenMP thread
  start-up and spinning), for the same numbers. HaarPSI needs at least 16x16 pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.imageio import resize_bicubic
from restoregraph.metrics._common import to_image, to_pair

PSNR_CAP = 100.0
"""PSNR reported for identical images (and any pair with MSE below 1e-10)."""

SSIM_KERNEL_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr(img: np.ndarray, ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0, all channels); capped at ``PSNR_CAP``."""
    a, b = to_pair(img, ref)
    diff = a - b  # float32: exact enough (relative error 6e-8), half the memory traffic
    np.multiply(diff, diff, out=diff)
    mse = float(diff.sum(dtype=np.float64)) / diff.size  # float64 pairwise accumulation
    if mse <= 10.0 ** (-PSNR_CAP / 10.0):
        return PSNR_CAP
    return min(PSNR_CAP, -10.0 * math.log10(mse))


@lru_cache(maxsize=16)
def _gauss1d(size: int, sigma: float) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    g /= g.sum()
    g.flags.writeable = False
    return g


def _window_size(min_side: int) -> int:
    if min_side >= SSIM_KERNEL_SIZE:
        return SSIM_KERNEL_SIZE
    return max(1, min_side if min_side % 2 == 1 else min_side - 1)


_STRIP_ELEMENTS = 1 << 17  # floats per temporary array when filtering in horizontal strips


def _ssim_cs(x: np.ndarray, y: np.ndarray, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and contrast-structure terms over the 'valid' region.

    Only window positions that lie fully inside the image are averaged -- the same numbers as
    piq's unpadded convolutions. The work runs in float32 (within 1e-6 of a float64
    computation) over horizontal strips (with a ksize // 2 halo) of ~512 KB temporaries,
    in place where possible: on CPU, large temporaries cost more in page faults and memory
    traffic than the filtering itself (3x faster on 512x512 than whole-image arrays).
    """
    x, y = x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)
    h, w, c = x.shape
    g = _gauss1d(ksize, SSIM_SIGMA).astype(np.float32)
    r = ksize // 2
    c1, c2 = SSIM_K1**2, SSIM_K2**2

    def blur(z: np.ndarray) -> np.ndarray:
        out = cv2.sepFilter2D(z, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT)
        return out.reshape(z.shape)

    ss_sum = np.zeros(c)
    cs_sum = np.zeros(c)
    rows = max(4 * ksize, _STRIP_ELEMENTS // (w * c) - 2 * r)
    for top in range(r, h - r, rows):  # valid output rows [top, bottom)
        bottom = min(top + rows, h - r)
        xs, ys = x[top - r : bottom + r], y[top - r : bottom + r]
        mu_x, mu_y = blur(xs), blur(ys)
        buf = np.multiply(xs, xs)
        sigma_xx = blur(buf)
        sigma_yy = blur(np.multiply(ys, ys, out=buf))
        sigma_xy = blur(np.multiply(xs, ys, out=buf))
        mu_xy = mu_x * mu_y
        mu_xx = np.multiply(mu_x, mu_x, out=mu_x)
        mu_yy = np.multiply(mu_y, mu_y, out=mu_y)
        sigma_xx -= mu_xx
        sigma_yy -= mu_yy
        sigma_xy -= mu_xy
        # cs = (2 sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
        cs = sigma_xy
        cs *= 2.0
        cs += c2
        sigma_xx += sigma_yy
        sigma_xx += c2
        cs /= sigma_xx
        # ssim = (2 mu_xy + c1) / (mu_xx + mu_yy + c1) * cs
        ss = mu_xy
        ss *= 2.0
        ss += c1
        mu_xx += mu_yy
        mu_xx += c1
        ss /= mu_xx
        ss *= cs
        # cv2 sums a strided (ROI) view without copying, per channel (c <= 4).
        n_rows = bottom - top
        ss_sum += cv2.sumElems(ss[r : r + n_rows, r : w - r])[:c]
        cs_sum += cv2.sumElems(cs[r : r + n_rows, r : w - r])[:c]
    n = (h - 2 * r) * (w - 2 * r)
    return ss_sum / n, cs_sum / n


def _avg_pool(x: np.ndarray, f: int) -> np.ndarray:
    """f x f average pooling with stride f (drops the remainder), as ``F.avg_pool2d``."""
    hh, ww = x.shape[0] // f, x.shape[1] // f
    out = np.zeros((hh, ww, x.shape[2]), dtype=x.dtype)
    for i in range(f):  # sum of strided views: much faster than a reshape + mean in numpy
        for j in range(f):
            out += x[i : hh * f : f, j : ww * f : f]
    out *= 1.0 / (f * f)
    return out


def ssim(img: np.ndarray, ref: np.ndarray) -> float:
    """Structural similarity (mean over RGB channels); 1 for identical images."""
    x, y = to_pair(img, ref)
    f = max(1, round(min(x.shape[:2]) / 256))
    if f > 1:
        x, y = _avg_pool(x, f), _avg_pool(y, f)
    ss, _ = _ssim_cs(x, y, _window_size(min(x.shape[:2])))
    return float(ss.mean())


def ms_ssim_levels(height: int, width: int) -> int:
    """How many MS-SSIM scales (1..5) fit an image of this size."""
    side = min(height, width)
    levels = 1
    while levels < len(MS_SSIM_WEIGHTS) and (SSIM_KERNEL_SIZE - 1) * 2**levels + 1 <= side:
        levels += 1
    return levels


def ms_ssim(img: np.ndarray, ref: np.ndarray) -> float:
    """Multi-scale SSIM; uses fewer scales (renormalised weights) on images under 161 px."""
    x, y = to_pair(img, ref)
    levels = ms_ssim_levels(*x.shape[:2])
    weights = np.array(MS_SSIM_WEIGHTS[:levels], dtype=np.float64)
    weights /= weights.sum()
    ksize = _window_size(min(x.shape[:2]))
    terms = []
    ss = np.ones(3)
    for level in range(levels):
        if level > 0:
            pad = max(x.shape[0] % 2, x.shape[1] % 2)
            if pad:
                x = np.pad(x, ((pad, 0), (pad, 0), (0, 0)), mode="edge")
                y = np.pad(y, ((pad, 0), (pad, 0), (0, 0)), mode="edge")
            x, y = _avg_pool(x, 2), _avg_pool(y, 2)
        ss, cs = _ssim_cs(x, y, ksize)
        terms.append(cs)
    terms[-1] = ss
    stacked = np.maximum(np.stack(terms), 0.0)  # (levels, channels)
    per_channel = np.prod(stacked ** weights[:, None], axis=0)
    return float(per_channel.mean())


_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]],
    dtype=np.float64,
)
_PREWITT_X = np.array([[-1.0, 0.0, 1.0]] * 3, dtype=np.float64) / 3.0
_FLOAT32_EPS = float(np.finfo(np.float32).eps)  # piq's eps (its tensors are float32)


def _pad_pool2(x: np.ndarray) -> np.ndarray:
    """piq's subsampling: zero-pad bottom/right by max(H % 2, W % 2), then 2x2 average pool."""
    p = max(x.shape[0] % 2, x.shape[1] % 2)
    if p:
        x = np.pad(x, ((0, p), (0, p)) + ((0, 0),) * (x.ndim - 2))
    return _avg_pool(x if x.ndim == 3 else x[..., None], 2).reshape(
        x.shape[0] // 2, x.shape[1] // 2, *x.shape[2:]
    )


def gmsd(img: np.ndarray, ref: np.ndarray) -> float:
    """Gradient magnitude similarity deviation; 0 for identical images, lower is better.

    piq's ``gmsd`` (luma of YIQ, 2x2 average pooling, Prewitt gradients with zero padding,
    T = 170 / 255^2), computed with OpenCV in float64: same numbers (tests: within 1e-6) without
    torch's thread start-up, which costs more than the metric on a busy 2-core machine.
    """
    a, b = to_pair(img, ref)
    t = 170.0 / 255.0**2

    def grad_mag(z: np.ndarray) -> np.ndarray:
        # pooling and the colour transform are linear: pool first (4x less to convert)
        luma = cv2.transform(_pad_pool2(z).astype(np.float64), _YIQ[:1])
        gx = cv2.filter2D(luma, cv2.CV_64F, _PREWITT_X, borderType=cv2.BORDER_CONSTANT)
        gy = cv2.filter2D(luma, cv2.CV_64F, _PREWITT_X.T, borderType=cv2.BORDER_CONSTANT)
        return np.sqrt(gx * gx + gy * gy)

    gx, gy = grad_mag(a), grad_mag(b)
    gms = (2.0 * gx * gy + t) / (gx * gx + gy * gy + t)
    return float(gms.std())


def _haar_coefficients(luma: np.ndarray, scales: int) -> list[np.ndarray]:
    """[h_0, v_0, h_1, v_1, ...]: piq's Haar responses, zero-padded like MATLAB conv2 'same'."""
    out = []
    h, w = luma.shape
    for scale in range(scales):
        k = 2 ** (scale + 1)
        steps = np.concatenate([np.ones(k // 2), -np.ones(k // 2)])
        flat = np.full(k, 1.0 / k)
        lo, hi = k // 2 - 1, k // 2
        padded = np.pad(luma, ((lo, hi), (lo, hi)))
        for kx, ky in ((flat, steps), (steps, flat)):  # piq's kernel, then its transpose
            resp = cv2.sepFilter2D(
                padded, cv2.CV_64F, kx, ky, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
            )
            out.append(resp[:h, :w])
    return out


def haarpsi(img: np.ndarray, ref: np.ndarray) -> float:
    """Haar wavelet-based perceptual similarity; 1 for identical images, higher is better.

    piq's ``haarpsi`` (3 scales, subsampling, C = 30, alpha = 4.2, YIQ chroma term) computed
    with OpenCV in float64: same numbers (tests: within 1e-5; piq's float32 is the larger
    error), no torch. Needs at least 16x16 pixels.
    """
    a, b = to_pair(img, ref)
    if min(a.shape[:2]) < 16:
        raise InputError(f"haarpsi needs at least 16x16 pixels, got {a.shape[1]}x{a.shape[0]}")
    c, alpha = 30.0, 4.2

    def prepare(z: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        yiq = cv2.transform(_pad_pool2(z).astype(np.float64), _YIQ * 255.0)
        coeffs = _haar_coefficients(np.ascontiguousarray(yiq[..., 0]), 3)
        iq = np.pad(yiq[..., 1:], ((0, 1), (0, 1), (0, 0)))
        iq = np.abs(0.25 * (iq[:-1, :-1] + iq[1:, :-1] + iq[:-1, 1:] + iq[1:, 1:]))
        return coeffs, iq

    def sim(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (2.0 * u * v + c) / (u * u + v * v + c)

    cx, iqx = prepare(a)
    cy, iqy = prepare(b)
    weights = [np.maximum(np.abs(cx[k]), np.abs(cy[k])) for k in (4, 5)]
    weights.append(0.5 * (weights[0] + weights[1]))
    sims = [
        0.5 * (sim(np.abs(cx[o]), np.abs(cy[o])) + sim(np.abs(cx[o + 2]), np.abs(cy[o + 2])))
        for o in (0, 1)
    ]
    sims.append(0.5 * (sim(iqx[..., 0], iqy[..., 0]) + sim(iqx[..., 1], iqy[..., 1])))
    num = sum(
        float(np.sum(w / (1.0 + np.exp(-alpha * s)))) for w, s in zip(weights, sims, strict=True)
    )
    den = sum(float(np.sum(w)) for w in weights)
    score = (num + _FLOAT32_EPS) / (den + _FLOAT32_EPS)
    value = (math.log(score / (1.0 - score)) / alpha) ** 2
    return min(value, 1.0)


def match_size(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Return a new copy of ``img`` bicubic-resized to ``ref``'s height and width (if different).

    Uses Pillow's bicubic filter per channel in float32, which antialiases when shrinking
    (as MATLAB's ``imresize``); the result is clipped to [0, 1].
    """
    a = to_image(img, "image")
    ref_arr = np.asarray(ref)
    if ref_arr.ndim < 2:
        raise InputError(f"reference: expected an image array, got shape {ref_arr.shape}")
    height, width = int(ref_arr.shape[0]), int(ref_arr.shape[1])
    if height < 1 or width < 1:
        raise InputError(f"reference: empty image of shape {ref_arr.shape}")
    if a.shape[:2] == (height, width):
        return a.copy()
    return np.clip(resize_bicubic(a, height, width), 0.0, 1.0)
