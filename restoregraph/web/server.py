"""Start the web app: privacy settings first, then gradio, bound to localhost by default."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError

# System fonts only: the default gradio theme would fetch Google Fonts from the internet.
SANS = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def prepare_environment(home: Path) -> None:
    """Settings gradio reads at import time: no analytics or telemetry, cache under ``home``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(home / "web-cache"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    *,
    home: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 20.0,
    settings: dict[str, Any] | None = None,
    block: bool = True,
) -> Any:
    """Build the workspace and the page, and serve them (blocking unless ``block=False``)."""
    from restoregraph.core.settings import home_dir
    from restoregraph.runner import Runner

    if max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    home = Path(home) if home else home_dir()
    prepare_environment(home)
    runner = Runner(home)
    import gradio as gr

    from restoregraph.web.app import CSS, build_app
    from restoregraph.web.session import Workspace

    limit = int(max_upload_mb * 1024 * 1024)
    workspace = Workspace(runner, settings, max_upload_bytes=limit)
    demo = build_app(workspace)
    demo.queue(default_concurrency_limit=1)
    theme = gr.themes.Default(font=SANS, font_mono=MONO)
    try:
        return demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            show_error=False,
            max_file_size=limit,
            allowed_paths=[str(home / "runs")],
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
