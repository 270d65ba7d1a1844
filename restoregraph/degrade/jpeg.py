"""JPEG compression artefacts (blocking, ringing, chroma bleeding) via a Pillow round-trip."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from restoregraph.degrade._spec import Degradation, Number, Param
from restoregraph.imageio import to_uint8


def _jpeg(image: np.ndarray, rng: np.random.Generator, p: dict[str, Number]) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=int(p["quality"]))
    buf.seek(0)
    with Image.open(buf) as decoded:
        arr = np.asarray(decoded.convert("RGB"), dtype=np.float32)
    return arr / np.float32(255.0)


JPEG = Degradation(
    type="jpeg",
    doc="JPEG round-trip (4:2:0 chroma subsampling) at the given quality",
    params=(
        Param(
            "quality",
            ranges=((30, 80), (20, 29), (10, 19)),
            valid=(1, 95),
            integer=True,
            sets_level=True,
            doc="JPEG quality 1-95 (smaller = worse); < 30 is severe",
        ),
    ),
    apply=_jpeg,
)
