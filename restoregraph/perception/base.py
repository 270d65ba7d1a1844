"""The perception interface: which degradations are present, and how severe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from restoregraph.tasks import PERCEPTION_TYPES


@dataclass
class PerceptionResult:
    """``probs[t]`` = [p(absent), p(level1), p(level2), p(level3)] for each perception type."""

    probs: dict[str, list[float]] = field(default_factory=dict)
    detector: str = ""

    @property
    def levels(self) -> dict[str, int]:
        """Most likely level per type (0 = absent)."""
        return {t: int(np.argmax(p)) for t, p in self.probs.items()}

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
