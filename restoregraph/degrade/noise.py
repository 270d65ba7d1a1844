"""Sensor noise: additive white gaussian noise and signal-dependent poisson (shot) noise."""

from __future__ import annotations

import numpy as np

from restoregraph.degrade._spec import Degradation, Number, Param


def _gaussian_noise(
    image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]
) -> np.ndarray:
    sigma = float(p["sigma"]) / 255.0
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    return image + np.float32(sigma) * noise


def _poisson_noise(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    peak = float(p["peak"])
    counts = rng.poisson(image.astype(np.float64) * peak)
    return (counts / peak).astype(np.float32)


NOISE = Degradation(
    type="noise",
    doc="additive white gaussian noise, independent per pixel and channel",
    params=(
        Param(
            "sigma",
            ranges=((5.0, 15.0), (15.0, 35.0), (35.0, 50.0)),
            valid=(0.0, 255.0),
            sets_level=True,
            doc="standard deviation on the 0-255 scale",
        ),
    ),
    apply=_gaussian_noise,
)

POISSON = Degradation(
    type="poisson",
    doc="shot noise: photon counts ~ Poisson(image * peak), divided back by peak",
    params=(
        Param(
            "peak",
            ranges=((150.0, 500.0), (30.0, 150.0), (10.0, 30.0)),
            valid=(1.0, 1e6),
            sets_level=True,
            doc="photons of a full-white pixel (smaller = noisier; levels match noise at mid-grey)",
        ),
    ),
    apply=_poisson_noise,
)
