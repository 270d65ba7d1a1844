"""A contact sheet of every realistic degradation type at levels 1-3, plus a few mixtures.

python -m restoregraph.degrade.realistic.sheet -o docs/realistic_degradations.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from restoregraph.degrade.realistic.mixture import apply_realistic, realistic_mixture
from restoregraph.imageio import as_float_image, to_uint8

ROWS = (
    "haze",
    "rain",
    "raindrop",
    "snow",
    "noise",
    "motion_blur",
    "blur",
    "low_light",
    "jpeg",
    "low_resolution",
)
# the parameters shown in a cell's label
KEY_PARAMS = {
    "haze": ("beta", "airlight_kind"),
    "rain": ("density", "layers"),
    "raindrop": ("count",),
    "snow": ("mid", "veil"),
    "noise": ("gain",),
    "motion_blur": ("extent",),
    "blur": ("radius",),
    "low_light": ("exposure", "cast"),
    "jpeg": ("quality", "saves"),
    "low_resolution": ("factor",),
}
SHORT = {"airlight_kind": "", "cast": "", "layers": "layers", "saves": "saves"}
EXTRA_ROWS = ("haze", "raindrop")  # types shown on the second (outdoor) image too
PALETTE_COLOURS = 128
LABEL_HEIGHT = 14
GAP = 4


def _fmt(key: str, value: Any) -> str:
    text = f"{value:.2g}" if isinstance(value, float) else str(value)
    name = SHORT.get(key, key)
    return f"{name}={text}" if name else text


def sample_image(name: str = "astronaut", size: int = 256) -> np.ndarray:
    """A scikit-image sample (``astronaut``, ``rocket``, ``coffee``...), centre-cropped to a
    square and resized to ``size`` x ``size`` pixels."""
    from skimage import data

    pil = Image.fromarray(getattr(data, name)())
    side = min(pil.size)
    left, top = (pil.size[0] - side) // 2, (pil.size[1] - side) // 2
    pil = pil.crop((left, top, left + side, top + side))
    pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    return as_float_image(np.asarray(pil))


def contact_sheet(
    image: np.ndarray,
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    mixtures: int = 2,
    extra: np.ndarray | None = None,
    palette: bool = True,
) -> Path:
    """Rows: each type at levels 1, 2, 3 after a clean column (same seed across a row), then
    rows of random mixtures (labels shown). ``extra`` (another image, e.g. one with sky) is
    shown under :data:`EXTRA_ROWS` too. With ``palette`` the sheet is a 256-colour PNG."""
    clean = as_float_image(image)
    h, w = clean.shape[:2]
    font = ImageFont.load_default()
    cell_h = h + LABEL_HEIGHT
    rows: list[list[tuple[np.ndarray, str]]] = []
    for type_ in ROWS:
        sources = [clean]
        if extra is not None and type_ in EXTRA_ROWS:
            sources.append(as_float_image(extra))
        for src in sources:
            cells = [(src, f"{type_}: clean")]
            for level in (1, 2, 3):
                rec: dict[str, Any] = {}
                out = apply_realistic(src, type_, level, np.random.default_rng(seed), record=rec)
                shown = " ".join(_fmt(k, rec[k]) for k in KEY_PARAMS[type_] if k in rec)
                cells.append((out, f"L{level} {shown}"))
            rows.append(cells)
    for m in range(mixtures):
        cells = [(clean, "mixture: clean")]
        for k in range(3):
            rng = np.random.default_rng([seed, m, k])
            out, labels = realistic_mixture(clean, rng)
            cells.append((out, " ".join(f"{t}:{lv}" for t, lv in labels.items())))
        rows.append(cells)
    width = 4 * w + 5 * GAP
    sheet = Image.new("RGB", (width, len(rows) * (cell_h + GAP) + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, cells in enumerate(rows):
        y = GAP + r * (cell_h + GAP)
        for c, (cell, label) in enumerate(cells):
            x = GAP + c * (w + GAP)
            draw.text((x + 2, y + 1), label, fill=(0, 0, 0), font=font)
            tile = Image.fromarray(to_uint8(cell[:h, :w]))
            sheet.paste(tile, (x, y + LABEL_HEIGHT))
    out_path = Path(path)
    if palette:
        # median cut to 128 colours + Floyd-Steinberg: about 3x smaller than full colour (noise
        # and rain do not compress), keeping the docs' sheet under 600 KB
        sheet = sheet.quantize(
            PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
        )
    sheet.save(out_path, format="PNG", optimize=True)
    return out_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-o", "--output", default="docs/realistic_degradations.png")
    parser.add_argument("--size", type=int, default=152, help="cell size in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-extra", action="store_true", help="skip the sky-scene rows")
    parser.add_argument("--exact", action="store_true", help="full-colour PNG (larger)")
    args = parser.parse_args(argv)
    extra = None if args.no_extra else sample_image("rocket", args.size)
    path = contact_sheet(
        sample_image("astronaut", args.size),
        args.output,
        seed=args.seed,
        extra=extra,
        palette=not args.exact,
    )
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
