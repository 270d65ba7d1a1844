"""Count what the reliability tests checked, and write the counts to a JSON artifact.

The reliability test modules call :func:`count` as they go (files tried, clean errors, crashes
survived, identical outputs after resume, ...) and import the session fixture
``reliability_counts`` (``from tests.reliability_counts import reliability_counts  # noqa``),
which writes the counts of this process when the session ends, to
``$RESTOREGRAPH_RELIABILITY_OUT/counts-<pid>.json`` (nothing is written when the variable is
unset). With ``pytest -n 2`` every worker writes its own file; ``restoregraph.lab.bench.reliability.merge``
adds them up.
``restoregraph bench reliability`` sets the variable, runs the tests and reports the merged
counts in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "RESTOREGRAPH_RELIABILITY_OUT"
COUNTS: Counter[str] = Counter()


def count(key: str, n: int = 1) -> None:
    """Add ``n`` to counter ``key`` (e.g. ``count("files_tried")``)."""
    COUNTS[key] += n


def dump() -> Path | None:
    """Write this process's counts (when ``$RESTOREGRAPH_RELIABILITY_OUT`` is set)."""
    out = os.environ.get(ENV)
    if not out:
        return None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"counts-{os.getpid()}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(dict(sorted(COUNTS.items())), indent=2))
    os.replace(tmp, path)
    return path


@pytest.fixture(scope="session", autouse=True)
def reliability_counts() -> Iterator[Counter[str]]:
    yield COUNTS
    dump()
