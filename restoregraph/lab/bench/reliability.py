"""``restoregraph bench reliability``: run the reliability tests and report what they counted.

The reliability tests (``tests/test_reliability_*.py``, ``tests/test_fuzz.py``, the bad-input
CLI tests) count what they check through ``tests/reliability_counts.py``: corpus files tried,
inputs checked per entry point, clean one-line errors, correct results, failing parts survived,
fallbacks reported, ``kill -9`` crashes survived, identical outputs after resume, database
integrity checks, concurrent runs finished, fuzz examples. This module runs those tests with
pytest in a subprocess (so it needs a source checkout and the ``dev`` extra), merges the
per-process JSON counts and the JUnit outcome of every test, and writes the markdown section.

Other features' reliability tests (batch crash/resume, weight loading, web upload) are run and
reported per file when their code and tests are present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from restoregraph.core.errors import InputError, ToolError
from restoregraph.core.util import md_table
from restoregraph.lab.report import format_duration

COUNTS_ENV = "RESTOREGRAPH_RELIABILITY_OUT"  # where tests/reliability_counts.py writes

# The project's reliability tests (this module's counts come from them).
CORE_TESTS = (
    "tests/test_reliability_inputs.py",
    "tests/test_reliability_parts.py",
    "tests/test_reliability_crash.py",
    "tests/test_reliability_bounds.py",
    "tests/test_reliability_web_upload.py",
    "tests/test_fuzz.py",
    "tests/test_cli_bad_input.py",
)
# Other features' reliability tests: (what, product code that must exist, test file).
FEATURE_TESTS = (
    ("batch: kill -9 and resume", "restoregraph/batch.py", "tests/test_batch.py"),
    (
        "learned tools: weights loaded without code, tiled processing",
        "restoregraph/tools/loading.py",
        "tests/test_learned_tools.py",
    ),
    ("web upload (browser)", "restoregraph/web/app.py", "tests/test_web_browser.py"),
)

# counter -> what it counts, in report order
LABELS = {
    "files_tried": "bad-input corpus entries tried (files, links, pipes, directories)",
    "inputs_checked": "inputs checked (entry × decode, degrade, metrics, restore, tool API, "
    "library API, web upload)",
    "clean_errors": "clean one-line errors with the documented exit code",
    "correct_results": "correct results (pixels checked where the file's content is known)",
    "tracebacks": "tracebacks shown to the user",
    "unclean_failures": "failures other than a clean error",
    "failing_parts_survived": "failing tools survived (raise, hang, NaN/inf, shape, dtype, range)",
    "failures_reported": "failed tool calls shown in the report and history",
    "planner_failures_survived": "planner failures survived (endpoint down/slow/trickling/"
    "malformed/hostile, planner raising)",
    "fallbacks_reported": "planner fallbacks said so in the report, state and summary",
    "crashes_survived": "kill -9 crashes survived (then resume)",
    "identical_after_resume": "resumed outputs identical to the uninterrupted run",
    "db_integrity_ok": "SQLite PRAGMA integrity_check = ok after a crash or concurrent runs",
    "concurrent_runs_finished": "runs finished while another process used the same database",
    "bounds_checked": "resource bounds checked (step budget, rounds, refused budgets, gc)",
    "fuzz_decode_examples": "fuzz examples: image decoding",
    "fuzz_plan_examples": "fuzz examples: plan parsing",
}


@dataclass
class ReliabilityResult:
    counts: dict[str, int]
    files: dict[str, Counter[str]]  # test file -> outcome -> how many
    failures: list[str] = field(default_factory=list)
    features: list[tuple[str, str]] = field(default_factory=list)  # (what, test file or note)
    seconds: float = 0.0
    returncode: int = 0


def merge(folder: Path) -> dict[str, int]:
    """The sum of every ``counts-*.json`` the test processes wrote into ``folder``."""
    total: Counter[str] = Counter()
    for p in sorted(folder.glob("counts-*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: unreadable counts file ({exc})") from None
        total.update({str(k): int(v) for k, v in data.items()})
    return dict(sorted(total.items()))


def junit_outcomes(path: Path) -> tuple[dict[str, Counter[str]], list[str]]:
    """Per test file, how many tests passed / failed / skipped; and the failed tests' ids."""
    files: dict[str, Counter[str]] = {}
    failures: list[str] = []
    if not path.exists():
        return files, failures
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        name = "/".join(module[:2]) + ".py" if len(module) >= 2 else case.get("file", "?")
        if any(child.tag in ("failure", "error") for child in case):
            outcome = "failed"
            failures.append(f"{name}::{case.get('name')}")
        elif any(child.tag == "skipped" for child in case):
            outcome = "skipped"
        else:
            outcome = "passed"
        files.setdefault(name, Counter())[outcome] += 1
    return files, failures


def source_root(start: Path | None = None) -> Path:
    """The checkout holding ``tests/reliability_counts.py`` (the current directory, or the
    package's parent)."""
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in candidates:
        if (root / "tests" / "reliability_counts.py").exists():
            return root.resolve()
    raise InputError(
        "bench reliability runs the test suite: run it from a source checkout of RestoreGraph "
        "(a folder with tests/reliability_counts.py) or pass --root"
    )


def run_reliability(
    root: Path,
    *,
    crashes: int = 6,
    fuzz_examples: int = 500,
    slow: bool = True,
    workers: int = 1,
    features: bool = True,
) -> ReliabilityResult:
    """Run the reliability tests under ``root`` and collect their counts and outcomes."""
    import importlib.util
    import time

    if importlib.util.find_spec("pytest") is None or importlib.util.find_spec("hypothesis") is None:
        raise ToolError("bench reliability needs pytest and hypothesis (pip install -e '.[dev]')")
    files = [f for f in CORE_TESTS if (root / f).exists()]
    notes: list[tuple[str, str]] = []
    if features:
        for what, code, test in FEATURE_TESTS:
            if (root / code).exists() and (root / test).exists():
                files.append(test)
                notes.append((what, test))
            else:
                notes.append((what, "not landed (no code or no test file)"))
    with tempfile.TemporaryDirectory(prefix="rg-reliability-") as tmp:
        out = Path(tmp)
        junit = out / "junit.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        argv += ["-m", "not integration" if slow else "not slow and not integration"]
        argv += ["--junitxml", str(junit), "-o", "junit_family=xunit1"]
        if workers > 1:
            argv += ["-n", str(workers)]
        env = dict(os.environ)
        env[COUNTS_ENV] = str(out / "counts")
        env["RESTOREGRAPH_RELIABILITY_CRASHES"] = str(crashes)
        env["RESTOREGRAPH_FUZZ_EXAMPLES"] = str(fuzz_examples)
        env.setdefault("OMP_NUM_THREADS", "1")
        t0 = time.perf_counter()
        # pytest's own progress line (a dot per test) is the progress display
        proc = subprocess.run([*argv, *files], cwd=root, env=env, stdout=sys.stderr, check=False)
        seconds = time.perf_counter() - t0
        outcomes, failures = junit_outcomes(junit)
        counts = merge(out / "counts") if (out / "counts").exists() else {}
    if not outcomes:
        raise ToolError(f"pytest ran no reliability tests (exit {proc.returncode})")
    return ReliabilityResult(counts, outcomes, failures, notes, seconds, proc.returncode)


def reliability_markdown(result: ReliabilityResult, crashes: int, fuzz_examples: int) -> str:
    total: Counter[str] = Counter()
    for c in result.files.values():
        total.update(c)
    lines = [
        f"- tests: {total['passed']} passed, {total['failed']} failed, {total['skipped']} "
        f"skipped (pytest exit {result.returncode}; {format_duration(result.seconds)}); "
        f"{crashes} seeded crash points, {fuzz_examples} fuzz examples per fuzz test",
        "",
        md_table(
            ["what the tests checked", "count"],
            [[label, str(result.counts.get(key, 0))] for key, label in LABELS.items()],
        ),
        "",
        md_table(
            ["test file", "passed", "failed", "skipped"],
            [
                [f"`{name}`", str(c["passed"]), str(c["failed"]), str(c["skipped"])]
                for name, c in sorted(result.files.items())
            ],
        ),
    ]
    if result.features:
        lines += ["", "Other features' reliability tests:"]
        lines += [f"- {what}: {where}" for what, where in result.features]
    if result.failures:
        lines += ["", "**Failed:**"] + [f"- `{f}`" for f in result.failures]
    lines += [
        "",
        "Exit codes and what each guarantee means: [docs/reliability.md](reliability.md).",
    ]
    return "\n".join(lines)
