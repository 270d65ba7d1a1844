"""What every benchmark shares: the data directory, image lists, seeds, progress bars."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TypeVar

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.util import natural_key

DEFAULT_DATA = "../shared/data/test"  # resolved against the current working directory
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

T = TypeVar("T")


HELDOUT_PERCENT = 20  # share of source images held out for validation


def is_heldout(source: str, percent: int = HELDOUT_PERCENT) -> bool:
    """Whether ``source`` (a sample's source path) belongs to the planners' held-out split."""
    return zlib.crc32(source.encode()) % 100 < percent


def data_dir(path: str | Path | None = None) -> Path:
    """The test-set folder (``--data``; default ``../shared/data/test`` from the cwd)."""
    p = Path(path if path is not None else DEFAULT_DATA).expanduser()
    resolved = p if p.is_absolute() else Path.cwd() / p
    if not resolved.is_dir():
        raise InputError(
            f"benchmark data folder not found: {resolved} "
            "(pass --data DIR, a folder holding test sets such as CBSD68/ and Kodak24/)"
        )
    return resolved.resolve()


def list_images(folder: Path) -> list[Path]:
    """The image files of a folder, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{what}: empty list")
    return items


def parse_levels(text: str) -> list[int]:
    levels = []
    for t in parse_list(text, "--levels"):
        if t not in ("1", "2", "3"):
            raise InputError(f"--levels: each level must be 1, 2 or 3, got {t!r}")
        levels.append(int(t))
    return sorted(set(levels))


def set_images(root: Path, name: str, n: int, heldout: bool = False) -> list[Path]:
    """The first ``n`` images of test set ``name`` under ``root`` (a clear error if absent);
    with ``heldout`` only those of the planners' held-out split
    (:func:`is_heldout` of ``name/file``): validation images of a
    training set that no planner was trained on."""
    folder = root / name
    if not folder.is_dir():
        have = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
        raise InputError(f"test set {name!r} not found in {root} (found: {have})")
    files = list_images(folder)
    if heldout:
        files = [p for p in files if is_heldout(f"{name}/{p.name}")]
    if not files:
        what = "held-out images" if heldout else "images"
        raise InputError(f"test set {name!r} in {root} holds no {what}")
    return files[:n]


def image_seed(*parts: object) -> int:
    """A stable seed from names (crc32 of ``a/b/c``): the same image always gets the same draw."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def quantize8(img: np.ndarray) -> np.ndarray:
    """Round to 8-bit levels, as the degraded image would be when saved as a PNG."""
    return (np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def centre_crop(img: np.ndarray, short: int, long: int) -> np.ndarray:
    """A centre crop at most ``short`` x ``long`` px (orientation kept; never upscales)."""
    h, w = img.shape[:2]
    ch, cw = (long, short) if h > w else (short, long)
    ch, cw = min(ch, h), min(cw, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[top : top + ch, left : left + cw])
