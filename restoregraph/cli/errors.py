"""Turn every failure into a one-line message and a documented exit code, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from restoregraph.core.errors import RestoreGraphError


class Interrupted(RestoreGraphError):
    """Ctrl-C during a command; the message says how to go on (which run, which command)."""

    exit_code = 130


def one_line(text: object) -> str:
    """``text`` on one line: a newline in a file name must not split the error message."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


def run_cli(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    debug = bool(os.environ.get("RESTOREGRAPH_DEBUG"))
    try:
        rc = fn(*args, standalone_mode=False, **kwargs)
        return rc if isinstance(rc, int) else 0
    except RestoreGraphError as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        # (restore, resume and undo name their run: Interrupted above)
        print(
            "error: interrupted (a run in progress stays checkpointed: `restoregraph runs` "
            "lists the runs, `restoregraph resume RUN_ID` continues one)",
            file=sys.stderr,
        )
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        first = exc.format_message().strip().splitlines()
        print(f"error: {one_line(first[0] if first else exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory (try a smaller image or --max-pixels)", file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: still one line
        if debug:
            raise
        msg = one_line(str(exc).splitlines()[0]) if str(exc) else ""
        print(
            f"error: internal error: {type(exc).__name__}: {msg} "
            "(set RESTOREGRAPH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1
