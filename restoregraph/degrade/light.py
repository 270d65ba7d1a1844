"""Low light: an under-exposed, gamma-darkened image, with mild sensor noise at level 3."""

from __future__ import annotations

import numpy as np

from restoregraph.degrade._spec import Degradation, Number, Param


def _low_light(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    out = np.float32(p["brightness"]) * np.power(image, np.float32(p["gamma"]))
    sigma = float(p["noise_sigma"]) / 255.0
    if sigma > 0:
        out = out + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return out


LOW_LIGHT = Degradation(
    type="low_light",
    doc="out = brightness * image ** gamma (+ gaussian noise at level 3)",
    params=(
        Param(
            "gamma",
            ranges=((1.5, 2.2), (2.2, 2.8), (2.8, 3.5)),
            valid=(1.0, 6.0),
            sets_level=True,
            doc="gamma applied to the [0, 1] image (larger = darker shadows)",
        ),
        Param(
            "brightness",
            ranges=((0.45, 0.6), (0.3, 0.45), (0.2, 0.3)),
            valid=(0.01, 1.0),
            sets_level=True,
            doc="global exposure scale (smaller = darker)",
        ),
        Param(
            "noise_sigma",
            ranges=((0.0, 0.0), (0.0, 0.0), (2.0, 6.0)),
            valid=(0.0, 50.0),
            doc="gaussian noise std on the 0-255 scale (0 = none)",
        ),
    ),
    apply=_low_light,
)
