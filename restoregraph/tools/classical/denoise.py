"""Denoising: non-local means, bilateral, total variation, and Intel Open Image Denoise.

The classical filters scale their strength to the noise level estimated from the image itself
(:func:`estimate_noise`, a wavelet MAD estimate), so a clean image is left nearly untouched.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

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
    import cv2

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
    """Import pyoidn (which imports torch) and run it once on a tiny image; raise if either
    fails. Called when the tool first runs, never to register it."""
    import pyoidn

    probe = pyoidn.denoise(np.full((16, 16, 3), 0.5, dtype=np.float32))
    if probe.shape != (16, 16, 3) or not np.isfinite(probe).all():
        raise RuntimeError("pyoidn probe returned an invalid image")
    return pyoidn


@functools.cache
def oidn_available() -> bool:
    """Whether Intel Open Image Denoise (pyoidn) is installed, found without importing it (an
    import would load torch): registering the tool costs nothing. A pyoidn that is installed
    but does not load or run makes ``oidn`` raise, a failed step (``run_tool``'s ToolError)."""
    try:
        return importlib.util.find_spec("pyoidn") is not None
    except (ImportError, ValueError):
        return False


def oidn(image: np.ndarray) -> np.ndarray:
    """Intel Open Image Denoise (pretrained U-Net, CPU), "RT" filter, high quality, LDR input."""
    try:
        pyoidn = _pyoidn()
    except ImportError:
        raise
    except Exception as exc:  # e.g. its shared library missing: say so, on one line
        raise ImportError(f"pyoidn does not load: {type(exc).__name__}: {exc}") from exc
    img = as_rgb(image)
    out = pyoidn.denoise(img, hdr=False, quality="high")
    return finish(out)
