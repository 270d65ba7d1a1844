"""A learned tool's callable: loads its weights on first use and runs them tile by tile."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restoregraph.tools.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, tiled_apply
from restoregraph.tools.tone import protect_tones

if TYPE_CHECKING:
    from restoregraph.tools.backends import Engine


class LearnedModel:
    """``float32 RGB (H, W, 3) -> float32 RGB (H*scale, W*scale, 3)`` through a spandrel model.

    The weights are loaded (safely, see :mod:`restoregraph.tools.loading`) on the first call and
    kept; registering a learned tool therefore costs nothing. When ``sha256`` is given the file
    is checked against it before loading. Grey (1-channel) models run on each channel.

    ``backend``: the inference backend (:mod:`restoregraph.tools.backends`); ``None`` (the
    built-in tools) follows ``$RESTOREGRAPH_BACKEND``, user-added tools pass ``"torch"``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sha256: str | None = None,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        protect_tones: bool = False,
        backend: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.backend = backend
        self.protect_tones = bool(protect_tones)
        self.sha256 = sha256
        self.tile = int(tile)
        self.overlap = int(overlap)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LearnedModel({str(self.path)!r})"

    def engine(self) -> Engine:
        """The loaded network on this tool's backend (loaded once per process)."""
        with self._lock:
            if self._engine is None:
                from restoregraph.tools.backends import load_engine, resolve

                self._engine = load_engine(self.path, self.sha256, resolve(self.backend))
            return self._engine

    def model(self) -> Any:
        """The spandrel descriptor (PyTorch), whatever backend runs the tool."""
        from restoregraph.tools.backends import load_engine

        return load_engine(self.path, self.sha256, "torch").desc  # type: ignore[attr-defined]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        engine = self.engine()
        multiple, minimum = engine.multiple, engine.minimum
        grey = engine.input_channels == 1

        def run(tile: np.ndarray) -> np.ndarray:
            h, w = tile.shape[:2]
            if h < minimum or w < minimum:  # pad tiny inputs up to the model's minimum size
                tile = np.pad(
                    tile, ((0, max(0, minimum - h)), (0, max(0, minimum - w)), (0, 0)), mode="edge"
                )
            x = np.ascontiguousarray(tile.transpose(2, 0, 1))[None]
            if grey:
                x = np.ascontiguousarray(x.transpose(1, 0, 2, 3))  # channels as a batch
            # the raw (unclamped) output: the tone-protected tools roll its ends off
            # (restoregraph.tools.tone), the others clamp it to [0, 1]
            y = engine.raw(x)
            if grey:
                y = y.transpose(1, 0, 2, 3)
            raw = np.ascontiguousarray(y[0].transpose(1, 2, 0), dtype=np.float32)
            return raw if self.protect_tones else np.clip(raw, 0.0, 1.0)

        img = np.ascontiguousarray(image, dtype=np.float32)
        out = tiled_apply(
            run, img, tile=self.tile, overlap=self.overlap, scale=engine.scale, multiple=multiple
        )
        # on the whole image: the roll-off adapts to the image, so per tile it would leave seams
        return protect_tones(out, img) if self.protect_tones else out
