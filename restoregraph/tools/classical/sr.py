"""Super-resolution by interpolation: bicubic and Lanczos (OpenCV, half-pixel aligned).

OpenCV's pixel-centre convention matches the anti-aliased downscaling of
``restoregraph.degrade`` ("low_resolution"), so the upscaled image lines up with the original.
"""

from __future__ import annotations

import cv2
import numpy as np

from restoregraph.tools.classical._common import as_rgb, finish


def _upscale(image: np.ndarray, scale: int, interpolation: int) -> np.ndarray:
    img = as_rgb(image)
    h, w = img.shape[:2]
    out = cv2.resize(img, (w * scale, h * scale), interpolation=interpolation)
    return finish(out.reshape(h * scale, w * scale, 3))


def bicubic_x2(image: np.ndarray) -> np.ndarray:
    """Bicubic (Keys, a = -0.75) upscaling by 2."""
    return _upscale(image, 2, cv2.INTER_CUBIC)


def bicubic_x4(image: np.ndarray) -> np.ndarray:
    """Bicubic (Keys, a = -0.75) upscaling by 4."""
    return _upscale(image, 4, cv2.INTER_CUBIC)


def lanczos_x2(image: np.ndarray) -> np.ndarray:
    """Lanczos (8x8 window) upscaling by 2."""
    return _upscale(image, 2, cv2.INTER_LANCZOS4)
