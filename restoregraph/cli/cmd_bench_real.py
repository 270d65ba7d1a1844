"""``restoregraph bench real``: the click command (a lazy subcommand of the ``bench`` group,
``restoregraph.cli.main.COMMANDS``). Heavy modules are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from restoregraph.cli.cmd_bench import DOC, command_line
from restoregraph.cli.options import run_option

SECTION = "real"


@click.command("real")
@click.option(
    "--data",
    default="../shared/data",
    show_default=True,
    help="Folder holding real/LABELS.json, real/ and test/ (relative to the current directory).",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Home of the agent's runs (default: a temporary folder, deleted at the end).",
)
@click.option(
    "--n-per-folder",
    type=int,
    default=None,
    help="At most N evenly spaced photos per folder (default: all), Rain100L aside.",
)
@click.option(
    "--rain100l-n",
    type=int,
    default=None,
    help="Rain100L pairs the agent runs on (evenly spaced; default: all 100; 0: none).",
)
@click.option(
    "--max-side",
    type=int,
    default=512,
    show_default=True,
    help="Downscale real/ photos whose long side exceeds this before running (0: never).",
)
@click.option("--planner", default="embedded", show_default=True, help="The agent's planner.")
@run_option(
    "planner_options",
    help="Planner option, repeatable (e.g. -P weights=candidate.pt: the embedded planner with "
    "other weights).",
)
@run_option("max_steps", help="Agent step budget.")
@click.option(
    "--requests/--no-requests",
    default=True,
    show_default=True,
    help="Also run the ten explicit requests ('make it brighter', 'remove the snow'...), each "
    "on one real photo of the folder it fits.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write every raw per-photo row as JSON here.",
)
@DOC
@click.option(
    "--sheets-dir",
    default="docs/real",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the contact sheets (input | output per folder) are written.",
)
@click.pass_context
def real_cmd(ctx: click.Context, **kw: Any) -> None:
    """Real photos: perception's detection and false alarms, the whole agent on real pairs
    (PSNR / SSIM) and on real photos (NIQE / BRISQUE / PIQE), with contact sheets; explicit
    requests on real photos; clipping, colour shift and border checks of every output."""
    from restoregraph.cli.cmd_run import parse_options
    from restoregraph.lab.bench.real import (
        DEFAULT_REQUESTS,
        real_markdown,
        run_real_bench,
        write_json,
    )
    from restoregraph.lab.report import machine, write_section

    machine_text = machine()  # at the start: the load average before the run
    result = run_real_bench(
        kw["data"],
        kw["home"],
        n_per_folder=kw["n_per_folder"],
        rain100l_n=kw["rain100l_n"],
        max_side=kw["max_side"],
        planner=kw["planner"],
        planner_options=parse_options(kw["planner_option"]),
        max_steps=kw["max_steps"],
        sheets_dir=kw["sheets_dir"],
        progress=True,
        requests=DEFAULT_REQUESTS if kw["requests"] else (),
    )
    if kw["json_path"] is not None:
        click.echo(f"wrote {write_json(result, kw['json_path'])}", err=True)
    doc: Path = kw["doc"]
    command = command_line(ctx)
    body = real_markdown(result, command, machine_text, doc=doc)
    path = write_section(doc, SECTION, body)
    click.echo(f"wrote section {SECTION!r} of {path} ({result.seconds:.0f} s)", err=True)
