"""Deblurring: regularised Wiener deconvolution with an estimated gaussian kernel, and unsharp.

Blur estimation (:func:`estimate_blur_sigma`) uses the re-blur gradient ratio at edges
(Zhuo & Sim 2011): re-blurring an edge of gaussian width ``s`` with a known gaussian ``s_r``
divides its peak gradient by ``R = sqrt(s^2 + s_r^2) / s``, so ``s = s_r / sqrt(R^2 - 1)``;
the median over Canny edge pixels is the estimate. Natural photos already have an edge width
of about 0.7 px, which is subtracted in quadrature before deconvolving.
"""

from __future__ import annotations

import cv2
import numpy as np

from restoregraph.tools.classical._common import as_rgb, estimate_noise, finish, luminance

INTRINSIC_SIGMA = 0.7  # edge width of a sharp natural photo, in pixels
MIN_DECONV_SIGMA = 0.5  # below this the image is treated as sharp
MAX_SIGMA = 8.0
_REBLUR_SIGMA = 1.0
_BASE_LAMBDA = 1e-3  # Laplacian regularisation without noise
_NOISE_LAMBDA = 100.0  # extra regularisation per unit of noise variance ([0, 1] scale)
_RINGING_LIMIT = 0.33  # largest tolerated share of overshoot in the correction energy
_STRENGTH_LADDER = (1.0, 0.8, 0.6, 0.45)
UNSHARP_MAX_AMOUNT = 1.5


def _gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy)


def _edge_blur_sigma(gray: np.ndarray) -> float:
    """Median re-blur estimate of the gaussian edge width of a grey image (0 when no edges)."""
    grad = _gradient_magnitude(gray)
    reblurred = _gradient_magnitude(
        cv2.GaussianBlur(gray, (0, 0), _REBLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
    )
    u8 = (np.clip(gray, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    l1 = np.abs(cv2.Sobel(u8, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(u8, cv2.CV_32F, 0, 1))
    high = max(float(np.percentile(l1, 90)), 8.0)
    edges = cv2.Canny(u8, high / 2.0, high) > 0
    mask = edges & (reblurred > 1e-6)
    ratio = grad[mask] / reblurred[mask]
    ratio = ratio[ratio > 1.0001]
    if ratio.size < 20:
        return 0.0
    return float(np.median(_REBLUR_SIGMA / np.sqrt(ratio * ratio - 1.0)))


def estimate_blur_sigma(image: np.ndarray, noise_sigma: float | None = None) -> float:
    """Total gaussian blur (intrinsic edge width included) of an RGB image, in pixels.

    With noise the image is first smoothed by a known gaussian (wider for more noise), whose
    width is then removed in quadrature, so noise does not read as sharpness.
    """
    img = as_rgb(image)
    if noise_sigma is None:
        noise_sigma = estimate_noise(img)
    pre = 1.0 + min(1.0, noise_sigma * 255.0 / 10.0)
    gray = cv2.GaussianBlur(luminance(img), (0, 0), pre, borderType=cv2.BORDER_REFLECT)
    total = _edge_blur_sigma(gray)
    return float(min(np.sqrt(max(total * total - pre * pre, 0.0)), MAX_SIGMA))


def _gaussian_cls_filter(shape: tuple[int, int], sigma: float, lam: float) -> np.ndarray:
    """Frequency response of constrained least squares (Wiener with a Laplacian prior)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    otf = np.exp(-2.0 * np.pi**2 * sigma * sigma * (fx * fx + fy * fy))
    lap = (4.0 - 2.0 * np.cos(2.0 * np.pi * fx) - 2.0 * np.cos(2.0 * np.pi * fy)) ** 2
    return otf / (otf * otf + lam * lap)


def wiener_deconvolve(image: np.ndarray, sigma: float, lam: float) -> np.ndarray:
    """Deconvolve a gaussian of ``sigma`` px with Laplacian-regularised Wiener filtering.

    The image is mirror-padded first so the FFT's periodic boundary does not ring.
    """
    img = as_rgb(image)
    h, w = img.shape[:2]
    pad = int(np.ceil(3.0 * sigma)) + 8
    padded = np.pad(img.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    ph, pw = padded.shape[:2]
    filt = _gaussian_cls_filter((ph, pw), sigma, lam)
    out = np.empty_like(padded)
    for c in range(3):
        out[..., c] = np.fft.irfft2(np.fft.rfft2(padded[..., c]) * filt, s=(ph, pw))
    return out[pad : pad + h, pad : pad + w].astype(np.float32)


def _overshoot_share(out: np.ndarray, blurred: np.ndarray, sigma: float) -> float:
    """Share of the correction energy that leaves the local range of the blurred input."""
    r = max(1, int(np.ceil(1.5 * sigma)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    lo = cv2.erode(blurred, kernel, borderType=cv2.BORDER_REFLECT)
    hi = cv2.dilate(blurred, kernel, borderType=cv2.BORDER_REFLECT)
    over = out - np.clip(out, lo, hi)
    change = float(np.mean((out - blurred) ** 2))
    return float(np.mean(over * over)) / max(change, 1e-12)


def wiener(image: np.ndarray) -> np.ndarray:
    """Blind gaussian deblurring: estimate sigma, deconvolve, back off if it rings."""
    img = as_rgb(image)
    noise = estimate_noise(img)
    total = estimate_blur_sigma(img, noise)
    sigma = float(np.sqrt(max(total * total - INTRINSIC_SIGMA**2, 0.0)))
    if sigma < MIN_DECONV_SIGMA:
        return finish(img)
    lam = _BASE_LAMBDA + _NOISE_LAMBDA * noise * noise
    out = img
    for strength in _STRENGTH_LADDER:
        s = sigma * strength
        if s < MIN_DECONV_SIGMA:
            break
        out = wiener_deconvolve(img, s, lam)
        if _overshoot_share(out, img, s) <= _RINGING_LIMIT:
            break
    return finish(out)


def unsharp(image: np.ndarray) -> np.ndarray:
    """Unsharp masking, radius and amount matched to the estimated blur, noise-thresholded.

    A sharp image (estimated blur below ~0.4 px beyond the natural edge width) is returned
    unchanged; the amount ramps up to 1.5 by 1 px of blur.
    """
    img = as_rgb(image)
    noise = estimate_noise(img)
    total = estimate_blur_sigma(img, noise)
    sigma = float(np.sqrt(max(total * total - INTRINSIC_SIGMA**2, 0.0)))
    amount = UNSHARP_MAX_AMOUNT * float(np.clip((sigma - 0.4) / 0.6, 0.0, 1.0))
    if amount <= 0.0:
        return finish(img)
    radius = float(np.clip(sigma, 1.0, 4.0))
    base = cv2.GaussianBlur(img, (0, 0), radius, borderType=cv2.BORDER_REFLECT)
    detail = img - base
    # Soft-threshold the detail layer so noise is not amplified along with edges.
    thr = 2.0 * noise
    detail = np.sign(detail) * np.maximum(np.abs(detail) - thr, 0.0)
    return finish(img + amount * detail)
