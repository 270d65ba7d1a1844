"""Start the web app: privacy settings first, then gradio, bound to localhost by default,
behind ``restoregraph.web.guard.WebGuard`` (Host check, login, sessions, upload quota)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError
from restoregraph.web.guard import Auth, allowed_hosts, is_loopback

__all__ = ["MONO", "SANS", "check_exposure", "is_loopback", "prepare_environment", "serve"]

# System fonts only: the default gradio theme would fetch Google Fonts from the internet.
SANS = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def prepare_environment(home: Path) -> None:
    """Settings gradio reads at import time: no analytics or telemetry, cache under ``home``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(home / "web-cache"))


def check_exposure(host: str, auth: str | None) -> Auth | None:
    """The parsed ``--auth``; a non-loopback ``--host`` without it is refused."""
    if auth is None or not auth.strip():
        if not is_loopback(host):
            raise InputError(
                f"--host {host} would let anyone who can reach this address upload images and "
                "run restorations: add --auth TOKEN or --auth USER:PASSWORD (or the "
                "RESTOREGRAPH_WEB_AUTH environment variable), or keep the default --host 127.0.0.1"
            )
        return None
    return Auth.parse(auth)


def _sweep_forever(workspace: Any, every_s: float) -> None:
    """Delete unused uploads in the background (also done before each upload)."""
    stop = threading.Event()
    while not stop.wait(every_s):
        try:
            workspace.sweep()
        except Exception:  # never kill the thread; the next round tries again
            import logging

            logging.getLogger("restoregraph.web").exception("cleaning unused uploads failed")


def serve(
    *,
    home: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 20.0,
    settings: dict[str, Any] | None = None,
    block: bool = True,
    allowed_host: Sequence[str] = (),
    auth: str | None = None,
    upload_quota_mb: float = 200.0,
    unused_upload_minutes: float = 60.0,
) -> Any:
    """Build the workspace and the page, and serve them (blocking unless ``block=False``)."""
    from restoregraph.core.settings import home_dir
    from restoregraph.runner import Runner

    if max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    if upload_quota_mb <= 0:
        raise InputError(f"--upload-quota-mb must be positive, got {upload_quota_mb}")
    if unused_upload_minutes <= 0:
        raise InputError(f"--unused-upload-minutes must be positive, got {unused_upload_minutes}")
    login = check_exposure(host, auth)
    hosts = allowed_hosts(host, allowed_host)
    home = Path(home) if home else home_dir()
    prepare_environment(home)
    runner = Runner(home)
    import gradio as gr
    from gradio.utils import get_upload_folder
    from starlette.middleware import Middleware

    from restoregraph.web.app import CSS, build_app
    from restoregraph.web.guard import WebGuard
    from restoregraph.web.session import Workspace

    limit = int(max_upload_mb * 1024 * 1024)
    workspace = Workspace(
        runner,
        settings,
        max_upload_bytes=limit,
        upload_quota_bytes=int(upload_quota_mb * 1024 * 1024),
        unused_ttl_s=unused_upload_minutes * 60,
    )
    demo = build_app(workspace)
    demo.queue(default_concurrency_limit=1)
    theme = gr.themes.Default(font=SANS, font_mono=MONO)
    guard = Middleware(
        WebGuard,  # type: ignore[arg-type]
        hosts=hosts,
        files=workspace,
        auth=login,
        port=port,
        upload_dir=Path(get_upload_folder()),
    )
    every_s = min(60.0, max(0.5, unused_upload_minutes * 60 / 4))
    threading.Thread(
        target=_sweep_forever, args=(workspace, every_s), name="restoregraph-web-sweep", daemon=True
    ).start()
    try:
        # No allowed_paths: gradio serves only its own cache and upload folder; a run's files
        # are served by the guard, to the browser session that made the run.
        return demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            show_error=False,
            max_file_size=limit,
            app_kwargs={"middleware": [guard]},
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
            footer_links=[],
            theme=theme,
            css=CSS,
            prevent_thread_lock=not block,
        )
    except OSError as exc:
        why = exc.strerror or "the port is in use or the address is not available"
        raise InputError(
            f"cannot listen on {host}:{port}: {why}; choose another --port or --host"
        ) from None
