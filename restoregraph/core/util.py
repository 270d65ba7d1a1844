"""Small helpers shared by the runtime and the lab: natural sort, progress bars, markdown
tables, atomic file writes. Imports nothing of the project."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BAND_BYTES = 8 << 20  # whole-image conversions go a band of rows of about this size at a time


def band_rows(image: Any) -> int:
    """Rows per band for a row-by-row conversion of the array ``image`` (about ``BAND_BYTES``
    of float32 per band), so a conversion of a 48 MP photo makes no whole-image temporaries."""
    row = image[0].size * 4 if image.ndim and image.shape[0] else 1
    return max(1, BAND_BYTES // max(1, row))


def natural_key(name: str) -> list[Any]:
    """Sort ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def progress(items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
    """A tqdm bar on stderr (refreshes at most every 2 s when stderr is not a terminal)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    yield from tqdm(
        items,
        total=total,
        desc=desc,
        file=sys.stderr,
        mininterval=0.2 if interactive else 5.0,
        ncols=100,
        leave=True,
    )


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` is one letter per column (l or r), default l then r..."""
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to a temporary file beside ``path``, then rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["atomic_write", "md_table", "natural_key", "progress"]
