"""Generate the bad-input corpus: broken, odd and hostile image files (test helper).

``build_corpus(root)`` writes >= 200 files (and directories, links, pipes) and returns a
:class:`Case` per entry saying what a correct program must do with it:

* ``"error"``  -> a clean ``InputError`` (CLI: one line, exit 2);
* ``"valid"``  -> a correct image; ``expected`` (when set) is the float RGB it must decode to,
  within ``atol`` (lossy formats get a looser tolerance);
* ``"either"`` -> a clean error, or an image; when ``expected`` is set the image must match it
  (a truncated file that lost only trailing bytes may still decode, but never to other pixels);
  when it is not (random byte flips), any finite RGB image in [0, 1] of the right size will do.

Every file is generated from scikit-image's astronaut with fixed seeds: no data files needed.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

Expect = str  # "error" | "valid" | "either"
LOSSY = 8 / 255.0  # tolerances from here up are compared with the mean, not the max, error


@dataclass
class Case:
    name: str  # unique id (also the file name, unless ``path`` says otherwise)
    path: Path
    expect: Expect
    family: str  # truncated, flipped, format, mode, exif, bomb, size, nonimage, path, name...
    expected: np.ndarray | None = None  # the float32 RGB a valid decode must give
    atol: float = 1.5 / 255.0  # max abs error (lossless), or mean abs error when ``lossy``
    size: tuple[int, int] | None = None  # (height, width) a decoded image must have

    @property
    def valid(self) -> bool:
        return self.expect == "valid"

    def mismatch(self, image: np.ndarray) -> str:
        """Why ``image`` is not a correct decode of this case ("" when it is)."""
        if image.dtype != np.float32 or image.ndim != 3 or image.shape[2] != 3:
            return f"not float32 RGB: {image.dtype} {image.shape}"
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            return "values outside [0, 1]"
        if self.size is not None and image.shape[:2] != self.size:
            return f"size {image.shape[:2]}, expected {self.size}"
        if self.expected is None:
            return ""
        if image.shape != self.expected.shape:
            return f"shape {image.shape}, expected {self.expected.shape}"
        diff = np.abs(image - self.expected)
        err = float(diff.mean() if self.atol >= LOSSY else diff.max())
        if err > self.atol:
            return f"pixels differ from the expected decode by {err:.4f} (> {self.atol:.4f})"
        return ""


# -- building blocks -------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small file whose header claims a huge image (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (min(width, 100_000) * 3)
    idat = zlib.compress(row * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def bomb_jpeg(width: int = 65000, height: int = 65000) -> bytes:
    """A real small JPEG whose SOF header is patched to claim ``width`` x ``height``."""
    data = bytearray(_save(sample_rgb(16), "JPEG", quality=90))
    i = 2
    while i < len(data) - 9:
        if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    raise AssertionError("no SOF marker")


def bomb_gif(width: int = 65535, height: int = 65535) -> bytes:
    data = bytearray(_save(sample_rgb(16).convert("P"), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # logical screen
    j = data.index(b"\x2c")  # image descriptor
    struct.pack_into("<HH", data, j + 5, width, height)
    return bytes(data)


def bomb_bmp(width: int = 100000, height: int = 100000) -> bytes:
    data = bytearray(_save(sample_rgb(16), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def bomb_tiff(width: int = 100000, height: int = 100000) -> bytes:
    """An uncompressed TIFF whose ImageWidth/ImageLength tags claim a huge size."""
    data = bytearray(_save(sample_rgb(16), "TIFF"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (n,) = struct.unpack_from("<H", data, ifd)
    for k in range(n):
        off = ifd + 2 + 12 * k
        tag, typ = struct.unpack_from("<HH", data, off)
        if tag in (256, 257):
            value = width if tag == 256 else height
            if typ == 3:
                struct.pack_into("<HHIHH", data, off, tag, 4, 1, 0, 0)
            struct.pack_into("<I", data, off + 8, value)
    return bytes(data)


def bomb_webp(width: int = 16000, height: int = 16000) -> bytes:
    """A VP8X header whose canvas claims ``width`` x ``height`` around a small image."""
    small = _save(sample_rgb(16), "WEBP", lossless=True)
    body = small[12:]  # chunks after 'RIFF....WEBP'
    vp8x = (
        struct.pack("<I", 0)
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    payload = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def sample_rgb(size: int = 64) -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()[::8, ::8][:size, :size])


def sample_rect(h: int = 48, w: int = 64) -> Image.Image:
    """A non-square crop, so a rotation or a transposition is visible in the shape."""
    return Image.fromarray(np.ascontiguousarray(skimage.data.astronaut()[::8, ::8][:h, :w]))


def _f(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr, dtype=np.float32)


def rgb_of(img: Image.Image) -> np.ndarray:
    return _f(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)


def _on_white(img: Image.Image) -> np.ndarray:
    rgba = img.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return rgb_of(Image.alpha_composite(bg, rgba))


def flip_bytes(data: bytes, n: int, seed: int, skip: int = 0) -> bytes:
    """``data`` with ``n`` bytes at seeded random positions (after ``skip``) XOR-ed."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(n):
        i = rng.randrange(min(skip, len(out) - 1), len(out))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


# EXIF orientation -> the transpose that exif_transpose applies to show the image upright
EXIF_OPS: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


def exif_stored(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera would store so that ``orientation`` displays ``upright``."""
    op = EXIF_OPS[orientation]
    if op is None:
        return upright.copy()
    return upright.transpose(_INVERSE.get(op, op))


def _exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


NON_IMAGES: dict[str, bytes] = {
    "text": b"hello, I am text pretending to be an image\n" * 10,
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n",
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200,
    "html": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>\n",
    "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" '
    b'height="64"><rect width="64" height="64"/></svg>',
    "json": b'{"image": [[0, 1], [2, 3]], "note": "not pixels"}',
    "random": bytes(random.Random(7).randrange(256) for _ in range(4096)),
    "gzip": zlib.compress(b"\x89PNG not really" * 100),
    "python": b"import os\nos.system('echo pwned')\n",
    "magic_only_png": b"\x89PNG\r\n\x1a\n",
    "magic_only_jpeg": b"\xff\xd8\xff\xe0",
    "magic_only_gif": b"GIF89a",
    "magic_only_webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "magic_only_tiff": b"II*\x00",
    "nul_bytes": b"\x00" * 1024,
}


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photo.png", _save(sample_rgb(16), "PNG"))
    return buf.getvalue()


# -- the corpus ------------------------------------------------------------------------------
def build_corpus(root: Path) -> list[Case]:
    """Write the corpus under ``root`` (created) and return one :class:`Case` per entry."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(
        name: str,
        data: bytes,
        expect: Expect,
        family: str,
        expected: np.ndarray | None = None,
        atol: float = 1.5 / 255.0,
        size: tuple[int, int] | None = None,
    ) -> Case:
        p = root / name
        p.write_bytes(data)
        if expected is not None and size is None:
            size = (int(expected.shape[0]), int(expected.shape[1]))
        case = Case(name, p, expect, family, expected, atol, size)
        cases.append(case)
        return case

    rgb = sample_rgb()
    ref = rgb_of(rgb)
    lossy = LOSSY  # lossy codecs: the decode must look like the source (mean error), not equal it

    # Valid originals of each format (also the sources of the broken variants).
    originals: dict[str, tuple[bytes, float]] = {
        "png": (_save(rgb, "PNG"), 0.5 / 255),
        "jpg": (_save(rgb, "JPEG", quality=92), lossy),
        "webp": (_save(rgb, "WEBP", lossless=True), 0.5 / 255),
        "tif": (_save(rgb, "TIFF", compression="tiff_deflate"), 0.5 / 255),
        "bmp": (_save(rgb, "BMP"), 0.5 / 255),
        "gif": (_save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"), 12 / 255),
    }
    for ext, (data, tol) in originals.items():
        add(f"valid.{ext}", data, "valid", "format", ref, tol)
    add("valid_lossy.webp", _save(rgb, "WEBP", quality=80), "valid", "format", ref, lossy)
    add("valid_lzw.tif", _save(rgb, "TIFF", compression="tiff_lzw"), "valid", "format", ref)
    add("valid_raw.tif", _save(rgb, "TIFF"), "valid", "format", ref)
    add(
        "valid_progressive.jpg",
        _save(rgb, "JPEG", quality=92, progressive=True),
        "valid",
        "format",
        ref,
        lossy,
    )

    # Truncated: several cut points per format. Losing only trailing bytes may still decode,
    # but then it must give the original pixels.
    for ext in ("png", "jpg", "webp", "tif", "bmp", "gif"):
        data, tol = originals[ext]
        n = len(data)
        cuts = {"8b": 8, "10pct": n // 10, "25pct": n // 4, "50pct": n // 2}
        cuts |= {"75pct": 3 * n // 4, "90pct": 9 * n // 10, "minus16": n - 16, "minus1": n - 1}
        for label, cut in cuts.items():
            add(f"truncated_{label}.{ext}", data[:cut], "either", "truncated", ref, tol)
    png = originals["png"][0]
    add("truncated.png", png[: len(png) // 2], "error", "truncated")  # (older tests' name)

    # Corrupted: seeded byte flips, in the header region and anywhere.
    for ext in ("png", "jpg", "webp", "tif", "bmp", "gif"):
        data, _ = originals[ext]
        for nflip, seed in ((1, 1), (1, 2), (4, 3), (4, 4), (16, 5), (64, 6)):
            add(
                f"flipped{nflip}_s{seed}.{ext}",
                flip_bytes(data, nflip, seed),
                "either",
                "flipped",
                size=(64, 64),
            )
        add(
            f"flipped_header.{ext}",
            flip_bytes(data, 3, 99, skip=0)[:64] + data[64:],
            "either",
            "flipped",
            size=(64, 64),
        )
    # the first (magic) byte flipped: not recognised as any format
    png = originals["png"][0]
    add("magic_flipped.png", bytes([png[0] ^ 0xFF]) + png[1:], "error", "flipped")
    # a valid PNG whose CRCs are wrong
    bad_crc = bytearray(png)
    bad_crc[29:33] = b"\x00\x00\x00\x00"  # IHDR's CRC
    add("bad_crc.png", bytes(bad_crc), "either", "flipped", ref)

    # Wrong extensions: the content decides, not the name.
    add("png_named.jpg", originals["png"][0], "valid", "wrong_ext", ref)
    add("jpeg_named.png", originals["jpg"][0], "valid", "wrong_ext", ref, lossy)
    add("webp_named.tiff", originals["webp"][0], "valid", "wrong_ext", ref)
    add("tiff_named.webp", originals["tif"][0], "valid", "wrong_ext", ref)
    add("gif_named.bmp", originals["gif"][0], "valid", "wrong_ext", ref, 12 / 255)
    add("png_no_extension", originals["png"][0], "valid", "wrong_ext", ref)
    add("png_named.txt", originals["png"][0], "valid", "wrong_ext", ref)
    add("text_named.jpg", NON_IMAGES["text"], "error", "wrong_ext")
    add("zip_named.png", _zip_bytes(), "error", "wrong_ext")
    add("pdf_named.tif", NON_IMAGES["pdf"], "error", "wrong_ext")

    # Empty files.
    for ext in ("png", "jpg", "jpeg", "webp", "tif", "bmp", "gif", "txt"):
        add(f"zero_bytes.{ext}", b"", "error", "empty")

    # Decompression bombs: small files whose headers claim huge images.
    add("bomb_30000.png", bomb_png(), "error", "bomb")
    add("bomb_100000.png", bomb_png(100_000, 100_000), "error", "bomb")
    add("bomb_wide.png", bomb_png(2_000_000, 30), "error", "bomb")
    add("bomb_65000.jpg", bomb_jpeg(), "error", "bomb")
    add("bomb_65535.gif", bomb_gif(), "error", "bomb")
    add("bomb_100000.bmp", bomb_bmp(), "error", "bomb")
    add("bomb_100000.tif", bomb_tiff(), "error", "bomb")
    add("bomb_16000.webp", bomb_webp(), "error", "bomb")

    # Sizes: too small is refused; thin but >= 8 px is a real image.
    tiny = {"one_by_one.png": (1, 1), "two_by_two.png": (2, 2), "seven_by_seven.png": (7, 7)}
    tiny |= {"three_by_100000.png": (3, 100_000), "100000_by_three.png": (100_000, 3)}
    for name, (h, w) in tiny.items():
        arr = np.full((h, w, 3), (200, 10, 10), np.uint8)
        add(name, _save(Image.fromarray(arr), "PNG"), "error", "size")
    for name, (h, w) in {"eight_by_eight.png": (8, 8), "eight_by_3000.png": (8, 3000)}.items():
        arr = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
        add(name, _save(Image.fromarray(arr), "PNG"), "valid", "size", _f(arr / 255.0))

    # Modes: 16-bit, palette, grayscale, RGBA, LA, 1-bit, CMYK, float.
    g16 = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    g16_ref = _f(np.repeat((g16 / 65535.0)[..., None], 3, axis=2))
    add("sixteen_bit.png", _save(Image.fromarray(g16), "PNG"), "valid", "mode", g16_ref)
    add("sixteen_bit_gray.tif", _save(Image.fromarray(g16), "TIFF"), "valid", "mode", g16_ref)
    rgb16 = (np.asarray(rgb, dtype=np.uint16) * 257).astype(np.uint16)
    ok, enc = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    add("sixteen_bit_rgb.png", enc.tobytes(), "valid", "mode", ref)
    ok, enc = cv2.imencode(".tiff", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    add("sixteen_bit_rgb.tif", enc.tobytes(), "valid", "mode", ref)
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    add("palette.png", _save(pal, "PNG"), "valid", "mode", rgb_of(pal))
    add("palette.bmp", _save(pal, "BMP"), "valid", "mode", rgb_of(pal))
    pal_t = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)  # fresh: saves mutate
    pal_t.info["transparency"] = 0
    on_white = _on_white(pal_t)
    gif_t = _save(pal_t.copy(), "GIF", transparency=0, optimize=False)
    add(
        "palette_transparent.png",
        _save(pal_t.copy(), "PNG", transparency=0),
        "valid",
        "mode",
        on_white,
    )
    # (Pillow reads a transparent GIF's palette back reordered: check the size, not the pixels)
    add("palette_transparent.gif", gif_t, "valid", "mode", size=(64, 64))
    gray = rgb.convert("L")
    for ext, fmt, tol in (
        ("png", "PNG", 0.5 / 255),
        ("jpg", "JPEG", lossy),
        ("tif", "TIFF", 0.5 / 255),
        ("webp", "WEBP", lossy),
        ("bmp", "BMP", 0.5 / 255),
    ):
        add(f"grayscale.{ext}", _save(gray, fmt), "valid", "mode", rgb_of(gray), tol)
    rgba = rgb.convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    rgba.putalpha(Image.fromarray(alpha))
    for ext, fmt in (("png", "PNG"), ("webp", "WEBP"), ("tif", "TIFF")):
        kw: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
        add(f"rgba.{ext}", _save(rgba, fmt, **kw), "valid", "mode", _on_white(rgba), 2.5 / 255)
    la = gray.copy()
    la.putalpha(Image.fromarray(alpha))
    add("la.png", _save(la, "PNG"), "valid", "mode", _on_white(la), 2.5 / 255)
    bw = gray.convert("1")
    add("one_bit.png", _save(bw, "PNG"), "valid", "mode", rgb_of(bw))
    add("one_bit.tif", _save(bw, "TIFF", compression="group4"), "valid", "mode", rgb_of(bw))
    cmyk = rgb.convert("CMYK")
    add("cmyk.jpg", _save(cmyk, "JPEG", quality=95), "valid", "mode", rgb_of(cmyk), lossy)
    add("cmyk.tif", _save(cmyk, "TIFF"), "valid", "mode", rgb_of(cmyk), 2.5 / 255)
    fl = Image.fromarray(np.asarray(gray, dtype=np.float32) / 255.0, mode="F")
    add("float32.tif", _save(fl, "TIFF"), "valid", "mode", rgb_of(gray), 1.5 / 255)
    add("ycbcr.jpg", _save(rgb.convert("YCbCr"), "JPEG", quality=95), "valid", "mode", ref, lossy)
    add("lab.tif", _save(rgb.convert("LAB"), "TIFF"), "either", "mode", size=(64, 64))

    # EXIF orientation 1..8, lossless (PNG eXIf) and JPEG: the decode must be upright.
    upright = sample_rect()
    up = rgb_of(upright)
    for o in range(1, 9):
        stored = exif_stored(upright, o)
        add(
            f"exif_orientation_{o}.png",
            _save(stored, "PNG", exif=_exif_bytes(o)),
            "valid",
            "exif",
            up,
        )
        add(
            f"exif_orientation_{o}.jpg",
            _save(stored, "JPEG", quality=95, exif=_exif_bytes(o)),
            "valid",
            "exif",
            up,
            lossy,
        )
    add(
        "exif_orientation_9.jpg",
        _save(upright, "JPEG", exif=_exif_bytes(9)),
        "either",
        "exif",
        size=(48, 64),
    )
    add(
        "exif_garbage.jpg",
        _save(upright, "JPEG", exif=b"Exif\x00\x00" + b"\xff" * 64),
        "either",
        "exif",
        size=(48, 64),
    )

    # Animations and multi-page files: the first frame / page.
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rgb.convert("L").convert("RGB")]
    gif_frames = [f.convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    add(
        "animated.gif",
        _save(
            gif_frames[0], "GIF", save_all=True, append_images=gif_frames[1:], duration=100, loop=0
        ),
        "valid",
        "animation",
        ref,
        12 / 255,
    )
    add(
        "animated.png",
        _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100),
        "valid",
        "animation",
        ref,
    )
    add(
        "animated.webp",
        _save(
            frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100
        ),
        "valid",
        "animation",
        ref,
    )
    add(
        "multipage.tif",
        _save(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "valid",
        "animation",
        ref,
    )
    odd = rgb.resize((32, 80))
    add(
        "multipage_sizes.tif",
        _save(odd, "TIFF", save_all=True, append_images=[rgb]),
        "valid",
        "animation",
        rgb_of(odd),
    )

    # Not images at all, under image names and under their own.
    for kind, data in NON_IMAGES.items():
        add(f"nonimage_{kind}.png", data, "error", "nonimage")
    add("nonimage.zip", _zip_bytes(), "error", "nonimage")
    add("nonimage.pdf", NON_IMAGES["pdf"], "error", "nonimage")
    add("nonimage.elf", NON_IMAGES["elf"], "error", "nonimage")
    add("nonimage.txt", NON_IMAGES["text"], "error", "nonimage")
    add("not_an_image.png", NON_IMAGES["text"], "error", "nonimage")

    # Odd names: spaces, unicode, shell characters, a leading dash, a newline.
    for name in (
        "with space.png",
        "naïve café.png",
        "日本語の写真.png",
        "emoji_📷.png",
        "semi;colon$(x).png",
        "-leading-dash.png",
        "quote'\"s.png",
        "x" * 200 + ".png",
    ):
        add(name, originals["png"][0], "valid", "name", ref)
    add("new\nline.png", NON_IMAGES["text"], "error", "name")
    add("tab\tname.png", originals["png"][0], "valid", "name", ref)

    # Paths that are not regular readable files.
    special: list[tuple[str, Callable[[Path], None], Expect]] = [
        ("missing.png", lambda p: None, "error"),
        ("a_directory.png", lambda p: p.mkdir(), "error"),
        ("symlink_loop.png", lambda p: p.symlink_to(p), "error"),
        ("symlink_dangling.png", lambda p: p.symlink_to(root / "nowhere.png"), "error"),
        ("symlink_to_valid.png", lambda p: p.symlink_to(root / "valid.png"), "valid"),
        ("symlink_to_dir.png", lambda p: p.symlink_to(root, target_is_directory=True), "error"),
        ("fifo.png", lambda p: os.mkfifo(p), "error"),
        ("dev_zero.png", lambda p: p.symlink_to("/dev/zero"), "error"),
        ("in_missing_dir/x.png", lambda p: None, "error"),
        ("through_a_file.png/x.png", lambda p: p.parent.write_bytes(b"plain file"), "error"),
    ]
    for name, make, expect in special:
        p = root / name
        make(p)
        cases.append(Case(name, p, expect, "path", ref if expect == "valid" else None))
    unreadable = root / "unreadable.png"
    unreadable.write_bytes(originals["png"][0])
    unreadable.chmod(0)
    # As root, chmod 000 does not stop reads: then the file is simply a valid image.
    blocked = not os.access(unreadable, os.R_OK)
    cases.append(
        Case(
            "unreadable.png",
            unreadable,
            "error" if blocked else "valid",
            "path",
            None if blocked else ref,
        )
    )
    noperm_dir = root / "locked_dir"
    noperm_dir.mkdir()
    (noperm_dir / "inside.png").write_bytes(originals["png"][0])
    noperm_dir.chmod(0)
    blocked = not os.access(noperm_dir, os.X_OK)
    cases.append(
        Case(
            "locked_dir/inside.png",
            noperm_dir / "inside.png",
            "error" if blocked else "valid",
            "path",
            None if blocked else ref,
        )
    )

    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate corpus names"
    return cases


def make_corpus(root: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (path, valid): the older interface of this helper, over the whole corpus."""
    return {c.name: (c.path, c.valid) for c in build_corpus(root)}


def restore_permissions(root: Path) -> None:
    """Make the chmod-000 entries removable again (pytest's tmp cleanup needs it)."""
    for name in ("unreadable.png", "locked_dir"):
        p = root / name
        if p.exists():
            p.chmod(0o755)
