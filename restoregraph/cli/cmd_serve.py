"""``restoregraph serve``: the web app on localhost."""

from __future__ import annotations

from pathlib import Path

import click

from restoregraph.cli.options import HOME, OBJECTIVE, PLANNER, run_option


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@HOME
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.001),
    default=20.0,
    show_default=True,
    help="Refuse uploads larger than this.",
)
@PLANNER
@OBJECTIVE
@run_option("max_steps", help="Step budget.")
@run_option("approve")
def serve_cmd(
    host: str,
    port: int,
    home: Path | None,
    max_upload_mb: float,
    planner: str,
    objective: str,
    max_steps: int,
    approve: str,
) -> None:
    """Serve the web app: upload a photo, chat, watch the plan run, compare, undo, download."""
    from restoregraph.core.errors import InputError
    from restoregraph.planners import PLANNERS
    from restoregraph.web.server import is_loopback, serve

    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; choose from {', '.join(sorted(PLANNERS))}")
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: anyone who can reach this address can upload "
            "images and run restorations (there is no login)",
            err=True,
        )
    click.echo(
        f"starting the RestoreGraph web app on http://{host}:{port} (Ctrl+C stops it)", err=True
    )
    serve(
        home=home,
        host=host,
        port=port,
        max_upload_mb=max_upload_mb,
        settings={
            "planner": planner,
            "objective": objective,
            "max_steps": max_steps,
            "approve": approve,  # an approve/edit panel shows each plan that waits
        },
    )
