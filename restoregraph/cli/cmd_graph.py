"""``restoregraph graph``: draw the agent graph."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from restoregraph.cli.options import OVERWRITE

console = Console(stderr=True)


@click.command("graph")
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
