"""Shared helpers for the metrics: input checks and small conversions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.imageio import as_float_image

if TYPE_CHECKING:
    import torch

# ITU-R BT.601 luma weights, as MATLAB's rgb2gray (used by NIQE and PIQE).
LUMA_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float64)


def to_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``image`` as a contiguous float32 RGB array in [0, 1], or raise ``InputError``."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise InputError(f"{what}: empty array {image.shape}")
    if image.dtype.kind not in "uifb":
        raise InputError(f"{what}: unsupported dtype {image.dtype}")
    if image.dtype.kind == "f":
        if (
            image.dtype == np.float32
            and image.ndim == 3
            and image.shape[2] == 3
            and image.flags.c_contiguous
        ):
            lo, hi = float(image.min()), float(image.max())
            if lo >= 0.0 and hi <= 1.0:  # False for NaN: falls through to the full check
                return image  # already in the canonical form: no copy (metrics never write)
        # Sum of the values is finite iff they all are (checked before as_float_image clips).
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(image.sum(dtype=np.float64)):
                raise InputError(f"{what}: contains NaN or infinite values")
    return np.ascontiguousarray(as_float_image(image), dtype=np.float32)


def to_pair(img: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (image, reference) pair for a full-reference metric."""
    a = to_image(img, "image")
    b = to_image(ref, "reference")
    if a.shape != b.shape:
        raise InputError(
            f"image is {a.shape[1]}x{a.shape[0]} but the reference is {b.shape[1]}x{b.shape[0]}; "
            "full-reference metrics need the same size (resize first with "
            "restoregraph.metrics.match_size(img, ref))"
        )
    return a, b


def luminance(image: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """BT.601 luma of a float RGB image in [0, 1], as float64 in [0, ``scale``]."""
    return (image.astype(np.float64) @ LUMA_WEIGHTS) * scale


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 array -> (1, 3, H, W) contiguous torch tensor (shares no memory)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
