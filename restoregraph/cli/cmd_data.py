"""``restoregraph data`` and ``restoregraph data build``: the pipeline-search data (every
pipeline run and scored).

The other ``data`` subcommands (``export``, ``experience``) live in ``cmd_data_export.py``;
``restoregraph.cli.main`` puts the three in this group.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from restoregraph.cli.options import run_option


@click.group("data")
def data() -> None:
    """Pipeline-search data: build it, export instruction data, distil experience."""


@click.command("build")
@click.option(
    "--data",
    "source",
    type=click.Path(path_type=Path),
    default=Path("../shared/data/train"),
    show_default=True,
    help="Folder of clean training images (CBSD432/ and ImageNetSample/ when present).",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    default=Path("data/search"),
    show_default=True,
    help="Search-data directory (created; an existing one with the same settings is resumed).",
)
@click.option("--n", "n", type=int, default=300, show_default=True, help="Number of samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True, help="Crop side in px.")
@click.option(
    "--toolbox",
    default="default",
    show_default=True,
    help="'default' (restoregraph.lab.search.toolbox: today's mostly learned tools), 'whole' "
    "(the whole toolbox, learned and classical, at most the 3 best-ranked tools per task) or a "
    "JSON file {task: [tool ids]}.",
)
@click.option(
    "--realistic",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of samples degraded with the realistic synthesis (restoregraph.degrade."
    "realistic) instead of the project's own, at the same types and levels.",
)
@run_option("objective", help="Score of the final images (z-scored over each image's pipelines).")
@click.option(
    "--mixtures",
    default="default",
    show_default=True,
    help="Mixtures drawn: 'default' (half RestoreAgent's seven, half random types), 'bench' "
    "(only the benchmark's kinds: RestoreAgent's seven and AgenticIR's groups) or a list of "
    "kinds such as 'defocus+haze,defocus+jpeg' (only those; random levels and orders).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option(
    "--ray",
    "ray_address",
    default=None,
    help="Run on a Ray cluster at ADDRESS ('auto', 'ray://host:10001'; 'local' starts one).",
)
@click.option("--no-features", is_flag=True, help="Skip the embedded planner's node features.")
@click.option(
    "--leaf-features",
    is_flag=True,
    help="Also store the features of every pipeline's final image (what the plan critic, "
    "restoregraph.planners.critic, is trained on).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build_cmd(
    source: Path,
    out: Path,
    n: int,
    seed: int,
    crop: int,
    toolbox: str,
    realistic: float,
    objective: str,
    mixtures: str,
    workers: int,
    ray_address: str | None,
    no_features: bool,
    leaf_features: bool,
    quiet: bool,
) -> None:
    """Run EVERY pipeline (every order x every model of the search toolbox) on degraded crops
    of clean images, as a prefix tree, and store all pipelines with scores and ranks."""
    import torch

    from restoregraph.lab.search.build import BuildConfig, run_build
    from restoregraph.lab.search.toolbox import load_toolbox
    from restoregraph.tools import default_registry

    torch.set_num_threads(1)
    tb = load_toolbox(toolbox, default_registry())
    cfg = BuildConfig(
        source=str(source),
        out=str(out),
        n=n,
        toolbox=tb,
        seed=seed,
        crop=crop,
        objective=objective,
        features=not no_features,
        leaf_features=leaf_features and not no_features,
        command=shlex.join(["restoregraph", *sys.argv[1:]]),
        toolbox_spec=toolbox,
        mixtures=mixtures,
        realistic=realistic,
    )
    try:
        summary = run_build(cfg, workers=workers, ray_address=ray_address, show_progress=not quiet)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: the finished samples are in {out}; run the same command again to resume",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    click.echo(
        f"{out}: {summary.built} samples built, {summary.skipped} already there; "
        f"{summary.pipelines} pipelines, {summary.tool_calls} tool calls in "
        f"{summary.wall_s:.1f} s = {summary.pipelines_per_s:.2f} pipelines/s "
        f"({summary.pipelines_per_worker_s:.2f} per worker-second)",
        err=True,
    )
