"""``restoregraph tools`` and ``restoregraph tools list`` (``tools add`` / ``tools remove``:
``cmd_tools_train.py``)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from restoregraph.cli.options import AS_JSON

out_console = Console()


@click.group("tools")
def tools() -> None:
    """The restoration toolbox."""


@click.command("list")
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
