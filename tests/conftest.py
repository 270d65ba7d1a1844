from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from skimage.transform import resize

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The suite's expected outputs (tests/golden) are PyTorch eager's: reproducible on any x86 CPU
# CI lands on. The faster backends (OpenVINO, ONNX Runtime; the users' default when installed)
# are checked against it in tests/test_backends.py, which sets the backend itself.
os.environ.setdefault("RESTOREGRAPH_BACKEND", "torch")


def crop(img: np.ndarray, size: int) -> np.ndarray:
    f = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    h, w = f.shape[:2]
    s = min(h, w)
    f = f[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return resize(f, (size, size), anti_aliasing=True).astype(np.float32)


@pytest.fixture(scope="session")
def astronaut_192() -> np.ndarray:
    return crop(skimage.data.astronaut(), 192)


@pytest.fixture(scope="session")
def chelsea_192() -> np.ndarray:
    return crop(skimage.data.chelsea(), 192)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("RESTOREGRAPH_HOME", str(h))
    return h
