"""Low light: an under-exposed capture through the same simulated camera as ``camera_noise``.

The scene is taken to linear light, its exposure scaled down (by level), then the raw pipeline
adds sensor noise (the fitted camera gains: with few photons the same gain gives a much lower
signal-to-noise ratio, and read noise dominates the shadows), applies a colour cast (white balance set for the wrong light: tungsten, sodium
street light, cool shade or fluorescent green) and a tone curve with an extra darkening gamma,
light in-camera denoising and JPEG.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from restoregraph.degrade.realistic._common import Sampler, as_image, finish
from restoregraph.degrade.realistic.camera import _gain_ranges, noise_params, raw_pipeline

EXPOSURE = {1: (0.18, 0.35), 2: (0.07, 0.18), 3: (0.025, 0.07)}  # linear scale
CASTS: dict[str, tuple[float, float, float]] = {
    "tungsten": (1.18, 1.0, 0.72),
    "sodium": (1.3, 1.02, 0.55),
    "cool": (0.85, 0.97, 1.2),
    "green": (0.93, 1.1, 0.9),
    "neutral": (1.0, 1.0, 1.0),
}


def _span(lo: float, hi: float) -> dict[int, tuple[float, float]]:
    return {1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}


def low_light(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    noise_level: int | None = None,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Under-exposure with high-gain sensor noise, a colour cast and JPEG. Parameters:
    ``exposure`` (linear scale), ``gain`` (sensor gain, log-uniform in the fitted range of noise
    level ``noise_level``; by default level 1 for low-light levels 1-2, level 2 for level 3),
    ``cast`` (a name of
    :data:`CASTS`), ``cast_strength``, plus the camera's nuisance parameters."""
    img = as_image(image)
    s = Sampler("low_light", rng, level, overrides)
    exposure = s.uniform("exposure", EXPOSURE)
    gains = _gain_ranges(noise_params())
    base = gains[noise_level if noise_level is not None else max(1, s.level - 1)]
    gain = s.uniform("gain", {1: base, 2: base, 3: base}, log=True)
    cast_name = s.choice("cast", tuple(CASTS), p=(0.3, 0.2, 0.2, 0.1, 0.2))
    strength = s.uniform("cast_strength", _span(0.4, 1.0))
    cast = 1.0 + strength * (np.asarray(CASTS[cast_name], np.float32) - 1.0)
    cast = cast / float(cast[1])
    out = raw_pipeline(img, s, float(gain), exposure=exposure, cast=cast.astype(np.float32))
    s.done(record)
    return finish(out)
