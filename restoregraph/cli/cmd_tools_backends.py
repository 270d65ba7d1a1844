"""``restoregraph tools backends`` and ``restoregraph tools export``: the learned tools'
inference backends (restoregraph/tools/backends, docs/backends.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from restoregraph.cli.options import AS_JSON


@click.command("backends")
@AS_JSON
def tools_backends_cmd(as_json: bool) -> None:
    """Which inference backends are installed, and which one runs ($RESTOREGRAPH_BACKEND)."""
    from restoregraph.tools.backends import ENV, describe, requested, resolve

    rows = describe()
    if as_json:
        click.echo(json.dumps({"requested": requested(), "runs": resolve(), "backends": rows}))
        return
    for r in rows:
        state = "installed" if r["installed"] else f"missing (pip install {r['package']})"
        click.echo(f"{r['backend']:14} {state}{'  <- auto' if r['auto'] else ''}")
    click.echo(f"${ENV}={requested()}: the learned tools run on {resolve()}")


@click.command("export")
@click.option(
    "--backend",
    type=click.Choice(["onnx"]),
    default="onnx",
    show_default=True,
    help="Export format (ONNX serves both onnxruntime and openvino).",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Export folder (default: $RESTOREGRAPH_EXPORT_DIR or ~/.cache/restoregraph/exported).",
)
@click.option("--force", is_flag=True, help="Export again even when a verified export exists.")
@AS_JSON
def tools_export_cmd(backend: str, folder: Path | None, force: bool, as_json: bool) -> None:
    """Derive ONNX models from the shipped learned tools' and perception CNN's weights (and the
    embedded planner's numpy arrays), check them, write manifests.

    Each export is verified against its source weights (sha256) and PyTorch's outputs; later
    loads re-verify the sha256s and export again on a mismatch.
    """
    from restoregraph.core.errors import ToolError
    from restoregraph.tools.backends.export import ensure_export, export_onnx
    from restoregraph.tools.learned import WEIGHTS_DIR, learned_entries

    rows = []
    for e in [*learned_entries(), *_derived_entries(force)]:
        src = WEIGHTS_DIR / str(e["file"])
        sha = e.get("sha256")
        make = e.get("make") or (export_onnx if force else ensure_export)
        try:
            path, meta = make(src, sha, folder)
        except ToolError as exc:
            rows.append({"id": e["id"], "error": str(exc)})
            if not as_json:
                click.echo(f"{e['id']:24} FAILED: {exc}", err=True)
            continue
        key = "onnx" if path.suffix == ".onnx" else "path"
        rows.append({"id": e["id"], key: str(path), **meta})
        if not as_json:
            click.echo(
                f"{e['id']:24} {path.name}  max diff vs torch "
                f"{meta['check']['max_abs_diff']:.1e} ({meta['check']['engine']})"
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    if any("error" in r for r in rows):
        raise ToolError(f"{sum('error' in r for r in rows)} export(s) failed")


def _derived_entries(force: bool) -> list[dict[str, Any]]:
    """The perception CNN (ONNX) and the embedded planner's scorer (numpy arrays): what a
    restore on an ONNX backend runs instead of torch. ``make(source, sha256, folder)``."""
    from restoregraph.perception.exported import ensure_perception_export, export_perception
    from restoregraph.perception.files import DEFAULT_WEIGHTS as PERCEPTION_WEIGHTS
    from restoregraph.planners.embedded import DEFAULT_WEIGHTS as PLANNER_WEIGHTS
    from restoregraph.planners.embedded import export_arrays
    from restoregraph.weightfiles import sha256_of

    def perception(src: Path, sha: str | None, folder: Path | None) -> Any:
        if force:
            return export_perception(src, sha or sha256_of(src), folder)
        return ensure_perception_export(src, folder)

    def planner(src: Path, sha: str | None, folder: Path | None) -> Any:
        return export_arrays(src, folder, force)

    return [
        {"id": "perception.cnn", "file": PERCEPTION_WEIGHTS, "make": perception},
        {"id": "planner.embedded", "file": PLANNER_WEIGHTS, "make": planner},
    ]
