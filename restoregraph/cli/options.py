"""Click options shared by several commands (one definition each)."""

from __future__ import annotations

from pathlib import Path

import click

# The names of metrics.OBJECTIVES (a test keeps the two in step; importing metrics here would
# slow every command's start).
OBJECTIVE_NAMES = ("balanced", "psnr", "ssim", "perceptual")

OBJECTIVE = click.option(
    "--objective",
    type=click.Choice(OBJECTIVE_NAMES),
    default="balanced",
    show_default=True,
    help="What the plan optimises.",
)

# RunContext.planner's default (a test keeps the two in step; importing restoregraph.graph here
# would slow every command's start).
PLANNER_DEFAULT = "embedded"

PLANNER = click.option(
    "--planner",
    default=PLANNER_DEFAULT,
    show_default=True,
    help="embedded | fixed | random | explore | oracle | openai ... (docs/planners.md).",
)

OVERWRITE = click.option("--overwrite", is_flag=True, help="Replace an existing output file.")

HOME = click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="Runs directory (default $RESTOREGRAPH_HOME or ~/.restoregraph).",
)
