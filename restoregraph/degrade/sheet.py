"""A contact sheet of every degradation type at every level, for eyeballing the synthesis.

Render the one in the docs with::

    python -m restoregraph.degrade.sheet docs/degradations.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from restoregraph.core.tasks import DEGRADATION_TYPES
from restoregraph.degrade import DEGRADATIONS, degrade
from restoregraph.imageio import as_float_image, to_uint8

LABEL_HEIGHT = 14
GAP = 4


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _label(info_params: dict[str, object], type_: str, level: int) -> str:
    names = [p.name for p in DEGRADATIONS[type_].level_params]
    shown = ", ".join(f"{n}={_fmt(info_params[n])}" for n in names)
    return f"{type_} L{level}: {shown}"


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Show a smaller image (low_resolution) at the cell size with nearest-neighbour pixels."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    rows = np.minimum((np.arange(height) * h) // height, h - 1)
    cols = np.minimum((np.arange(width) * w) // width, w - 1)
    return image[rows][:, cols]


def contact_sheet(
    image: np.ndarray,
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    palette: bool = True,
) -> Path:
    """Render ``image`` under every type (rows) at levels 1, 2, 3 (columns, after a clean
    column) and save the sheet as a PNG at ``path`` (overwritten). Returns the path.

    All levels of a row use the same seed, so they share their random draws and differ only
    in severity. With ``palette`` the sheet is stored as a dithered 256-colour PNG (about 3x
    smaller: noise does not compress); pass False to keep exact pixels.
    """
    clean = as_float_image(image)
    h, w = clean.shape[:2]
    font = ImageFont.load_default()
    cell_h = h + LABEL_HEIGHT
    sheet = Image.new(
        "RGB", (4 * w + 5 * GAP, len(DEGRADATION_TYPES) * (cell_h + GAP) + GAP), (255, 255, 255)
    )
    draw = ImageDraw.Draw(sheet)
    for row, type_ in enumerate(DEGRADATION_TYPES):
        y = GAP + row * (cell_h + GAP)
        cells: list[tuple[np.ndarray, str]] = [(clean, f"{type_}: clean")]
        for level in (1, 2, 3):
            out, info = degrade(clean, type_, level=level, seed=seed)
            label = _label(info.params, type_, level)
            if out.shape[:2] != (h, w):
                label += f" ({out.shape[1]}x{out.shape[0]})"
            cells.append((_fit(out, h, w), label))
        for col, (cell, label) in enumerate(cells):
            x = GAP + col * (w + GAP)
            draw.text((x + 2, y + 1), label, fill=(0, 0, 0), font=font)
            sheet.paste(Image.fromarray(to_uint8(cell)), (x, y + LABEL_HEIGHT))
    out_path = Path(path)
    if palette:
        colours = sheet.quantize(256, method=Image.Quantize.MAXCOVERAGE)
        sheet = sheet.quantize(palette=colours, dither=Image.Dither.FLOYDSTEINBERG)
    sheet.save(out_path, format="PNG", optimize=True)
    return out_path


def astronaut(size: int = 256) -> np.ndarray:
    """scikit-image's astronaut, downscaled to ``size`` pixels (area averaging)."""
    from skimage.data import astronaut as _astronaut

    pil = Image.fromarray(_astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    return as_float_image(np.asarray(pil))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", nargs="?", default="docs/degradations.png")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact", action="store_true", help="full-colour PNG (larger)")
    args = parser.parse_args(argv)
    path = contact_sheet(astronaut(args.size), args.output, seed=args.seed, palette=not args.exact)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
