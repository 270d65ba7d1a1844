"""Where a run's time goes: wall and CPU seconds per phase, cheap enough to be always on.

The nodes wrap their parts in ``phase(name)`` (``perception``, ``planning``, ``tools``,
``reflection``, ``checkpoint_io``, ``output``, ``startup``); phases nest, and each phase keeps
its *exclusive* time (a store read inside ``reflection`` counts as ``checkpoint_io`` only).
``tool_run`` records every tool call (seconds, CPU seconds, input megapixels).

When the environment variable ``RESTOREGRAPH_TIMINGS`` names a file, the process writes its
totals there as JSON when it exits (``restoregraph bench speed`` reads it from the CLI
processes it runs). Core module: imports nothing of the project, nothing heavy.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ENV = "RESTOREGRAPH_TIMINGS"
PHASES = ("startup", "perception", "planning", "tools", "reflection", "checkpoint_io", "output")

_lock = threading.Lock()
_wall: dict[str, float] = {}
_cpu: dict[str, float] = {}
_tools: list[dict[str, Any]] = []
_first: list[float] = []  # time.time() when the first phase began
_local = threading.local()


def _stack() -> list[list[float]]:
    stack: list[list[float]] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the block's wall and process-CPU seconds under ``name`` (minus nested phases)."""
    if not _first:
        with _lock:
            if not _first:
                _first.append(time.time())
    stack = _stack()
    entry = [0.0, 0.0]  # wall and CPU seconds of the phases nested in this one
    stack.append(entry)
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        dw, dc = time.perf_counter() - w0, time.process_time() - c0
        stack.pop()
        if stack:
            stack[-1][0] += dw
            stack[-1][1] += dc
        with _lock:
            _wall[name] = _wall.get(name, 0.0) + dw - entry[0]
            _cpu[name] = _cpu.get(name, 0.0) + dc - entry[1]


def timed(name: str) -> Callable[[F], F]:
    """Decorator: every call of the function counts under phase ``name``."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with phase(name):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def tool_run(tool: str, seconds: float, cpu: float, megapixels: float, ok: bool) -> None:
    """Record one tool call (its own time, without reading or storing images)."""
    with _lock:
        _tools.append(
            {"tool": tool, "seconds": seconds, "cpu": cpu, "megapixels": megapixels, "ok": ok}
        )


def snapshot() -> dict[str, Any]:
    """The totals so far: ``wall`` / ``cpu`` per phase, ``tools`` (one row per call) and
    ``first_phase`` (epoch seconds when the first phase began, 0 if none did)."""
    with _lock:
        return {
            "wall": dict(_wall),
            "cpu": dict(_cpu),
            "tools": [dict(t) for t in _tools],
            "first_phase": _first[0] if _first else 0.0,
        }


def reset() -> None:
    with _lock:
        _wall.clear()
        _cpu.clear()
        _tools.clear()
        _first.clear()


def _dump() -> None:  # pragma: no cover - runs at interpreter exit
    path = os.environ.get(ENV)
    if not path:
        return
    data = snapshot()
    data["pid"] = os.getpid()
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    except OSError:
        pass


if os.environ.get(ENV):
    atexit.register(_dump)
