"""Realistic mixtures: several realistic degradations in a physically sensible order.

Scene effects first (haze, then snow or rain in the air, then raindrops on the lens), then the
optics (defocus, camera shake), then the sensor (low light and / or camera noise: one raw
pipeline), then the camera / sharing pipeline (white-balance jitter, tone curve, down/up
resize, JPEG re-saves). Without a ``jpeg`` label the pipeline still saves one high-quality JPEG
(88-97), as every camera does; that is not labelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.degrade.realistic._common import as_image, check_level, finish
from restoregraph.degrade.realistic.camera import (
    camera_noise,
    camera_pipeline,
    jpeg_artifacts,
    low_resolution,
)
from restoregraph.degrade.realistic.haze import haze
from restoregraph.degrade.realistic.light import low_light
from restoregraph.degrade.realistic.optics import defocus, motion_blur
from restoregraph.degrade.realistic.rain import rain_streaks
from restoregraph.degrade.realistic.raindrop import raindrops
from restoregraph.degrade.realistic.snow import snow

# The label names (restoregraph.core.tasks.PERCEPTION_TYPES), in application order.
ORDER: tuple[str, ...] = (
    "haze",
    "snow",
    "rain",
    "raindrop",
    "blur",
    "motion_blur",
    "low_light",
    "noise",
    "low_resolution",
    "jpeg",
)
REALISTIC_TYPES: tuple[str, ...] = PERCEPTION_TYPES  # what perception reports, one each
# Pairs not sampled together (unphysical or ambiguous labels); explicit ``types`` may still ask.
EXCLUSIVE: tuple[frozenset[str], ...] = (
    frozenset({"rain", "snow"}),
    frozenset({"blur", "motion_blur"}),
)
COUNT_WEIGHTS = (0.4, 0.4, 0.2)  # 1, 2 or 3 types

RealisticFn = Callable[..., np.ndarray]
FUNCTIONS: dict[str, RealisticFn] = {
    "haze": haze,
    "snow": snow,
    "rain": rain_streaks,
    "raindrop": raindrops,
    "blur": defocus,
    "motion_blur": motion_blur,
    "low_light": low_light,
    "noise": camera_noise,
    "low_resolution": low_resolution,
    "jpeg": jpeg_artifacts,
}


def _check_type(type_name: object) -> str:
    if not isinstance(type_name, str) or type_name not in FUNCTIONS:
        valid = ", ".join(REALISTIC_TYPES)
        raise InputError(f"unknown realistic degradation {type_name!r}; valid: {valid}")
    return type_name


def apply_realistic(
    image: np.ndarray,
    type_name: str,
    level: int,
    rng: np.random.Generator,
    *,
    record: dict[str, Any] | None = None,
    **params: Any,
) -> np.ndarray:
    """Apply one realistic degradation (``REALISTIC_TYPES``) at ``level`` 1..3. Parameters not
    given are drawn from ``rng``; ``record`` (a dict) receives the ones used."""
    fn = FUNCTIONS[_check_type(type_name)]
    return fn(image, rng, check_level(level), record=record, **params)


def sample_types(rng: np.random.Generator, count: int | None = None) -> dict[str, int]:
    """1-3 compatible types (``COUNT_WEIGHTS``), each with a level drawn from 1..3."""
    n = int(rng.choice((1, 2, 3), p=COUNT_WEIGHTS)) if count is None else int(count)
    chosen: list[str] = []
    for index in rng.permutation(len(REALISTIC_TYPES)):
        name = REALISTIC_TYPES[int(index)]
        if any(pair <= {name, *chosen} for pair in EXCLUSIVE):
            continue
        chosen.append(name)
        if len(chosen) == n:
            break
    return {name: int(rng.integers(1, 4)) for name in chosen}


def _as_levels(
    types: Sequence[str] | Mapping[str, int | None] | None, rng: np.random.Generator
) -> dict[str, int]:
    if types is None:
        return sample_types(rng)
    if isinstance(types, str):
        types = [types]
    items = types.items() if isinstance(types, Mapping) else [(t, None) for t in types]
    levels: dict[str, int] = {}
    for name, level in items:
        _check_type(name)
        if name in levels:
            raise InputError(f"realistic mixture names {name!r} twice")
        levels[name] = int(rng.integers(1, 4)) if level is None else check_level(level)
    return levels


def realistic_mixture(
    image: np.ndarray,
    rng: np.random.Generator,
    types: Sequence[str] | Mapping[str, int | None] | None = None,
    *,
    camera: bool = True,
    records: dict[str, dict[str, Any]] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Degrade ``image`` with a realistic mixture; return it and its labels ``{type: level}``.

    ``types``: None samples 1-3 compatible types with levels; a list of names samples their
    levels; a mapping ``{name: level or None}`` fixes them. Types are applied in :data:`ORDER`
    (whatever order they are given in); the labels are in that order too. Low light and noise
    share one sensor pass (the noise level sets the gain). ``camera`` adds the camera/sharing
    pipeline (white balance, tone, and the ``jpeg`` / ``low_resolution`` steps when labelled,
    else one unlabelled high-quality JPEG save); without it ``jpeg`` / ``low_resolution`` run
    alone. ``records`` (a dict) receives each step's parameters.
    """
    img = as_image(image)
    levels = _as_levels(types, rng)
    labels = {name: levels[name] for name in ORDER if name in levels}
    # one independent stream per step, so a step's draws do not depend on the others
    seeds = {name: int(rng.integers(0, 2**63 - 1)) for name in ORDER}
    seeds["camera"] = int(rng.integers(0, 2**63 - 1))

    def step(name: str, fn: RealisticFn, image_: np.ndarray, **kw: Any) -> np.ndarray:
        rec: dict[str, Any] = {}
        out = fn(image_, np.random.default_rng(seeds[name]), levels[name], record=rec, **kw)
        if records is not None:
            records[name] = rec
        return out

    for name in ("haze", "snow", "rain", "raindrop", "blur", "motion_blur"):
        if name in levels:
            img = step(name, FUNCTIONS[name], img)
    if "low_light" in levels:
        img = step("low_light", low_light, img, noise_level=levels.get("noise"))
        if "noise" in levels and records is not None:
            records["noise"] = {"merged_into": "low_light"}
    elif "noise" in levels:
        img = step("noise", camera_noise, img)
    if camera:
        rec: dict[str, Any] = {}
        img = camera_pipeline(
            img,
            np.random.default_rng(seeds["camera"]),
            jpeg_level=levels.get("jpeg"),
            resize_level=levels.get("low_resolution"),
            record=rec,
        )
        if records is not None:
            records["camera"] = rec
    else:
        for name in ("low_resolution", "jpeg"):
            if name in levels:
                img = step(name, FUNCTIONS[name], img)
    return finish(img), labels
