"""Low resolution: anti-aliased bicubic downscaling. The output is SMALLER than the input."""

from __future__ import annotations

import numpy as np

from restoregraph.degrade._spec import Degradation, Number, Param
from restoregraph.imageio import resize_bicubic


def downscaled_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """(height, width) of an image downscaled by ``scale`` (floor, at least 1 pixel)."""
    return max(1, height // scale), max(1, width // scale)


def _low_resolution(
    image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]
) -> np.ndarray:
    scale = int(p["scale"])
    h, w = image.shape[:2]
    out_h, out_w = downscaled_size(h, w, scale)
    if (out_h, out_w) == (h, w):
        return image.copy()
    return resize_bicubic(image, out_h, out_w)


LOW_RESOLUTION = Degradation(
    type="low_resolution",
    doc="bicubic (anti-aliased) downscale by an integer factor; the output is smaller",
    params=(
        Param(
            "scale",
            ranges=((2, 2), (3, 3), (4, 4)),
            valid=(1, 16),
            integer=True,
            sets_level=True,
            doc="downscale factor: output is (H // scale, W // scale)",
        ),
    ),
    apply=_low_resolution,
    same_size=False,
)
