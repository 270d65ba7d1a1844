"""The learning-rate schedule every trainer here uses: linear warm-up, then cosine decay."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, base: float, warmup: int, floor: float) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warm-up over ``warmup`` steps to
    ``base``, then cosine decay to ``floor * base`` at the last step."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))


__all__ = ["warmup_cosine"]
