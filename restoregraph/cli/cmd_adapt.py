"""``restoregraph adapt --add-tool ID``: extend the search data for a new tool and fine-tune the
embedded planner from its current weights (``restoregraph/search/adapt.py``); reports the time."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click


@click.command("adapt")
@click.option("--add-tool", "tool", required=True, help="The new tool's id (see `tools list`).")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=Path("data/search"),
    show_default=True,
    help="The search-data directory to extend (`restoregraph data build`).",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help="The embedded planner's current weights (default: the shipped ones).",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the fine-tuned weights (default: DATA/embedded_planner.pt).",
)
@click.option("--steps", type=int, default=600, show_default=True, help="Fine-tuning steps.")
@click.option(
    "--new-samples",
    type=int,
    default=8,
    show_default=True,
    help="For a tool of a task the data has no samples of: samples to build that need it.",
)
@click.option("--no-train", is_flag=True, help="Only extend the data.")
@click.option("--overwrite", is_flag=True, help="Replace an existing weights file.")
def adapt_cmd(
    tool: str,
    data: Path,
    weights: Path | None,
    out: Path | None,
    steps: int,
    new_samples: int,
    no_train: bool,
    overwrite: bool,
) -> None:
    """After `tools add`: re-run the pipelines that contain the new tool, then fine-tune."""
    from restoregraph.search.adapt import adapt

    out = out or data / "embedded_planner.pt"
    s = adapt(
        tool,
        data,
        weights,
        out,
        steps=steps,
        new_samples=new_samples,
        train=not no_train,
        overwrite=overwrite,
        command=shlex.join(["restoregraph", *sys.argv[1:]]),
    )
    click.echo(
        f"data: {s.extended} of {s.samples} samples extended, {s.new_samples} new, "
        f"{s.new_pipelines} new pipelines, {s.tool_calls} tool calls in {s.data_seconds:.1f} s",
        err=True,
    )
    if s.weights:
        click.echo(
            f"planner: fine-tuned {steps} steps in {s.train_seconds:.1f} s -> {s.weights} "
            f"(use it with --planner embedded -P weights={s.weights})",
            err=True,
        )
    click.echo(f"adapt wall time: {s.total_seconds / 60:.1f} min", err=True)


def register(app: click.Group) -> None:
    app.add_command(adapt_cmd)
