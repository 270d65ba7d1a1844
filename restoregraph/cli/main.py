"""``restoregraph``: degrade, restore, inspect and time-travel from the command line.

Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 3 output refused (would overwrite),
4 a tool/model/metric unavailable, 5 run failed, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from restoregraph.cli.options import HOME, OBJECTIVE, OVERWRITE, PLANNER
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="restoregraph")
def app() -> None:
    """Restore photos hit by several degradations at once."""


OUTPUT = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the result.",
)
MAX_PIXELS = click.option(
    "--max-pixels", type=int, default=None, help="Refuse larger images (default 50 MP)."
)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@app.command()
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


@app.group()
def tools() -> None:
    """The restoration toolbox."""


@tools.command("list")
@click.option("--task", default=None, help="Only this task.")
@AS_JSON
def tools_list(task: str | None, as_json: bool) -> None:
    """List every registered tool."""
    from restoregraph.tools import default_registry

    specs = [s for s in default_registry() if task is None or s.task == task]
    if as_json:
        rows = [
            {
                "id": s.id,
                "task": s.task,
                "kind": s.kind,
                "severity": list(s.severity),
                "cost": s.cost,
                "scale": s.scale,
                "description": s.description,
            }
            for s in specs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(specs)} tools over {len({s.task for s in specs})} tasks")
    for col in ("id", "task", "kind", "severity", "s/MP", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(
            s.id, s.task, s.kind, ",".join(map(str, s.severity)), f"{s.cost:g}", s.description
        )
    out_console.print(table)


@app.command()
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
            self.progress.update(self.task, description=f"step {ev['index']}: {ev['tool']}")
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


def _summary(result: Any) -> None:
    state = result.state
    console.print(f"[bold]done[/bold] in {result.seconds:.1f} s — {state.get('stop_reason', '')}")
    if result.output:
        console.print(f"output: {result.output}")
    console.print(f"report: {result.report}")
    console.print(f"run id: {result.run_id}")


@app.command()
@click.argument("image", type=click.Path(path_type=Path))
@OUTPUT
@PLANNER
@click.option(
    "--mode",
    type=click.Choice(["plan", "stepwise"]),
    default="plan",
    show_default=True,
    help="One plan executed in full, or replan after every step.",
)
@OBJECTIVE
@click.option(
    "--max-steps",
    type=click.IntRange(1, 100),
    default=8,
    show_default=True,
    help="Step budget (tool calls).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--toolbox",
    default=None,
    metavar="ID,ID,...",
    help="Only these tool ids (see `restoregraph tools list`; default: every tool).",
)
@click.option("--run-id", default=None, help="Name the run (default: time + file name).")
@click.option("--instruction", default="", help="What you want, in words.")
@click.option("--reference", default="", help="Clean reference (oracle planner only).")
@click.option(
    "-P",
    "--planner-option",
    "planner_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="Planner option, repeatable (e.g. -P base_url=http://127.0.0.1:8000/v1 "
    "-P model=planner for --planner openai).",
)
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
    objective: str,
    max_steps: int,
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
    """
    from restoregraph.core.settings import RunContext
    from restoregraph.planners import PLANNERS

    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; choose from {', '.join(sorted(PLANNERS))}")
    if not image.is_dir() and (workers > 1 or ray_address or batch_id):
        raise InputError("--workers, --ray and --batch-id apply to a folder of images")
    if image.is_dir() and run_id:
        raise InputError("--run-id names one run; for a folder use --batch-id")
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
        objective=objective,  # type: ignore[arg-type]
        max_steps=max_steps,
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
    runner = _make_runner(home)
    with ProgressDisplay() as show:
        result = runner.start(
            image,
            output,
            ctx,
            run_id=run_id,
            instruction=instruction,
            overwrite=overwrite,
            on_event=show,
        )
    _summary(result)


@app.command()
@click.argument("run")
@HOME
def resume(run: str, home: Path | None) -> None:
    """Continue an interrupted run from its last checkpoint."""
    runner = _make_runner(home)
    with ProgressDisplay() as show:
        result = runner.resume(run, on_event=show)
    _summary(result)


@app.command()
@click.argument("run")
@HOME
@AS_JSON
def history(run: str, home: Path | None, as_json: bool) -> None:
    """List every step of RUN: tool, decision, scores, image path."""
    state = _make_runner(home).state(run)
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
    table = Table(title=f"run {run}: {state.get('stop_reason', 'not finished')}")
    for col in ("#", "tool", "decision", "severity", "quality", "s"):
        table.add_column(col, no_wrap=True)
    table.add_column("image", overflow="fold")
    for h in steps:
        table.add_row(
            str(h["index"]),
            h["tool"],
            h["status"],
            f"{sum(h['severity_before'].values()):.2f}→{sum(h['severity_after'].values()):.2f}",
            f"{h['quality_before']:.2f}→{h['quality_after']:.2f}",
            f"{h['seconds']:.2f}",
            (h.get("output") or {}).get("uri", "-"),
        )
    out_console.print(table)
    for a in state.get("abandoned", []):
        out_console.print(f"abandoned branch: {a}")


@app.command()
@click.argument("run")
@click.option(
    "--to",
    "to",
    type=int,
    required=True,
    help="Keep the accepted steps up to this one (0 = the input image).",
)
@HOME
def undo(run: str, to: int, home: Path | None) -> None:
    """Go back to the image after step --to and replan from there (the old branch stays)."""
    runner = _make_runner(home)
    with ProgressDisplay() as show:
        result = runner.undo(run, to, on_event=show)
    _summary(result)


@app.command("runs")
@HOME
def runs_cmd(home: Path | None) -> None:
    """List runs."""
    for r in _make_runner(home).list_runs():
        click.echo(r)


@app.command("gc")
@HOME
def gc_cmd(home: Path | None) -> None:
    """Delete stored images that no checkpoint of any run references."""
    removed = _make_runner(home).collect_garbage()
    console.print(f"removed {removed} unreferenced image(s)")


def _add_bench() -> None:
    """``restoregraph bench tools|agent|perception`` (defined in restoregraph/lab/bench/cli.py)."""
    from restoregraph.lab.bench.cli import bench

    app.add_command(bench)


def _add_command_modules() -> None:
    """Commands defined in ``restoregraph/cli/cmd_*.py``: each module has ``register(app)``.

    One module per command family keeps this file small and lets features add commands
    without editing it.
    """
    import importlib
    import pkgutil

    import restoregraph.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"restoregraph.cli.{info.name}").register(app)


_add_bench()
_add_command_modules()


@app.command("graph")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("graph.png"),
    show_default=True,
    help="A .png or .mmd file.",
)
@OVERWRITE
def graph_cmd(output: Path, overwrite: bool) -> None:
    """Write the agent graph as Mermaid text (.mmd) or a PNG (drawn offline)."""
    from restoregraph.graph.draw import write_graph

    console.print(f"wrote {write_graph(output, overwrite=overwrite)}")


def main(argv: list[str] | None = None) -> None:
    from restoregraph.cli.errors import run_cli

    args = sys.argv[1:] if argv is None else argv
    sys.exit(run_cli(app.main, args=args, prog_name="restoregraph"))


if __name__ == "__main__":
    main()
