"""Generate the bad-input corpus: broken, odd and hostile image files (test helper)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small file whose header claims a huge image (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (width * 3)
    idat = zlib.compress(row * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def sample_rgb(size: int = 64) -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()[::8, ::8][:size, :size])


def make_corpus(root: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (path, valid). ``valid`` files must give a correct result, others a clean error."""
    root.mkdir(parents=True, exist_ok=True)
    rgb = sample_rgb()
    png = _save(rgb, "PNG")
    files: dict[str, tuple[bytes, bool]] = {
        "not_an_image.png": (b"hello, I am text pretending to be a PNG\n" * 10, False),
        "truncated.png": (png[: len(png) // 2], False),
        "zero_bytes.png": (b"", False),
        "one_by_one.png": (_save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), False),
        "bomb_30000.png": (bomb_png(), False),
        "sixteen_bit.png": (
            _save(
                Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)),
                "PNG",
            ),
            True,
        ),
        "grayscale.png": (_save(rgb.convert("L"), "PNG"), True),
        "rgba.png": (_save(rgb.convert("RGBA"), "PNG"), True),
        "cmyk.jpg": (_save(rgb.convert("CMYK"), "JPEG"), True),
    }
    out: dict[str, tuple[Path, bool]] = {}
    for name, (data, valid) in files.items():
        p = root / name
        p.write_bytes(data)
        out[name] = (p, valid)
    out["missing.png"] = (root / "missing.png", False)
    return out
