"""``restoregraph bench reliability``: counts merged across test processes, JUnit outcomes per
file, the markdown section, and a one-line error outside a source checkout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from restoregraph.cli.main import main
from restoregraph.core.errors import InputError
from restoregraph.lab.bench.reliability import (
    LABELS,
    ReliabilityResult,
    junit_outcomes,
    merge,
    reliability_markdown,
    source_root,
)


def test_merge_adds_every_process_counts(tmp_path: Path) -> None:
    (tmp_path / "counts-1.json").write_text(json.dumps({"files_tried": 3, "clean_errors": 2}))
    (tmp_path / "counts-2.json").write_text(json.dumps({"files_tried": 4, "crashes_survived": 1}))
    (tmp_path / "other.json").write_text("not counts")
    assert merge(tmp_path) == {"clean_errors": 2, "crashes_survived": 1, "files_tried": 7}
    (tmp_path / "counts-3.json").write_text("{broken")
    with pytest.raises(InputError, match="unreadable counts"):
        merge(tmp_path)


def test_junit_outcomes_per_file(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<?xml version="1.0"?><testsuites><testsuite>'
        '<testcase classname="tests.test_fuzz" name="test_a"/>'
        '<testcase classname="tests.test_fuzz" name="test_b"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_reliability_crash" name="t"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    files, failures = junit_outcomes(xml)
    assert files["tests/test_fuzz.py"] == Counter(passed=1, failed=1)
    assert files["tests/test_reliability_crash.py"] == Counter(skipped=1)
    assert failures == ["tests/test_fuzz.py::test_b"]


def test_markdown_lists_every_count_and_failure() -> None:
    result = ReliabilityResult(
        counts={"files_tried": 225, "tracebacks": 0},
        files={"tests/test_fuzz.py": Counter(passed=5)},
        failures=["tests/test_fuzz.py::test_x"],
        features=[("web upload (browser)", "not landed (no code or no test file)")],
        seconds=12.0,
    )
    text = reliability_markdown(result, crashes=6, fuzz_examples=500)
    assert all(label in text for label in LABELS.values())
    assert "| 225 |" in text and "`tests/test_fuzz.py::test_x`" in text
    assert "5 passed, 0 failed" in text and "docs/reliability.md" not in text.split("(")[0]


def test_outside_a_checkout_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="source checkout"):
        source_root(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "reliability", "--root", str(tmp_path), "--doc", str(tmp_path / "B.md")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "B.md").exists()
