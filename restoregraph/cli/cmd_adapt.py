"""``restoregraph adapt --add-tool ID``: extend the search data for a new tool and fine-tune the
embedded planner from its current weights (``restoregraph/lab/training/adapt.py``); reports the time."""

from __future__ import annotations

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
@click.option(
    "--doc",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the timings as the 'adapt' section of this markdown file "
    "(e.g. docs/BENCHMARKS.md).",
)
@click.pass_context
def adapt_cmd(
    ctx: click.Context,
    tool: str,
    data: Path,
    weights: Path | None,
    out: Path | None,
    steps: int,
    new_samples: int,
    no_train: bool,
    overwrite: bool,
    doc: Path | None,
) -> None:
    """After `tools add`: re-run the pipelines that contain the new tool, then fine-tune."""
    import datetime as _dt
    import time

    from restoregraph.lab.report import machine
    from restoregraph.lab.training.adapt import adapt

    started, t0, where = _dt.datetime.now(_dt.UTC), time.perf_counter(), machine()
    from restoregraph.cli.cmd_bench import command_line

    command = command_line(ctx)
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
        command=command,
    )
    click.echo(
        f"data: {s.extended} of {s.samples} samples extended, {s.new_samples} new, "
        f"{s.new_pipelines} new pipelines, {s.tool_calls} tool calls in {s.data_seconds:.1f} s",
        err=True,
    )
    if s.skipped_pipelines:
        click.echo(
            f"left out {s.skipped_pipelines} pipelines naming tools not installed here: "
            + ", ".join(s.missing),
            err=True,
        )
    if s.weights:
        click.echo(
            f"planner: fine-tuned {steps} steps in {s.train_seconds:.1f} s -> {s.weights} "
            f"(use it with --planner embedded -P weights={s.weights})",
            err=True,
        )
        click.echo(f"held-out: {eval_line(s)}", err=True)
    click.echo(f"adapt wall time: {s.total_seconds / 60:.1f} min", err=True)
    if doc is not None:
        from restoregraph.lab.report import header, write_section

        body = header(
            f"Adapt: adding {tool} to the search data and the embedded planner",
            command,
            started,
            time.perf_counter() - t0,
            where,
        )
        body += "\n\n" + adapt_markdown(s, steps)
        click.echo(f"wrote section 'adapt' of {write_section(doc, 'adapt', body)}", err=True)


def eval_line(s: object) -> str:
    from restoregraph.lab.training.adapt import AdaptSummary

    assert isinstance(s, AdaptSummary)
    b, a = s.eval_before, s.eval_after
    if not a:
        return "not evaluated"
    nan = float("nan")
    return (
        f"mean planned-pipeline percentile {b.get('mean_pct', nan):.1f} with the old weights "
        f"-> {a.get('mean_pct', nan):.1f} fine-tuned, on {a.get('samples', 0):.0f} held-out "
        f"samples (0 = best); the fine-tuned planner picks {s.tool} on "
        f"{100 * a.get('uses_new_tool', nan):.0f}% of those needing {s.task}"
    )


def adapt_markdown(s: object, steps: int) -> str:
    from restoregraph.core.util import md_table
    from restoregraph.lab.training.adapt import AdaptSummary

    assert isinstance(s, AdaptSummary)
    rows = [
        [
            "search data",
            f"{s.data_seconds / 60:.1f} min",
            f"{s.extended} of {s.samples} samples extended, {s.new_samples} new samples, "
            f"{s.new_pipelines} new pipelines, {s.tool_calls} tool calls"
            + (
                f"; {s.skipped_pipelines} left out (they name {', '.join(s.missing)}, "
                "not installed here)"
                if s.skipped_pipelines
                else ""
            ),
        ],
        [
            "embedded planner",
            f"{s.train_seconds / 60:.1f} min",
            f"{steps} fine-tuning steps from the current weights -> `{s.weights}`"
            if s.weights
            else "not trained (--no-train)",
        ],
        [
            "**total**",
            f"**{s.total_seconds / 60:.1f} min**",
            "RestoreAgent: 30 min for a desnowing tool (their GPU setup); this: one CPU core",
        ],
    ]
    return (
        f"A new tool `{s.tool}` (task {s.task}): only the pipelines that contain it are run "
        "(one prefix tree per sample), every pipeline is re-scored and re-ranked, then the "
        "embedded planner is fine-tuned from its current weights "
        "(`restoregraph/lab/training/adapt.py`).\n\n"
        + md_table(["part", "wall time", "what"], rows, "lrl")
        + f"\n\nHeld-out check: {eval_line(s)}."
    )
