"""The bad-input corpus through the web upload (``restoregraph.web.session.Workspace``): every
regular file is accepted with the right image or refused with one clean line that does not
reveal the server's paths; a refused upload leaves no run directory behind; the browser's file
name never becomes part of a path, whatever it says."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.errors import InputError
from restoregraph.imageio import load_image
from restoregraph.runner import Runner
from tests.badinput import Case, build_corpus, restore_permissions
from tests.reliability_counts import count, reliability_counts  # noqa: F401

session = pytest.importorskip("restoregraph.web.session")

HOSTILE_NAMES = [
    "../../../../etc/passwd.png",
    "/etc/shadow.jpg",
    "..\\..\\windows\\system32.png",
    "photo.png\x00.sh",
    "new\nline.png",
    "",
    "a" * 5000 + ".png",
    "photo.PHP",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Case]]:
    root = tmp_path_factory.mktemp("upload-corpus")
    cases = build_corpus(root)
    yield cases
    restore_permissions(root)


def regular(case: Case) -> bool:
    try:
        return stat.S_ISREG(case.path.stat().st_mode) and not case.path.is_symlink()
    except OSError:
        return False


def test_every_corpus_file_uploaded(corpus: list[Case], tmp_path: Path) -> None:
    runner = Runner(tmp_path / "home")
    ws = session.Workspace(runner, {"max_steps": 1}, max_upload_bytes=2_000_000, use_chat=False)
    runs = runner.home / "runs"
    problems = []
    for i, case in enumerate(c for c in corpus if regular(c)):
        name = HOSTILE_NAMES[i % len(HOSTILE_NAMES)] if i % 5 == 0 else case.name
        before = set(runs.iterdir())
        count("inputs_checked")
        try:
            expected = load_image(case.path)
        except InputError:
            expected = None
        try:
            conv = ws.accept_upload(case.path, original_name=name)
        except InputError as exc:
            msg = str(exc)
            if expected is not None:
                problems.append(f"{case.name!r}: refused a valid upload: {msg}")
            elif "\n" in msg or str(runner.home) in msg or str(case.path.parent) in msg:
                problems.append(f"{case.name!r}: message not one clean line: {msg!r}")
            else:
                count("clean_errors")
            if set(runs.iterdir()) != before:
                problems.append(f"{case.name!r}: a refused upload left a run directory")
            continue
        except Exception as exc:
            problems.append(f"{case.name!r}: {type(exc).__name__}: {exc}")
            continue
        inside = conv.input_path.resolve().parent.parent == runs.resolve()
        if not inside or not conv.input_path.name.startswith("input."):
            problems.append(f"{case.name!r} as {name!r}: stored at {conv.input_path}")
        if expected is None:
            problems.append(f"{case.name!r}: accepted an upload that load_image refuses")
        elif not np.array_equal(load_image(conv.input_path), expected):
            problems.append(f"{case.name!r}: the stored upload decodes differently")
        else:
            count("correct_results")
    assert not problems, "\n".join(problems)
