"""A learned tool's callable: loads its weights on first use and runs them tile by tile."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import ToolError
from restoregraph.tools.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, tiled_apply
from restoregraph.tools.tone import protect_tones


class LearnedModel:
    """``float32 RGB (H, W, 3) -> float32 RGB (H*scale, W*scale, 3)`` through a spandrel model.

    The weights are loaded (safely, see :mod:`restoregraph.tools.loading`) on the first call and
    kept; registering a learned tool therefore costs nothing. When ``sha256`` is given the file
    is checked against it before loading. Grey (1-channel) models run on each channel.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sha256: str | None = None,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        protect_tones: bool = False,
    ) -> None:
        self.path = Path(path)
        self.protect_tones = bool(protect_tones)
        self.sha256 = sha256
        self.tile = int(tile)
        self.overlap = int(overlap)
        self._model: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LearnedModel({str(self.path)!r})"

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                if self.sha256 is not None:
                    from restoregraph.weightfiles import sha256_of

                    if not self.path.is_file():
                        raise ToolError(f"weights file not found: {self.path}")
                    if sha256_of(self.path) != self.sha256:
                        raise ToolError(
                            f"{self.path.name}: sha256 does not match its manifest entry "
                            "(file changed or corrupted); reinstall restoregraph or retrain"
                        )
                from restoregraph.tools.loading import load_model

                self._model = load_model(self.path)
            return self._model

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import torch

        desc = self.model()
        multiple = max(16, int(getattr(desc.size_requirements, "multiple_of", 1) or 1))
        minimum = int(getattr(desc.size_requirements, "minimum", 0) or 0)
        grey = desc.input_channels == 1

        def run(tile: np.ndarray) -> np.ndarray:
            h, w = tile.shape[:2]
            if h < minimum or w < minimum:  # pad tiny inputs up to the model's minimum size
                tile = np.pad(
                    tile, ((0, max(0, minimum - h)), (0, max(0, minimum - w)), (0, 0)), mode="edge"
                )
            x = torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1)))[None]
            if grey:
                x = x.permute(1, 0, 2, 3)  # channels as a batch of grey images
            with torch.inference_mode():
                # spandrel's descriptor clamps to [0, 1]; the tone-protected tools need the
                # raw output to roll its ends off (restoregraph.tools.tone)
                y = desc.model(x) if self.protect_tones else desc(x)
                if grey:
                    y = y.permute(1, 0, 2, 3)
                raw = np.ascontiguousarray(y[0].float().numpy().transpose(1, 2, 0))
            return raw if self.protect_tones else np.clip(raw, 0.0, 1.0)

        img = np.ascontiguousarray(image, dtype=np.float32)
        out = tiled_apply(
            run, img, tile=self.tile, overlap=self.overlap, scale=desc.scale, multiple=multiple
        )
        # on the whole image: the roll-off adapts to the image, so per tile it would leave seams
        return protect_tones(out, img) if self.protect_tones else out
