"""``restoregraph train-tool``, ``restoregraph tools add`` and ``restoregraph tools remove``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from restoregraph.core.errors import InputError


@click.command("train-tool")
@click.argument("task")
@click.option("--variant", default=None, help="Which model of the task (e.g. low, mid, high).")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=Path("../shared/data/train"),
    show_default=True,
    help="Folder holding CBSD432/ and ImageNetSample/.",
)
@click.option(
    "--out-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the weights and MANIFEST.json go (default: the package's weights/ folder).",
)
@click.option("--steps", type=click.IntRange(1), default=None, help="Default: the variant's.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--crop", type=click.IntRange(16), default=None, help="Training patch side.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None)
@click.option("--resume", is_flag=True, help="Continue from --checkpoint if it exists.")
@click.option(
    "--stop-after",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many steps (checkpoint only); continue later with --resume.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda[:N].",
)
def train_tool_cmd(
    task: str,
    variant: str | None,
    data: Path,
    out_dir: Path | None,
    steps: int | None,
    seed: int,
    batch_size: int | None,
    crop: int | None,
    threads: int,
    checkpoint: Path | None,
    resume: bool,
    stop_after: int | None,
    device: str,
) -> None:
    """Train a small learned tool for TASK on synthetic degradations (CPU or GPU, resumable)."""
    from restoregraph.tools.learned.catalog import find_variant

    try:
        v = find_variant(task, variant)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not data.is_dir():
        raise InputError(f"training data folder not found: {data} (pass --data)")
    from restoregraph.lab.training.tools import WEIGHTS_DIR, train

    argv = sys.argv[1:] if sys.argv[1:2] == ["train-tool"] else ["train-tool", task]
    if steps is None:
        argv = [*argv, "--steps", str(v.steps)]
    command = "restoregraph " + " ".join(shlex.quote(a) for a in argv)
    try:
        entry = train(
            v,
            data,
            out_dir=out_dir or WEIGHTS_DIR,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            crop=crop,
            threads=threads,
            checkpoint=checkpoint,
            resume=resume,
            stop_after=stop_after,
            command=command,
            device=device,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None
    if "stopped_at" in entry:
        click.echo(f"stopped {entry['id']} at step {entry['stopped_at']}: {entry['checkpoint']}")
        return
    click.echo(f"trained {entry['id']}: {entry['file']} ({entry['bytes']:,} bytes)")


@click.command("add")
@click.option("--task", required=True, help="The task the model serves (denoise, derain ...).")
@click.option(
    "--weights",
    required=True,
    type=click.Path(path_type=Path),
    help="Weights file (.pth / .safetensors; tensors only are read).",
)
@click.option("--id", "tool_id", default=None, help="Tool id (default <task>.<architecture>).")
@click.option("--description", default=None, help="One line shown by `tools list`.")
@click.option("--json", "as_json", is_flag=True, help="Print the recorded entry as JSON.")
def tools_add_cmd(
    task: str, weights: Path, tool_id: str | None, description: str | None, as_json: bool
) -> None:
    """Register your own weights file as a tool (spandrel detects the architecture)."""
    from restoregraph.tools import reset_default_registry
    from restoregraph.tools.user import add_user_tool, config_path

    entry = add_user_tool(task, weights, tool_id, description=description)
    reset_default_registry()
    if as_json:
        click.echo(json.dumps(entry, indent=2))
        return
    click.echo(
        f"added {entry['id']}: {entry['architecture']} x{entry['scale']}, "
        f"{entry['params']:,} parameters (recorded in {config_path()})"
    )


@click.command("remove")
@click.argument("tool_id")
def tools_remove_cmd(tool_id: str) -> None:
    """Forget a tool added with `tools add` (and delete its copied weights)."""
    from restoregraph.tools import reset_default_registry
    from restoregraph.tools.user import remove_user_tool

    entry = remove_user_tool(tool_id)
    reset_default_registry()
    click.echo(f"removed {entry['id']}")
