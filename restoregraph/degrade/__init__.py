"""Deterministic synthesis of photo degradations, alone or in mixtures.

Images are float32 RGB arrays (H, W, 3) in [0, 1]; uint8, uint16, float and grayscale input of
any size is accepted. Every call is deterministic given ``seed`` (a private
``np.random.default_rng``; global RNG state is never touched).

>>> out, info = degrade(img, "noise", level=2, seed=7)            # doctest: +SKIP
>>> out, info = degrade(img, "noise", sigma=25)                   # level derived: 2
>>> out, infos = apply_mixture(img, parse_mixture("rain+noise:2+jpeg"), seed=3)

Each type is declared once, in its family module, as a :class:`Degradation` (parameters with
their per-level ranges, and the function); :data:`DEGRADATIONS` maps the type name onto it.
With the same seed, levels 1, 2 and 3 share the same underlying random draws, so severity
grows monotonically with the level.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import DEGRADATION_TYPES
from restoregraph.degrade._spec import LEVELS, Degradation, Param
from restoregraph.degrade.blur import BLUR, DEFOCUS, MOTION_BLUR
from restoregraph.degrade.jpeg import JPEG
from restoregraph.degrade.light import LOW_LIGHT
from restoregraph.degrade.noise import NOISE, POISSON
from restoregraph.degrade.raindrop import RAINDROP
from restoregraph.degrade.resolution import LOW_RESOLUTION
from restoregraph.degrade.weather import HAZE, RAIN, SNOW
from restoregraph.imageio import as_float_image

# type name -> declaration (parameters, per-level ranges, function). One entry per type.
DEGRADATIONS: dict[str, Degradation] = {
    d.type: d
    for d in (
        NOISE,
        POISSON,
        BLUR,
        DEFOCUS,
        MOTION_BLUR,
        JPEG,
        RAIN,
        RAINDROP,
        HAZE,
        LOW_LIGHT,
        SNOW,
        LOW_RESOLUTION,
    )
}

if set(DEGRADATIONS) != set(DEGRADATION_TYPES):  # pragma: no cover - a declaration is missing
    raise RuntimeError(
        f"restoregraph.degrade declares {sorted(DEGRADATIONS)}, "
        f"but restoregraph.core.tasks.DEGRADATION_TYPES is {sorted(DEGRADATION_TYPES)}"
    )

__all__ = [
    "DEGRADATIONS",
    "Degradation",
    "DegradationInfo",
    "Param",
    "apply_mixture",
    "degrade",
    "level_of",
    "parse_mixture",
    "step_seed",
]


@dataclass(frozen=True)
class DegradationInfo:
    """What was applied: the type, its severity level (1 low .. 3 high) and the actual
    parameters (plain JSON-serialisable ints / floats)."""

    type: str
    level: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "level": self.level, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DegradationInfo:
        return cls(str(data["type"]), int(data["level"]), dict(data.get("params", {})))


def _valid_types() -> str:
    return ", ".join(DEGRADATION_TYPES)


def _lookup(type_: object) -> Degradation:
    if isinstance(type_, str) and type_ in DEGRADATIONS:
        return DEGRADATIONS[type_]
    hint = ""
    if isinstance(type_, str):
        close = difflib.get_close_matches(type_.strip().lower(), DEGRADATION_TYPES, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    raise InputError(f"unknown degradation type {type_!r}{hint}; valid types: {_valid_types()}")


def _check_level(level: object) -> int | None:
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, Integral) or int(level) not in LEVELS:
        raise InputError(f"degradation level must be 1, 2 or 3 (or None to sample), got {level!r}")
    return int(level)


def _rng(seed: object) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def degrade(
    image: np.ndarray,
    type: str,
    level: int | None = None,
    seed: int = 0,
    **params: Any,
) -> tuple[np.ndarray, DegradationInfo]:
    """Apply one degradation; return the float32 image in [0, 1] and what was applied.

    ``level`` None samples it uniformly from 1..3. Parameters not given are sampled from the
    level's ranges (see ``DEGRADATIONS[type].params``); explicit ``**params`` override them, and
    when an explicit parameter sets the severity (e.g. ``sigma`` for noise) the recorded level is
    derived from it. The output has the input's size, except ``low_resolution`` (smaller).
    """
    spec = _lookup(type)
    lvl = _check_level(level)
    explicit = spec.check_params(params)
    rng = _rng(seed)
    img = as_float_image(image)
    # Draw the level and one uniform per parameter unconditionally, so the random stream (and
    # with it noise fields, rain drops, snow flakes) is the same whatever is given explicitly.
    drawn_level = int(rng.integers(1, 4))
    us = rng.random(len(spec.params))
    explicit_level = spec.level_of(explicit)
    if lvl is None:
        lvl = explicit_level if explicit_level is not None else drawn_level
    values = spec.sample(lvl, us)
    values.update(explicit)
    if explicit_level is not None:
        derived = spec.level_of(values)
        lvl = derived if derived is not None else lvl
    out = spec.apply(img, rng, values)
    out = np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32, copy=False)
    return np.ascontiguousarray(out), DegradationInfo(spec.type, lvl, values)


def level_of(type: str, **params: Any) -> int:
    """The severity level (1..3) implied by a parameter value, e.g. ``level_of("noise",
    sigma=25) == 2``. Parameters that do not set the level are checked and ignored; with several
    level-setting parameters (low_light: gamma, brightness) the most severe one counts."""
    spec = _lookup(type)
    level = spec.level_of(params)
    if level is None:
        names = ", ".join(p.name for p in spec.level_params)
        raise InputError(f"level_of({type!r}) needs one of the parameters: {names}")
    return level


def parse_mixture(text: str) -> list[tuple[str, int | None]]:
    """Parse ``"rain+noise:2+jpeg"`` (or comma-separated) into ``[(type, level or None)]``."""
    if not isinstance(text, str):
        raise InputError(f"a mixture must be a string like 'rain+noise:2', got {text!r}")
    steps: list[tuple[str, int | None]] = []
    for raw in text.replace(",", "+").split("+"):
        token = raw.strip()
        if not token:
            continue
        name, sep, level_text = token.partition(":")
        name = name.strip().lower().replace("-", "_").replace(" ", "_")
        _lookup(name)
        level: int | None = None
        if sep:
            level_text = level_text.strip()
            if level_text not in ("1", "2", "3"):
                raise InputError(
                    f"mixture step {token!r}: level must be 1, 2 or 3, got {level_text!r}"
                )
            level = int(level_text)
        steps.append((name, level))
    return steps


MixtureStep = str | tuple[str, int | None] | Mapping[str, Any] | DegradationInfo


def _step_args(step: object) -> tuple[str, int | None, dict[str, Any]]:
    if isinstance(step, str):
        parsed = parse_mixture(step)
        if len(parsed) != 1:
            raise InputError(f"mixture step {step!r} must name exactly one degradation")
        return parsed[0][0], parsed[0][1], {}
    if isinstance(step, DegradationInfo):
        return step.type, step.level, dict(step.params)
    if isinstance(step, Mapping):
        data = dict(step)
        if "type" not in data:
            raise InputError(f"mixture step {step!r} has no 'type'")
        type_ = data.pop("type")
        level = data.pop("level", None)
        nested = data.pop("params", None)
        if isinstance(nested, Mapping):  # accept DegradationInfo.to_dict() output too
            data.update(nested)
        return type_, level, data
    if isinstance(step, tuple) and len(step) == 2:
        return step[0], step[1], {}
    raise InputError(
        f"mixture step {step!r} must be a type name, a (type, level) pair or a dict "
        "like {'type': 'noise', 'level': 2}"
    )


def step_seed(seed: int, index: int) -> int:
    """The seed of step ``index`` of a mixture run with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def apply_mixture(
    image: np.ndarray,
    spec: Sequence[MixtureStep] | str,
    seed: int = 0,
) -> tuple[np.ndarray, list[DegradationInfo]]:
    """Apply degradations in the given order; each step ``i`` is seeded from ``(seed, i)``.

    Steps: ``"noise"``, ``("noise", 2)``, ``{"type": "noise", "level": 2, "sigma": 20}`` or a
    :class:`DegradationInfo` (to replay a recorded mixture). A string is parsed with
    :func:`parse_mixture`.
    """
    _rng(seed)  # validate
    steps = parse_mixture(spec) if isinstance(spec, str) else list(spec)
    parsed = [_step_args(step) for step in steps]
    for type_, level, _ in parsed:  # fail before doing any work
        _lookup(type_)
        _check_level(level)
    img = as_float_image(image).copy()
    infos: list[DegradationInfo] = []
    for index, (type_, level, params) in enumerate(parsed):
        img, info = degrade(img, type_, level, seed=step_seed(seed, index), **params)
        infos.append(info)
    return img, infos
