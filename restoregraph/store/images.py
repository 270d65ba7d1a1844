"""A content-addressed image store: files named by the sha256 of their pixels, written once.

Images are stored losslessly as 16-bit PNG, so a replay from a checkpoint reads back exactly the
pixels the original run produced, and a file an old checkpoint points to is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from restoregraph.core.errors import InputError, StoreError
from restoregraph.core.state import ImageRef
from restoregraph.core.timing import timed
from restoregraph.core.util import band_rows

TOUCH_AFTER_S = 60.0  # re-putting an image older than this refreshes its mtime (see put)


@timed("checkpoint_io")
def quantise(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint16 (the stored pixels), a band of rows at a time (no whole-image float
    temporaries: a 48 MP photo is 576 MB of float32). A caller that will not read the float
    image again quantises it, drops it and hands the result to :meth:`ImageStore.put_quantised`:
    the float copy is then gone while the PNG is encoded."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 0:
        return np.round(np.clip(arr, 0.0, 1.0) * 65535.0).astype(np.uint16)
    q = np.empty(arr.shape, np.uint16)
    step = band_rows(arr)
    for r in range(0, len(arr), step):
        q[r : r + step] = np.round(np.clip(arr[r : r + step], 0.0, 1.0) * 65535.0)
    return q


def _to_float(rgb: np.ndarray) -> np.ndarray:
    """uint16 -> float32 in [0, 1], a band of rows at a time (same values as a whole-image
    ``rgb.astype(np.float32) / 65535.0``)."""
    out = np.empty(rgb.shape, np.float32)
    step = band_rows(rgb)
    for r in range(0, len(rgb), step):
        np.divide(rgb[r : r + step].astype(np.float32), np.float32(65535.0), out=out[r : r + step])
    return out


HASH_CHUNK_BYTES = 8 << 20  # pixel_hash feeds sha256 this much at a time


def pixel_hash(q: np.ndarray) -> str:
    """sha256 of the shape and the pixel bytes, fed in chunks of rows (no copy of the image)."""
    h = hashlib.sha256()
    h.update(str(tuple(q.shape)).encode())
    flat = np.ascontiguousarray(q).reshape(-1).view(np.uint8)
    for start in range(0, flat.size, HASH_CHUNK_BYTES):
        h.update(flat[start : start + HASH_CHUNK_BYTES].data)
    return h.hexdigest()


class ImageStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.png"

    @timed("checkpoint_io")
    def put(self, image: np.ndarray) -> ImageRef:
        return self.put_quantised(quantise(image))

    @timed("checkpoint_io")
    def put_quantised(self, q: np.ndarray) -> ImageRef:
        """Store uint16 pixels from :func:`quantise`. ``q`` is encoded in place (its channels
        are swapped to BGR for the encoder): the caller hands it over and does not read it
        again."""
        if q.dtype != np.uint16:
            raise InputError(f"put_quantised: expected uint16 pixels, got {q.dtype}")
        sha = pixel_hash(q)
        shape = [int(s) for s in q.shape]
        path = self.path_for(sha)
        if path.exists():
            # In use again: make an old file young, so a gc running now (it keeps files younger
            # than its grace period, minutes) cannot delete it before a checkpoint refers to it.
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > TOUCH_AFTER_S:
                    os.utime(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            bgr = cv2.cvtColor(q, cv2.COLOR_RGB2BGR, dst=q) if q.ndim == 3 else q  # in place
            ok, buf = cv2.imencode(".png", bgr)
            del bgr
            if not ok:
                raise InputError("could not encode image for the store")
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.data)  # the encoded bytes, not a copy of them
            os.replace(tmp, path)
        return ImageRef(uri=str(path), sha256=sha, shape=shape)

    @timed("checkpoint_io")
    def get(self, ref: ImageRef) -> np.ndarray:
        """The pixels of ``ref`` as float32 RGB in [0, 1], checked (see :meth:`read`)."""
        return _to_float(self.read(ref))

    @timed("checkpoint_io")
    def preview(self, ref: ImageRef, max_side: int) -> np.ndarray:
        """``ref``'s pixels (checked) shrunk by area averaging to at most ``max_side`` px a side,
        as float32 RGB: a report's thumbnail without a whole-image float copy."""
        rgb = self.read(ref)
        h, w = rgb.shape[:2]
        if max(h, w) > max_side:
            f = max_side / max(h, w)
            size = (max(1, round(w * f)), max(1, round(h * f)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        return _to_float(rgb)

    def read(self, ref: ImageRef) -> np.ndarray:
        """The stored uint16 pixels of ``ref``, checked: the file must decode to an array of
        ``ref``'s shape whose ``pixel_hash`` is ``ref``'s sha256, else ``StoreError`` naming the
        file.

        The file is looked up by its hash in this store first, then at ``ref["uri"]``: a home
        that was copied or moved still finds its images (the uri is where it was written)."""
        sha = str(ref["sha256"])
        path = self.path_for(sha)
        if not path.exists():
            path = Path(ref["uri"])
            if not path.exists():
                raise StoreError(
                    f"image {sha[:12]} is missing from the store {self.root} (was it deleted, "
                    "or the store moved?); runs that need it cannot be resumed or undone"
                )
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if data is None:
            raise StoreError(f"stored image {path} is unreadable (damaged or not a PNG)")
        rgb = cv2.cvtColor(data, cv2.COLOR_BGR2RGB, dst=data) if data.ndim == 3 else data
        shape = [int(s) for s in rgb.shape]
        want = [int(s) for s in ref.get("shape") or shape]
        if shape != want:
            raise StoreError(
                f"stored image {path} has shape {shape}, its checkpoint says {want}: the file "
                "was replaced or damaged; RestoreGraph will not use it"
            )
        if rgb.dtype != np.uint16 or pixel_hash(rgb) != sha:
            raise StoreError(
                f"stored image {path} does not match its sha256 {sha[:12]}...: the file was "
                "replaced or damaged; RestoreGraph will not use it"
            )
        return rgb

    def all_hashes(self) -> set[str]:
        return {p.stem for p in self.root.glob("??/*.png")}

    def collect_garbage(self, keep: Iterable[str], min_age_s: float = 0.0) -> int:
        """Delete every stored image whose hash is not in ``keep`` and that is older than
        ``min_age_s`` seconds (a running process writes an image a moment before a checkpoint
        refers to it); also delete temporary files a killed writer left. Return how many
        images were removed."""
        keep_set = set(keep)
        cutoff = time.time() - min_age_s
        removed = 0
        for p in self.root.glob("??/*.png"):
            if p.stem in keep_set:
                continue
            try:
                if p.stat().st_mtime > cutoff:
                    continue
            except OSError:
                continue
            p.unlink(missing_ok=True)
            removed += 1
        for p in self.root.glob("??/*.part"):
            with contextlib.suppress(OSError):
                if p.stat().st_mtime <= cutoff:
                    p.unlink()
        return removed
