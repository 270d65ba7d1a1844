"""``restoregraph bench speed``: the click command (a lazy subcommand of the ``bench`` group,
``restoregraph.cli.main.COMMANDS``). Heavy modules are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from restoregraph.cli.cmd_bench import DOC, Clock, finish_section

SECTION = "speed"
QUICK_SIZES = "192x128"


@click.command("speed")
@click.option(
    "--sizes",
    default="512x512,1024x1024,2048x1536",
    show_default=True,
    help="Photo sizes (WIDTHxHEIGHT) run with every planner, --repeats times each.",
)
@click.option(
    "--large-sizes",
    default="4000x3000,8000x6000",
    show_default=True,
    help="Photo sizes run once with the default planner ('' = none).",
)
@click.option(
    "--planners", default="embedded,fixed", show_default=True, help="Planners of --sizes."
)
@click.option(
    "--planner",
    "default_planner",
    default="embedded",
    show_default=True,
    help="The default planner (--large-sizes and the checks).",
)
@click.option("--repeats", type=int, default=3, show_default=True, help="Runs per size/planner.")
@click.option(
    "--mixture",
    default="motion_blur:2+noise:2+jpeg:2",
    show_default=True,
    help="The true degradations of the test photos (restoregraph.degrade).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Step budget (default: the run's).")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds before one run is killed (and listed as failed).",
)
@click.option(
    "--work",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep the test photos here (reused by the next run; default: a temporary folder).",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"A small run (tests): {QUICK_SIZES} only, the default planner, once, no large sizes.",
)
@DOC
@click.pass_context
def speed_cmd(ctx: click.Context, **kw: Any) -> None:
    """Whole `restoregraph restore` processes: wall, CPU, peak RSS, where the time goes
    (start-up, perception, planning, tools, reflection, checkpoint I/O), tool calls per true
    degradation and each tool's seconds per megapixel."""
    from restoregraph.core.errors import InputError
    from restoregraph.lab.bench.speed import (
        SpeedConfig,
        parse_size,
        run_speed_bench,
        speed_markdown,
    )

    def sizes(text: str, flag: str) -> list[tuple[int, int]]:
        try:
            return [parse_size(t) for t in text.split(",") if t.strip()]
        except InputError as exc:
            raise click.BadParameter(str(exc), param_hint=flag) from None

    planners = [p.strip() for p in kw["planners"].split(",") if p.strip()]
    cfg = SpeedConfig(
        sizes=sizes(kw["sizes"], "--sizes"),
        large_sizes=sizes(kw["large_sizes"], "--large-sizes"),
        planners=planners,
        default_planner=kw["default_planner"],
        repeats=max(1, kw["repeats"]),
        mixture=kw["mixture"],
        seed=kw["seed"],
        max_steps=kw["max_steps"],
        timeout_s=kw["timeout_s"],
        work=kw["work"],
    )
    if kw["quick"]:
        cfg.sizes, cfg.large_sizes = sizes(QUICK_SIZES, "--sizes"), []
        cfg.planners, cfg.repeats = [cfg.default_planner], 1
    if not cfg.planners:
        raise click.BadParameter("at least one planner", param_hint="--planners")
    clock = Clock()
    result = run_speed_bench(cfg, say=lambda text: click.echo(text, err=True))
    title = "Speed: whole restore processes, where the time goes, peak memory"
    finish_section(ctx, SECTION, title, speed_markdown(result), clock)
