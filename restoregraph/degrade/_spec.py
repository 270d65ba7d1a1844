"""How a degradation type is declared: its parameters, their per-level ranges, and its function.

Each family module (``noise.py``, ``blur.py``...) builds one :class:`Degradation` per type and
``restoregraph.degrade.DEGRADATIONS`` maps the type name onto it, so a type is declared in one
place. The generic machinery here samples parameters for a level, validates explicit parameters
and maps a parameter value back onto its severity level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from restoregraph.core.errors import InputError

LEVELS = (1, 2, 3)

Number = int | float
ApplyFn = Callable[[np.ndarray, np.random.Generator, dict[str, Number]], np.ndarray]


@dataclass(frozen=True)
class Param:
    """One parameter of a degradation type.

    ``ranges`` gives the sampling range per level 1, 2, 3 (``[lo, hi)`` for floats, ``[lo, hi]``
    inclusive for integers). ``valid`` is what an explicit value may be. When ``sets_level`` is
    true the parameter determines the severity: a value's level is the level whose range holds
    it, extended to the whole valid range (below level 2's range -> 1, from level 3's range -> 3,
    mirrored for parameters where smaller means more severe, such as JPEG quality).
    """

    name: str
    ranges: tuple[tuple[Number, Number], tuple[Number, Number], tuple[Number, Number]]
    valid: tuple[Number, Number]
    integer: bool = False
    sets_level: bool = False
    doc: str = ""

    @property
    def increasing(self) -> bool:
        """True when a larger value is more severe."""
        return self.ranges[2][0] >= self.ranges[0][0]

    def sample(self, level: int, u: float) -> Number:
        """Map ``u`` in [0, 1) onto this parameter's range for ``level``."""
        lo, hi = self.ranges[level - 1]
        if self.integer:
            return int(lo + min(int(u * (int(hi) - int(lo) + 1)), int(hi) - int(lo)))
        value = round(float(lo + u * (hi - lo)), 4)
        if value >= hi > lo:  # rounding must not push a value into the next level's range
            value = float(np.nextafter(hi, lo))
        return value

    def level_of(self, value: Number) -> int:
        if self.increasing:
            return 1 + int(value >= self.ranges[1][0]) + int(value >= self.ranges[2][0])
        return 1 + int(value < self.ranges[0][0]) + int(value < self.ranges[1][0])

    def check(self, type_: str, value: object) -> Number:
        """Validate an explicit value; return it as a plain int or float."""
        lo, hi = self.valid
        where = f"{type_}: parameter {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, Real):
            raise InputError(f"{where} must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise InputError(f"{where} must be finite, got {value!r}")
        if self.integer:
            if not isinstance(value, Integral) and not number.is_integer():
                raise InputError(f"{where} must be an integer, got {value!r}")
            number = int(number)
        if not lo <= number <= hi:
            raise InputError(f"{where} must be in [{lo}, {hi}], got {value!r}")
        return int(number) if self.integer else number


@dataclass(frozen=True)
class Degradation:
    """A degradation type: its parameters (sampled in this order) and the function applying it.

    ``apply(image, rng, params)`` gets a float32 (H, W, 3) image in [0, 1], the generator to draw
    any further randomness from, and every parameter; it returns the degraded image (it is
    clipped and cast afterwards).
    """

    type: str
    params: tuple[Param, ...]
    apply: ApplyFn
    doc: str = ""
    same_size: bool = True

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def level_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.sets_level)

    def check_params(self, params: Mapping[str, object]) -> dict[str, Number]:
        by_name = {p.name: p for p in self.params}
        out: dict[str, Number] = {}
        for name, value in params.items():
            if name not in by_name:
                valid = ", ".join(self.param_names) or "(none)"
                raise InputError(
                    f"{self.type}: unknown parameter {name!r}; valid parameters: {valid}"
                )
            out[name] = by_name[name].check(self.type, value)
        return out

    def level_of(self, params: Mapping[str, object]) -> int | None:
        """The severity implied by the level-setting parameters among ``params`` (the worst),
        or None when there is none."""
        checked = self.check_params(params)
        levels = [p.level_of(checked[p.name]) for p in self.level_params if p.name in checked]
        return max(levels) if levels else None

    def sample(self, level: int, us: np.ndarray) -> dict[str, Number]:
        return {p.name: p.sample(level, float(u)) for p, u in zip(self.params, us, strict=True)}
