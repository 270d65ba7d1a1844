"""Denoising: non-local means, bilateral, total variation, and Intel Open Image Denoise.

The classical filters scale their strength to the noise level estimated from the image itself
(:func:`estimate_noise`, a wavelet MAD estimate), so a clean image is left nearly untouched.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from restoregraph.tools.classical._common import as_rgb, estimate_noise, finish

# Below this estimated sigma (0-255 scale ~0.5) an image is treated as clean.
_MIN_SIGMA = 0.5 / 255.0


def nlmeans(image: np.ndarray) -> np.ndarray:
    """Non-local means (skimage fast mode, 5x5 patches, 13x13 search), h = 0.7 sigma."""
    from skimage.restoration import denoise_nl_means  # imported here: scipy.stats is slow

    img = as_rgb(image)
    sigma = estimate_noise(img)
    if sigma < _MIN_SIGMA:
        return finish(img)
    out = denoise_nl_means(
        img,
        h=0.7 * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    return finish(out)


def bilateral(image: np.ndarray) -> np.ndarray:
    """Two bilateral passes (range sigma 3.5 sigma then half of it, spatial sigma 2 px)."""
    img = as_rgb(image)
    sigma = estimate_noise(img)
    if sigma < _MIN_SIGMA:
        return finish(img)
    out = img
    for factor in (3.5, 1.75):
        out = cv2.bilateralFilter(out, -1, factor * sigma, 2.0, borderType=cv2.BORDER_REFLECT)
    return finish(out)


def tv(image: np.ndarray) -> np.ndarray:
    """Chambolle total-variation denoising with weight equal to the estimated sigma."""
    from skimage.restoration import denoise_tv_chambolle

    img = as_rgb(image)
    sigma = estimate_noise(img)
    if sigma < _MIN_SIGMA:
        return finish(img)
    out = denoise_tv_chambolle(img, weight=float(sigma), channel_axis=-1)
    return finish(out)


@functools.cache
def _pyoidn() -> Any:
    """Import pyoidn and run it once on a tiny image; raise if either fails."""
    import pyoidn

    probe = pyoidn.denoise(np.full((16, 16, 3), 0.5, dtype=np.float32))
    if probe.shape != (16, 16, 3) or not np.isfinite(probe).all():
        raise RuntimeError("pyoidn probe returned an invalid image")
    return pyoidn


@functools.cache
def oidn_available() -> bool:
    """Whether Intel Open Image Denoise (pyoidn) imports and runs on this machine."""
    try:
        _pyoidn()
    except Exception:
        return False
    return True


def oidn(image: np.ndarray) -> np.ndarray:
    """Intel Open Image Denoise (pretrained U-Net, CPU), "RT" filter, high quality, LDR input."""
    pyoidn = _pyoidn()
    img = as_rgb(image)
    out = pyoidn.denoise(img, hdr=False, quality="high")
    return finish(out)
