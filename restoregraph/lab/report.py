"""Write a benchmark's markdown section into docs/BENCHMARKS.md (between its markers).

A section is the text between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``.
:func:`write_section` replaces it when the markers are there and appends it otherwise; text
outside the markers is never touched. The file is rewritten atomically (temporary file +
rename) under an exclusive lock on its folder, so two benchmarks finishing together cannot
lose each other's section.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import math
import os
import platform
import re
import tempfile
from pathlib import Path

from restoregraph.core.errors import InputError

DEFAULT_DOC = "docs/BENCHMARKS.md"
DOC_TITLE = "# Benchmarks\n"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


def markers(name: str) -> tuple[str, str]:
    if not NAME_RE.match(name):
        raise InputError(f"invalid benchmark section name {name!r}")
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` set to ``body`` (replaced in place, or appended)."""
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        return text[:i] + block + text[j + len(end) :]
    if i >= 0 or end in text:
        raise InputError(f"section {name!r}: unbalanced markers (fix the file by hand)")
    if not text:
        text = DOC_TITLE
    sep = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{sep}{block}\n"


def write_section(path: str | Path, name: str, body: str) -> Path:
    """Set section ``name`` of the markdown file ``path`` to ``body``; atomic; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    dir_fd = os.open(p.parent, os.O_RDONLY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        old = p.read_text(encoding="utf-8") if p.exists() else ""
        new = replace_section(old, name, body)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(new)
                fh.flush()
                os.fsync(fh.fileno())
            if p.exists():
                os.chmod(tmp, p.stat().st_mode & 0o777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        fcntl.flock(dir_fd, fcntl.LOCK_UN)
        os.close(dir_fd)
    return p


# -- the header every section starts with -----------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """Platform, CPU model, cores, GPU, torch and the load average now (call it at the start)."""
    import torch

    load = ""
    with contextlib.suppress(OSError):
        load = f"; load average {os.getloadavg()[0]:.1f} at start (shared machine)"
    gpu = "no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    return (
        f"{platform.platform()}; CPU {cpu_model()}, {os.cpu_count()} cores, {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){load}"
    )


def header(
    title: str, command: str, started: _dt.datetime, seconds: float, machine_text: str
) -> str:
    date = started.astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join(
        [
            f"## {title}",
            "",
            f"- command: `{command}`",
            f"- date: {date}; wall time {format_duration(seconds)}",
            f"- machine: {machine_text}",
        ]
    )


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


# -- markdown helpers -------------------------------------------------------------------------


def fmt(value: float, digits: int = 2, bold: bool = False, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return f"**{text}**" if bold else text


def fmt_seconds(value: float) -> str:
    """Seconds with 3 significant digits (``0.00123``, ``0.456``, ``12.3``)."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
