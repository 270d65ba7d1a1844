"""Low resolution: anti-aliased bicubic downscaling. The output is SMALLER than the input."""

from __future__ import annotations

import numpy as np
from PIL import Image

from restoregraph.degrade._spec import Degradation, Number, Param


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
    # Pillow's bicubic widens its kernel when shrinking (like MATLAB imresize), so it low-passes
    # before subsampling instead of aliasing. Mode "F" keeps float precision, one channel at a time.
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (out_w, out_h), Image.Resampling.BICUBIC
            ),
            dtype=np.float32,
        )
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2)


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
