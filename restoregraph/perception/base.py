"""The perception interface: which degradations are present, and how severe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from restoregraph.core.tasks import PERCEPTION_TYPES


@dataclass
class PerceptionResult:
    """``probs[t]`` = [p(absent), p(level1), p(level2), p(level3)] for each perception type."""

    probs: dict[str, list[float]] = field(default_factory=dict)
    detector: str = ""
    # P(present) a type needs to count as present (calibrated per type; default 0.5)
    thresholds: dict[str, float] = field(default_factory=dict)

    def presence(self) -> dict[str, float]:
        """P(present) = 1 - p(absent) per type."""
        return {t: float(1.0 - p[0]) for t, p in self.probs.items()}

    @property
    def levels(self) -> dict[str, int]:
        """Level per type: 0 when P(present) is under the type's threshold, else the most
        likely of levels 1..3."""
        out: dict[str, int] = {}
        for t, p in self.probs.items():
            present = 1.0 - p[0] >= self.thresholds.get(t, 0.5)
            out[t] = int(np.argmax(p[1:])) + 1 if present else 0
        return out

    @property
    def present(self) -> dict[str, int]:
        """Only the types detected as present, with their level."""
        return {t: lvl for t, lvl in self.levels.items() if lvl > 0}

    @property
    def severity(self) -> dict[str, float]:
        """Expected severity per type: sum_k k * p(level k), in [0, 3]."""
        return {t: float(sum(k * pk for k, pk in enumerate(p))) for t, p in self.probs.items()}

    def load(self) -> float:
        """Total expected severity (lower is better)."""
        return float(sum(self.severity.values()))


@runtime_checkable
class Perceiver(Protocol):
    name: str
    types: tuple[str, ...]

    def perceive(self, image: np.ndarray) -> PerceptionResult: ...


__all__ = ["PERCEPTION_TYPES", "PerceptionResult", "Perceiver"]
