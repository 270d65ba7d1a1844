"""Realistic degradation synthesis, beside the synthetic one in ``restoregraph.degrade``.

The synthetic models (``restoregraph.degrade``) are simple and controllable; these aim at what
real photos look like: haze whose density follows a scene-dependent depth, rain in depth layers,
refractive raindrops on the lens, snow at several depths, camera noise through a simulated raw
pipeline (fitted to real noisy/clean pairs), camera-shake trajectories, defocus discs, noisy
under-exposure with colour casts, and a camera / sharing pipeline (white balance, tone, resize,
JPEG re-saves).

Every function takes a float32 (H, W, 3) image in [0, 1] (anything ``as_float_image`` accepts),
a ``numpy.random.Generator`` (the only source of randomness: same generator state, same output),
a severity ``level`` 1..3, optional explicit parameters (the rest are drawn for the level) and
``record=`` (a dict that receives the parameters used); it returns float32 (H, W, 3) in [0, 1].

>>> rng = np.random.default_rng(0)                                        # doctest: +SKIP
>>> hazy = haze(img, rng, level=2)
>>> out, labels = realistic_mixture(img, rng)            # e.g. {"haze": 2, "noise": 1}
>>> out = apply_realistic(img, "raindrop", 3, rng)

See docs/degradations_realistic.md; the contact sheet: ``python -m
restoregraph.degrade.realistic.sheet -o docs/realistic_degradations.png``.
"""

from __future__ import annotations

from restoregraph.degrade.realistic.camera import (
    camera_noise,
    camera_pipeline,
    jpeg_artifacts,
    low_resolution,
    noise_params,
)
from restoregraph.degrade.realistic.haze import depth_map, haze, sky_mask
from restoregraph.degrade.realistic.light import low_light
from restoregraph.degrade.realistic.mixture import (
    ORDER,
    REALISTIC_TYPES,
    apply_realistic,
    realistic_mixture,
    sample_types,
)
from restoregraph.degrade.realistic.optics import defocus, motion_blur, trajectory_kernel
from restoregraph.degrade.realistic.rain import rain_streaks
from restoregraph.degrade.realistic.raindrop import raindrops
from restoregraph.degrade.realistic.snow import snow

__all__ = [
    "ORDER",
    "REALISTIC_TYPES",
    "apply_realistic",
    "camera_noise",
    "camera_pipeline",
    "defocus",
    "depth_map",
    "haze",
    "jpeg_artifacts",
    "low_light",
    "low_resolution",
    "motion_blur",
    "noise_params",
    "rain_streaks",
    "raindrops",
    "realistic_mixture",
    "sample_types",
    "sky_mask",
    "snow",
    "trajectory_kernel",
]
