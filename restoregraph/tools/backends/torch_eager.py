"""The ``torch`` and ``torch-compile`` backends: the spandrel module in PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import ToolError


def check_weights(path: Path, sha256: str | None) -> None:
    """Refuse a missing weights file, or one whose sha256 is not ``sha256`` (when given)."""
    if sha256 is None:
        return
    from restoregraph.weightfiles import sha256_of

    if not path.is_file():
        raise ToolError(f"weights file not found: {path}")
    if sha256_of(path) != sha256:
        raise ToolError(
            f"{path.name}: sha256 does not match its manifest entry "
            "(file changed or corrupted); reinstall restoregraph or retrain"
        )


def geometry(desc: Any) -> dict[str, int]:
    """The tile geometry of a spandrel descriptor (what an exported model records too)."""
    req = desc.size_requirements
    return {
        "scale": int(desc.scale),
        "multiple": max(16, int(getattr(req, "multiple_of", 1) or 1)),
        "minimum": int(getattr(req, "minimum", 0) or 0),
        "input_channels": int(desc.input_channels),
    }


class TorchEngine:
    """PyTorch eager (or ``torch.compile``-d) inference of a spandrel model."""

    def __init__(self, path: Path, sha256: str | None, *, compiled: bool = False) -> None:
        from restoregraph.tools.loading import load_model

        check_weights(path, sha256)
        self.desc = load_model(path)
        self.backend = "torch-compile" if compiled else "torch"
        geo = geometry(self.desc)
        self.scale = geo["scale"]
        self.multiple = geo["multiple"]
        self.minimum = geo["minimum"]
        self.input_channels = geo["input_channels"]
        self._fn: Any = self.desc.model
        if compiled:
            import torch

            self._fn = torch.compile(self.desc.model, dynamic=False)

    def raw(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self._fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            return np.asarray(y.float().numpy())
