"""``restoregraph data export`` and ``restoregraph data experience``: what is made FROM search data.

``data build`` (the search itself) and the ``data`` group live in ``cmd_data.py``;
``restoregraph.cli.main`` puts these two commands in that group.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from restoregraph.cli.options import OVERWRITE


def _command_line() -> str:
    from restoregraph.cli.cmd_bench import command_line

    ctx = click.get_current_context()
    text = command_line(ctx)
    args = [str(v) for k, v in ctx.params.items() if k == "data"]
    return text.replace(ctx.command_path, shlex.join([*ctx.command_path.split(), *args]), 1)


@click.command("export")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Output folder."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["trl", "llava"]),
    default="trl",
    show_default=True,
    help="trl: OUT/train.jsonl (SFTTrainer rows); llava: OUT/llava.json (LLaVA/xtuner).",
)
@click.option(
    "--text-only",
    is_flag=True,
    help="No image: the degradation types and levels are written into the prompt.",
)
@OVERWRITE
def export_cmd(data: Path, out: Path, fmt: str, text_only: bool, overwrite: bool) -> None:
    """Instruction data (five scenarios: fresh, partial, rollback, avoid, stop) from DATA."""
    from restoregraph.lab.search.export import export

    res = export(data, out, fmt, text_only, overwrite, command=_command_line(), progress=True)
    counts = ", ".join(f"{k} {v}" for k, v in res.per_scenario.items())
    click.echo(f"wrote {res.path}: {res.rows} rows from {res.samples} samples ({counts})", err=True)
    if res.skipped:
        click.echo(f"skipped: {sum(res.skipped.values())} (see export.json)", err=True)


@click.command("experience")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    default=Path("docs/experience.md"),
    show_default=True,
    help="The readable document.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The statistics planners read (default: restoregraph/prompts/experience.json).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
def experience_cmd(data: Path, out: Path, json_path: Path | None, overwrite: bool) -> None:
    """Distil order and model statistics from DATA into a document and a JSON (AgenticIR)."""
    from restoregraph.lab.training.experience import distil_to_files
    from restoregraph.planners.experience import DEFAULT_PATH

    exp = distil_to_files(
        data, out, json_path or DEFAULT_PATH, overwrite=overwrite, command=_command_line()
    )
    click.echo(
        f"wrote {out} and {json_path or DEFAULT_PATH} from {exp['samples']} samples", err=True
    )
