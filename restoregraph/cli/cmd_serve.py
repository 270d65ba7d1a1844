"""``restoregraph serve``: the web app on localhost."""

from __future__ import annotations

from pathlib import Path

import click

from restoregraph.cli.options import HOME, OBJECTIVE, PLANNER, run_option


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; a non-loopback address needs --auth.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@HOME
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.001),
    default=20.0,
    show_default=True,
    help="Refuse uploads larger than this.",
)
@click.option(
    "--upload-quota-mb",
    type=click.FloatRange(min=0.001),
    default=200.0,
    show_default=True,
    help="Uploads one browser session may have on the server at once.",
)
@click.option(
    "--unused-upload-minutes",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Delete an upload no message was sent about after this long.",
)
@click.option(
    "--allowed-host",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this Host name (repeatable). Loopback names and --host "
    "always work; any other Host gets 400 (against DNS rebinding).",
)
@click.option(
    "--auth",
    envvar="RESTOREGRAPH_WEB_AUTH",
    metavar="TOKEN|USER:PASSWORD",
    help="Require a login: a token (open the page once with ?token=TOKEN) or HTTP Basic "
    "USER:PASSWORD. Also read from $RESTOREGRAPH_WEB_AUTH.",
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
    upload_quota_mb: float,
    unused_upload_minutes: float,
    allowed_host: tuple[str, ...],
    auth: str | None,
    planner: str,
    objective: str,
    max_steps: int,
    approve: str,
) -> None:
    """Serve the web app: upload a photo, chat, watch the plan run, compare, undo, download."""
    from restoregraph.core.errors import InputError
    from restoregraph.planners import PLANNERS
    from restoregraph.web.guard import allowed_hosts
    from restoregraph.web.server import check_exposure, serve

    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; choose from {', '.join(sorted(PLANNERS))}")
    login = check_exposure(host, auth)  # before anything starts: a clear error, exit 2
    hosts = allowed_hosts(host, allowed_host)
    if login is not None:
        how = "?token=TOKEN" if login.is_token else f"the user {login.user!r} and its password"
        click.echo(f"login required: open the page with {how}", err=True)
    click.echo(f"answering requests for Host: {', '.join(hosts)}", err=True)
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
        allowed_host=allowed_host,
        auth=auth,
        upload_quota_mb=upload_quota_mb,
        unused_upload_minutes=unused_upload_minutes,
    )
