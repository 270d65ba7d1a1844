"""Reading and writing images safely.

* ``load_image`` reads every common format Pillow reads (PNG, JPEG, WebP, TIFF, BMP, GIF...),
  applies the EXIF orientation, converts any mode (16-bit, palette, grayscale, RGBA, CMYK)
  to float32 RGB in [0, 1], and refuses decompression bombs *before* decoding pixels.
* ``save_image`` writes to a temporary file beside the target and renames it, so a crash never
  leaves a partial file, and it refuses to overwrite the input or (by default) any existing file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from restoregraph.core.errors import InputError, OutputError
from restoregraph.core.timing import timed
from restoregraph.core.util import band_rows

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP; configurable per call and via RESTOREGRAPH_MAX_PIXELS
MIN_SIDE = 8

SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}


def max_pixels_default() -> int:
    value = os.environ.get("RESTOREGRAPH_MAX_PIXELS")
    if value:
        try:
            return int(value)
        except ValueError:
            raise InputError(f"RESTOREGRAPH_MAX_PIXELS must be an integer, got {value!r}") from None
    return DEFAULT_MAX_PIXELS


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(arr / peak, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max(initial=1.0))
        gray = np.clip(arr / (hi if hi > 1.0 else 1.0), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if mode == "CMYK":
        img = img.convert("RGB")
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    out = np.asarray(rgb, dtype=np.float32)  # one float array, divided in place (48 MP: 576 MB)
    if not out.flags.writeable:
        out = out.copy()
    return np.divide(out, np.float32(255.0), out=out)


def load_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1], or raise ``InputError``."""
    p = Path(path)
    _check_readable(p)
    limit = max_pixels if max_pixels is not None else max_pixels_default()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Pillow warns (e.g. "Corrupt EXIF data") on files it still decodes: a CLI user
            # would get a second stderr line. What matters is whether the decode succeeds.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding
            try:
                with Image.open(p) as img:
                    w, h = img.size
                    if w * h > limit:
                        raise InputError(
                            f"{p}: image is {w}x{h} ({w * h / 1e6:.0f} MP), over the limit of "
                            f"{limit / 1e6:.0f} MP (set --max-pixels or RESTOREGRAPH_MAX_PIXELS)"
                        )
                    if min(w, h) < MIN_SIDE:
                        raise InputError(
                            f"{p}: image is {w}x{h}; RestoreGraph needs at least "
                            f"{MIN_SIDE}x{MIN_SIDE} pixels"
                        )
                    img.seek(0)  # first frame of animations
                    img.load()
                    upright: Image.Image = ImageOps.exif_transpose(img) or img
                    arr = _to_float_rgb(upright)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{p}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: cannot decode image ({msg})") from None
    except MemoryError:
        raise InputError(f"{p}: image too large to decode in memory") from None
    # min and max propagate NaN: no whole-image boolean temporary (48 MP: 144 MB)
    if not (np.isfinite(arr.min(initial=0.0)) and np.isfinite(arr.max(initial=0.0))):
        raise InputError(f"{p}: image contains invalid values")
    return np.ascontiguousarray(arr)


def as_float_image(image: np.ndarray) -> np.ndarray:
    """Convert uint8/uint16/float/gray arrays to float32 RGB in [0, 1]."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"expected an image array (H, W, 3), got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    # one new array (a clipped copy), never the caller's
    return np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)


def resize_bicubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float-precise bicubic resize of (H, W, C) float32, one channel at a time (Pillow mode F).

    Pillow widens its kernel when shrinking (like MATLAB imresize), so it low-passes before
    subsampling instead of aliasing. Values are not clipped.
    """
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (width, height), Image.Resampling.BICUBIC
            ),
            dtype=np.float32,
        )
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2)


def to_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 0:
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    out = np.empty(arr.shape, np.uint8)
    step = band_rows(arr)  # no whole-image float temporaries (a 48 MP photo: 576 MB each)
    for r in range(0, arr.shape[0], step):
        out[r : r + step] = (np.clip(arr[r : r + step], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _resolved(p: Path) -> Path:
    """``p.resolve()``, or ``p`` made absolute when it cannot be resolved (a symlink loop)."""
    try:
        return p.resolve()
    except (OSError, RuntimeError):
        return p.absolute()


def check_output_path(
    path: str | os.PathLike[str],
    *,
    protect: tuple[str | os.PathLike[str], ...] = (),
    overwrite: bool = False,
) -> Path:
    """Validate an output path before any work is done; return it as a Path."""
    out = Path(path)
    fmt = SAVE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"{out}: unsupported output extension {out.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(SAVE_FORMATS))}"
        )
    for src in protect:
        if _same_file(out, Path(src)) or _resolved(out) == _resolved(Path(src)):
            raise OutputError(f"{out}: refusing to overwrite the input file")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.exists() and out.is_dir():
        raise OutputError(f"{out}: is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{parent}: output directory does not exist")
    return out


@timed("output")
def save_image(
    image: np.ndarray,
    path: str | os.PathLike[str],
    *,
    protect: tuple[str | os.PathLike[str], ...] = (),
    overwrite: bool = False,
    quality: int = 95,
    jpeg_quality: int | None = None,
) -> Path:
    """Write ``image`` atomically (temp file + rename). Never overwrites protected files."""
    out = check_output_path(path, protect=protect, overwrite=overwrite)
    fmt = SAVE_FORMATS[out.suffix.lower()]
    arr = np.asarray(image)
    canonical = arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[2] == 3
    # to_uint8 clips a band at a time: a float32 RGB image needs no clipped whole copy first
    pil = Image.fromarray(to_uint8(arr if canonical else as_float_image(arr)))
    kwargs: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = jpeg_quality if jpeg_quality is not None else quality
    parent = out.parent if str(out.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pil.save(fh, format=fmt, **kwargs)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out
