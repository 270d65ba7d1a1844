"""``restoregraph restore`` and what follows a run: ``resume``, ``history``, ``undo``, ``runs``,
``gc``."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from restoregraph.cli.errors import Interrupted
from restoregraph.cli.options import (
    AS_JSON,
    HOME,
    OBJECTIVE,
    OUTPUT,
    OVERWRITE,
    PLANNER,
    run_option,
)
from restoregraph.core.errors import InputError

console = Console(stderr=True)
out_console = Console()


class ProgressDisplay:
    """Drive a rich progress bar (and a log of decisions) from the graph's custom events."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("perception", total=None)
        self.done = 0
        self.step = ""

    def __enter__(self) -> ProgressDisplay:
        return self  # the bar starts with the first event, after the run has validated its input

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.progress.live.is_started:
            self.progress.start()
        kind = ev.get("event")
        log = self.progress.console.print
        if kind == "perception":
            present = ", ".join(f"{k}:{v}" for k, v in ev["present"].items()) or "none"
            log(f"[bold]perception[/bold] {present}")
            self.progress.update(self.task, description="planning")
        elif kind == "plan":
            note = f" [yellow]({ev['note']})[/yellow]" if ev.get("note") else ""
            log(f"[bold]plan[/bold] {ev['plan']}{note}")
            remaining = int(ev.get("steps", 0))
            self.progress.update(self.task, total=self.done + remaining)
        elif kind == "step_start":
            self.step = f"step {ev['index']}: {ev['tool']}"
            self.progress.update(self.task, description=self.step)
        elif kind == "tile":  # a long tiled tool: tiles done and the time left
            eta = f", about {ev['eta']:.0f} s left" if ev["done"] < ev["total"] else ""
            text = f"{self.step} (tile {ev['done']}/{ev['total']}{eta})"
            self.progress.update(self.task, description=text)
        elif kind == "reflection":
            colour = {"accepted": "green", "rolled_back": "yellow"}.get(ev["status"], "red")
            log(
                f"  step {ev['index']} [cyan]{ev['tool']}[/cyan]: "
                f"[{colour}]{ev['status']}[/{colour}] — {ev['reason']}"
            )
            self.done += 1
            self.progress.update(self.task, completed=self.done, description="reflection")


def parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs; numbers and true/false are converted."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"planner option {item!r} is not KEY=VALUE")
        v: Any = value
        if value.lower() in ("true", "false"):
            v = value.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    v = cast(value)
                    break
                except ValueError:
                    pass
        out[key.strip()] = v
    return out


def _make_runner(home: Path | None) -> Any:
    from restoregraph.runner import Runner

    return Runner(home)


@contextmanager
def resumable(runner: Any, run_id: str, home: Path | None) -> Iterator[None]:
    """Turn Ctrl-C while run ``run_id`` runs (or waits for an approval) into ``Interrupted``,
    whose message names the run and the command that continues it."""
    try:
        yield
    except (KeyboardInterrupt, click.exceptions.Abort):
        try:
            started = (runner.run_dir(run_id) / "run.json").exists()
        except InputError:  # an invalid --run-id: nothing was written
            started = False
        if not started:
            raise Interrupted(
                f"interrupted before run {run_id} started; nothing was saved"
            ) from None
        where = f" --home {shlex.quote(str(home))}" if home is not None else ""
        raise Interrupted(
            f"interrupted: run {run_id} stopped at its last checkpoint; continue it with "
            f"`restoregraph resume {run_id}{where}`"
        ) from None


def _approvals(runner: Any, result: Any, home: Path | None = None) -> Any:
    """Ask for the plans a run with --approve waits on (restoregraph.cli.approval)."""
    if result.approval is None:
        return result
    from restoregraph.cli.approval import until_approved

    with resumable(runner, result.run_id, home):
        return until_approved(runner, result, console, ProgressDisplay)


def _summary(result: Any) -> None:
    state = result.state
    console.print(f"[bold]done[/bold] in {result.seconds:.1f} s — {state.get('stop_reason', '')}")
    # paths on one line each, whatever the width (copied from a terminal or a log)
    if result.output:
        console.print(f"output: {result.output}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"report: {result.report}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"run id: {result.run_id}", soft_wrap=True, highlight=False, markup=False)


@click.command("restore")
@click.argument("image", type=click.Path(path_type=Path))
@OUTPUT
@PLANNER
@run_option("mode")
@run_option("approve")
@OBJECTIVE
@run_option("max_steps")
@run_option("max_tries")
@run_option("step_critic")
@run_option("seed")
@run_option("toolbox")
@click.option("--run-id", default=None, help="Name the run (default: time + file name).")
@click.option("--instruction", default="", help="What you want, in words.")
@run_option("reference")
@run_option("planner_options")
@OVERWRITE
@HOME
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Folder: images restored at once, one process each.",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="ADDRESS",
    help="Folder: spread the images over a Ray cluster (ADDRESS, 'auto' or 'local').",
)
@click.option(
    "--batch-id",
    default=None,
    help="Folder: name the batch (default: derived from IMAGE and -o, so rerunning resumes).",
)
def restore(
    image: Path,
    output: Path,
    planner: str,
    mode: str,
    approve: str,
    objective: str,
    max_steps: int,
    max_tries: int,
    step_critic: str,
    seed: int,
    toolbox: str | None,
    run_id: str | None,
    instruction: str,
    reference: str,
    planner_option: tuple[str, ...],
    overwrite: bool,
    home: Path | None,
    workers: int,
    ray_address: str | None,
    batch_id: str | None,
) -> None:
    """Restore IMAGE with the agent; writes the result and an HTML report.

    IMAGE may be a folder: every image in it is restored into the folder -o (see docs/batch.md);
    the same command run again resumes an interrupted batch.

    --approve first|every shows the plan and asks: accept, edit or reject (docs/approval.md);
    without a terminal the answers are read from standard input, one line each.
    """
    from restoregraph.core.settings import RunContext
    from restoregraph.planners import PLANNERS

    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; choose from {', '.join(sorted(PLANNERS))}")
    if not image.is_dir() and (workers > 1 or ray_address or batch_id):
        raise InputError("--workers, --ray and --batch-id apply to a folder of images")
    if image.is_dir() and run_id:
        raise InputError("--run-id names one run; for a folder use --batch-id")
    if image.is_dir() and approve != "off":
        raise InputError("--approve asks about one image's plan; it does not apply to a folder")
    tool_ids = None
    if toolbox is not None:
        from restoregraph.tools import default_registry

        tool_ids = tuple(t.strip() for t in toolbox.split(",") if t.strip())
        if not tool_ids:
            raise InputError("--toolbox: give at least one tool id (restoregraph tools list)")
        default_registry().subset(tool_ids)  # an unknown id: one-line ToolError, nothing run
    ctx = RunContext(
        planner=planner,
        mode=mode,  # type: ignore[arg-type]  # click.Choice validated it
        approve=approve,  # type: ignore[arg-type]
        objective=objective,  # type: ignore[arg-type]
        max_steps=max_steps,
        max_tries=max_tries,
        step_critic=step_critic,  # type: ignore[arg-type]  # click.Choice validated it
        seed=seed,
        toolbox=tool_ids,
        reference=reference,
        planner_options=parse_options(planner_option),
    )
    if instruction.strip():  # words -> plan constraints (restoregraph.chat.router)
        from restoregraph.chat.session import route_instruction

        route = route_instruction(ctx, instruction)
        console.print(f"[dim]instruction routed: {route.describe()}[/dim]")
    if image.is_dir():
        from restoregraph.batch import restore_folder

        restore_folder(
            image,
            output,
            ctx,
            home=home,
            batch_id=batch_id,
            instruction=instruction,
            overwrite=overwrite,
            workers=workers,
            ray_address=ray_address,
            console=console,
            out_console=out_console,
        )
        return
    from restoregraph.runner import new_run_id

    runner = _make_runner(home)
    run_id = run_id or new_run_id(image)
    with resumable(runner, run_id, home), ProgressDisplay() as show:
        result = runner.start(
            image,
            output,
            ctx,
            run_id=run_id,
            instruction=instruction,
            overwrite=overwrite,
            on_event=show,
        )
    _summary(_approvals(runner, result, home))


@click.command("resume")
@click.argument("run")
@HOME
def resume(run: str, home: Path | None) -> None:
    """Continue an interrupted run from its last checkpoint."""
    runner = _make_runner(home)
    with resumable(runner, run, home), ProgressDisplay() as show:
        result = runner.resume(run, on_event=show)
    _summary(_approvals(runner, result, home))


HISTORY_LEGEND = (
    "severity: sum of perceived degradation levels, before→after (lower is better)",
    "quality: no-reference quality, before→after (higher is better); time: seconds",
)


@click.command("history")
@click.argument("run")
@HOME
@AS_JSON
@click.option("--paths", is_flag=True, help="Also list the image file of each step (one per line).")
def history(run: str, home: Path | None, as_json: bool, paths: bool) -> None:
    """List every step of RUN: tool, decision, severity and quality before→after, time.

    Fits 80 columns (a pipe, a log); --paths lists each step's image file, --json everything.
    """
    runner = _make_runner(home)
    state = runner.state(run)
    steps = state.get("history", [])
    if as_json:
        click.echo(
            json.dumps(
                {
                    "steps": steps,
                    "abandoned": state.get("abandoned", []),
                    "stop_reason": state.get("stop_reason", ""),
                },
                indent=2,
            )
        )
        return
    click.echo(f"run {run}: {state.get('stop_reason') or 'not finished'}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("tool", overflow="fold")
    table.add_column("decision", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("quality", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for h in steps:
        table.add_row(
            str(h["index"]),
            h["tool"],
            h["status"],
            f"{sum(h['severity_before'].values()):.2f}→{sum(h['severity_after'].values()):.2f}",
            f"{h['quality_before']:.2f}→{h['quality_after']:.2f}",
            f"{h['seconds']:.2f}",
        )
    if steps:
        with out_console.capture() as cap:
            out_console.print(table)
        click.echo("\n".join(line.rstrip() for line in cap.get().strip("\n").splitlines()))
        for line in HISTORY_LEGEND:
            click.echo(line)
    else:
        click.echo("no steps yet")
    if paths and steps:
        from restoregraph.store.images import ImageStore

        store = ImageStore(runner.store_dir_of(run, runner.meta(run)))
        for h in steps:
            ref = h.get("output")
            click.echo(f"step {h['index']} image: {store.path_for(ref['sha256']) if ref else '-'}")
    for a in state.get("abandoned", []):
        click.echo(f"abandoned branch: {a}")


@click.command("undo")
@click.argument("run")
@click.option(
    "--to",
    "to",
    type=int,
    required=True,
    help="Keep the accepted steps up to this one (0 = the input image).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the new result (default: <output stem>.undo-<STEP>.<ext> beside the "
    "run's output; the earlier output is never overwritten).",
)
@OVERWRITE
@HOME
def undo(run: str, to: int, output: Path | None, overwrite: bool, home: Path | None) -> None:
    """Go back to the image after step --to and replan from there (the old branch stays).

    The new result goes to a new file (-o, or <output stem>.undo-<STEP>.<ext> beside the run's
    output); an existing file is replaced only with --overwrite.
    """
    runner = _make_runner(home)
    with resumable(runner, run, home), ProgressDisplay() as show:
        result = runner.undo(run, to, on_event=show, output=output, overwrite=overwrite)
    _summary(result)


@click.command("runs")
@HOME
def runs_cmd(home: Path | None) -> None:
    """List runs."""
    for r in _make_runner(home).list_runs():
        click.echo(r)


@click.command("gc")
@HOME
def gc_cmd(home: Path | None) -> None:
    """Delete stored images that no checkpoint of any run references."""
    removed = _make_runner(home).collect_garbage()
    console.print(f"removed {removed} unreferenced image(s)")
