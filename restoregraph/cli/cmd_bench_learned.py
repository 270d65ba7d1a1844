"""``restoregraph bench learned``: learned tools vs the input and the best classical tool."""

from __future__ import annotations

from typing import Any

import click

from restoregraph.cli.cmd_bench import DATA, DOC, Clock, finish_section


@click.command("learned")
@DATA
@click.option("--sets", default="CBSD68,Kodak24", show_default=True, help="Test sets.")
@click.option("--n", "n", type=int, default=4, show_default=True, help="First N images per set.")
@click.option("--crop", type=int, default=256, show_default=True, help="Centre crop side (px).")
@click.option(
    "--levels", default="2", show_default=True, help="Levels for the non-noise, non-JPEG tasks."
)
@click.option("--tasks", default=None, help="Only these tasks (comma-separated; default all).")
@click.option(
    "--timing-size",
    type=int,
    default=512,
    show_default=True,
    help="Side of the timing image (0: no timing).",
)
@DOC
@click.pass_context
def learned_cmd(ctx: click.Context, **kw: Any) -> None:
    """Each learned tool on its own degradation vs the input and the best classical tool."""
    import torch

    from restoregraph.lab.bench.learned import LearnedConfig, learned_markdown, run_learned_bench
    from restoregraph.lab.common import data_dir, parse_levels, parse_list

    torch.set_num_threads(1)  # a shared machine: one thread, like the training runs
    clock = Clock()
    cfg = LearnedConfig(
        data=data_dir(kw["data"]),
        sets=parse_list(kw["sets"], "--sets"),
        n=kw["n"],
        crop=kw["crop"],
        levels=parse_levels(kw["levels"]),
        tasks=parse_list(kw["tasks"], "--tasks") if kw["tasks"] else None,
        timing_size=kw["timing_size"],
    )
    result = run_learned_bench(cfg)
    body = learned_markdown(result)
    finish_section(ctx, "learned", "Learned tools vs classical, per task and severity", body, clock)
