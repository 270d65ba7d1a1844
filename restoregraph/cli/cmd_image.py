"""``restoregraph degrade`` and ``restoregraph metrics``: make a test image, score an image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from restoregraph.cli.options import AS_JSON, MAX_PIXELS, OUTPUT, OVERWRITE
from restoregraph.core.errors import InputError

console = Console(stderr=True)
out_console = Console()

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")


def read_input(spec: str, max_pixels: int | None = None) -> Any:
    """A path, or ``sample:NAME`` for an image scikit-image ships (astronaut, chelsea, ...)."""
    from restoregraph.imageio import as_float_image, load_image

    if spec.startswith("sample:"):
        name = spec.split(":", 1)[1]
        if name not in SAMPLES:
            raise InputError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
        import skimage.data

        return as_float_image(getattr(skimage.data, name)())
    return load_image(spec, max_pixels=max_pixels)


@click.command("degrade")
@click.argument("image")
@OUTPUT
@click.option(
    "-t",
    "--types",
    default="noise+jpeg",
    show_default=True,
    help="Mixture in order, e.g. rain+noise:2+jpeg (type[:level]).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same result.")
@OVERWRITE
@click.option(
    "--meta",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the sampled parameters as JSON.",
)
@MAX_PIXELS
def degrade(
    image: str,
    output: Path,
    types: str,
    seed: int,
    overwrite: bool,
    meta: Path | None,
    max_pixels: int | None,
) -> None:
    """Synthesise a mixture of degradations on IMAGE (a path, or sample:astronaut)."""
    from restoregraph.degrade import apply_mixture, parse_mixture
    from restoregraph.imageio import check_output_path, save_image

    protect = () if image.startswith("sample:") else (image,)
    spec = parse_mixture(types)
    check_output_path(output, protect=protect, overwrite=overwrite)
    img = read_input(image, max_pixels)
    out, infos = apply_mixture(img, spec, seed=seed)
    save_image(out, output, protect=protect, overwrite=overwrite)
    if meta is not None:
        meta.write_text(json.dumps([i.to_dict() for i in infos], indent=2))
    desc = " → ".join(f"{i.type}(level {i.level})" for i in infos)
    console.print(f"wrote {output} [dim]({desc}, seed {seed})[/dim]")


@click.command("metrics")
@click.argument("image")
@click.option("--ref", default=None, help="Clean reference image (full-reference metrics).")
@click.option("--metrics", "names", default=None, help="Comma-separated metric names.")
@AS_JSON
@MAX_PIXELS
def metrics(
    image: str, ref: str | None, names: str | None, as_json: bool, max_pixels: int | None
) -> None:
    """Compute quality metrics (full-reference with --ref, no-reference always)."""
    from restoregraph.metrics import available_metrics, compute

    img = read_input(image, max_pixels)
    reference = read_input(ref, max_pixels) if ref else None
    if names:
        values = compute([n.strip() for n in names.split(",") if n.strip()], img, reference)
    else:  # every usable metric; skip those this image is too small for, and say so
        values = {}
        for n, info in available_metrics().items():
            if info.get("needs_weights") or (reference is None and info["kind"] != "nr"):
                continue
            try:
                values.update(compute([n], img, reference))
            except InputError as exc:
                if reference is not None and img.shape != reference.shape:
                    raise
                console.print(f"[dim]skipped {n}: {exc}[/dim]")
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in values.items():
        table.add_row(k, f"{v:.4f}")
    out_console.print(table)
