"""Blur: gaussian (soft focus), defocus (disk kernel) and camera motion (line kernel)."""

from __future__ import annotations

import numpy as np

from restoregraph.degrade._spec import Degradation, Number, Param
from restoregraph.degrade.kernels import convolve, disk_kernel, gaussian, line_kernel


def _gaussian_blur(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    return gaussian(image, float(p["sigma"]))


def _defocus(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    return convolve(image, disk_kernel(float(p["radius"])))


def _motion_blur(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    return convolve(image, line_kernel(float(p["length"]), float(p["angle"])))


BLUR = Degradation(
    type="blur",
    doc="isotropic gaussian blur",
    params=(
        Param(
            "sigma",
            ranges=((0.6, 1.2), (1.2, 2.4), (2.4, 4.0)),
            valid=(0.2, 20.0),
            sets_level=True,
            doc="gaussian standard deviation in pixels",
        ),
    ),
    apply=_gaussian_blur,
)

DEFOCUS = Degradation(
    type="defocus",
    doc="out-of-focus blur: convolution with an anti-aliased uniform disk",
    params=(
        Param(
            "radius",
            ranges=((2.0, 10 / 3), (10 / 3, 14 / 3), (14 / 3, 6.0)),
            valid=(0.5, 30.0),
            sets_level=True,
            doc="disk radius in pixels",
        ),
    ),
    apply=_defocus,
)

MOTION_BLUR = Degradation(
    type="motion_blur",
    doc="linear camera motion: convolution with an anti-aliased line segment",
    params=(
        Param(
            "length",
            ranges=((10.0, 15.0), (15.0, 20.0), (20.0, 25.0)),
            valid=(1.0, 100.0),
            sets_level=True,
            doc="length of the motion path in pixels",
        ),
        Param(
            "angle",
            ranges=((0.0, 180.0), (0.0, 180.0), (0.0, 180.0)),
            valid=(-360.0, 360.0),
            doc="direction in degrees (0 = horizontal, 90 = vertical)",
        ),
    ),
    apply=_motion_blur,
)
