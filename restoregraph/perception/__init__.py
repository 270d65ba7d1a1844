"""Perception: which degradations an image has, and how severe each one is.

>>> from restoregraph.perception import default_perceiver       # doctest: +SKIP
>>> default_perceiver().perceive(image).present                  # doctest: +SKIP
{'noise': 2, 'jpeg': 1}

The CNN runs in PyTorch (:mod:`.cnn`) or, when ``$RESTOREGRAPH_BACKEND`` resolves to an ONNX
backend, as an ONNX export of the same weights (:mod:`.exported`): that path imports no torch,
so this package loads :mod:`.cnn` only when it is used.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from restoregraph.perception.base import Perceiver, PerceptionResult
from restoregraph.perception.files import DEFAULT_WEIGHTS

if TYPE_CHECKING:
    from restoregraph.perception.cnn import CNNPerceiver


def default_perceiver() -> Perceiver:
    """The shipped CNN perceiver (cached per backend): on the ONNX backend that
    ``$RESTOREGRAPH_BACKEND`` resolves to when its export is there or can be made, else in
    PyTorch. Raises ``ToolError`` if the weights are missing."""
    from restoregraph.tools.backends import onnx_backend

    return _default_perceiver(onnx_backend())


@functools.lru_cache(maxsize=4)
def _default_perceiver(backend: str | None) -> Perceiver:
    if backend is not None:
        from restoregraph.perception.exported import exported_perceiver

        perceiver = exported_perceiver(backend)
        if perceiver is not None:
            return perceiver
    from restoregraph.perception.cnn import CNNPerceiver

    return CNNPerceiver()


def __getattr__(name: str) -> Any:
    if name == "CNNPerceiver":  # PyTorch: imported when asked for
        from restoregraph.perception.cnn import CNNPerceiver

        return CNNPerceiver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_WEIGHTS", "CNNPerceiver", "PerceptionResult", "Perceiver", "default_perceiver"]
