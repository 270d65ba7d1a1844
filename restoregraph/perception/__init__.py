"""Perception: which degradations an image has, and how severe each one is.

>>> from restoregraph.perception import default_perceiver       # doctest: +SKIP
>>> default_perceiver().perceive(image).present                  # doctest: +SKIP
{'noise': 2, 'jpeg': 1}
"""

from __future__ import annotations

import functools

from restoregraph.perception.base import Perceiver, PerceptionResult
from restoregraph.perception.cnn import DEFAULT_WEIGHTS, CNNPerceiver


@functools.lru_cache(maxsize=1)
def default_perceiver() -> CNNPerceiver:
    """The shipped CNN perceiver (cached). Raises ``ToolError`` if its weights are missing."""
    return CNNPerceiver()


__all__ = ["DEFAULT_WEIGHTS", "CNNPerceiver", "PerceptionResult", "Perceiver", "default_perceiver"]
