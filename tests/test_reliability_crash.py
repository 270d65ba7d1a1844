"""Crashes: ``kill -9`` at seeded random points of a run (between checkpoints and in the middle
of a node), then ``resume``: the final image equals the uninterrupted run's, and the SQLite
checkpoint database passes ``PRAGMA integrity_check``. Two processes running on one database
both finish (no lock held forever), and ``gc`` running beside a run does not break it.

The default suite kills at 2 seeded points; ``RESTOREGRAPH_RELIABILITY_CRASHES=N`` (set by
``restoregraph bench reliability``) draws N points instead.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import load_image, save_image
from restoregraph.runner import Runner
from restoregraph.store.images import ImageStore
from tests.reliability_counts import count, reliability_counts  # noqa: F401

MAX_STEPS = 4
CLI = [sys.executable, "-m", "restoregraph"]
N_CRASHES = int(os.environ.get("RESTOREGRAPH_RELIABILITY_CRASHES", "2"))


def integrity(db: Path) -> str:
    con = sqlite3.connect(str(db), timeout=30)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def restore_argv(src: Path, out: Path, home: Path, run_id: str) -> list[str]:
    return CLI + [
        "restore",
        str(src),
        "-o",
        str(out),
        "--home",
        str(home),
        "--run-id",
        run_id,
        "--max-steps",
        str(MAX_STEPS),
    ]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOREGRAPH_CRASH")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory, astronaut_192: np.ndarray) -> Path:
    mixture = [("haze", 2), ("noise", 2), ("jpeg", 2)]
    img, _ = apply_mixture(astronaut_192[:128, :128], mixture, seed=0)
    return save_image(img, tmp_path_factory.mktemp("crash-src") / "in.png")


@pytest.fixture(scope="module")
def reference(src: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int]:
    """The uninterrupted run (in-process): its image and how many progress events it sent."""
    tmp = tmp_path_factory.mktemp("crash-ref")
    result = Runner(tmp / "home").start(
        src, tmp / "ref.png", RunContext(max_steps=MAX_STEPS), run_id="ref"
    )
    assert len(result.history) >= 2, result.history  # enough steps to crash in between
    return load_image(tmp / "ref.png"), len(result.events)


def crash_points(n_events: int) -> list[tuple[str, int]]:
    """Seeded crash points: ('event', k) dies at the k-th progress event (mid-node or between
    nodes), ('step', k) right after the k-th checkpointed step."""
    rng = random.Random(20261123)
    events = sorted(rng.sample(range(1, n_events + 1), k=min(N_CRASHES, n_events)))
    points = [("event", k) for k in events]
    if N_CRASHES > 2:
        points.append(("step", 1))
    return points


def test_kill_at_random_points_then_resume(
    src: Path, reference: tuple[np.ndarray, int], tmp_path: Path
) -> None:
    ref_image, n_events = reference
    problems = []
    for i, (kind, k) in enumerate(crash_points(n_events)):
        home, out = tmp_path / f"h{i}", tmp_path / f"out{i}.png"
        hook = (
            "RESTOREGRAPH_CRASH_AT_EVENT" if kind == "event" else "RESTOREGRAPH_CRASH_AFTER_STEPS"
        )
        crashed = subprocess.run(
            restore_argv(src, out, home, "run"),
            env=child_env(**{hook: str(k)}),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
        assert not out.exists(), "a killed run must not leave an output"
        assert not list(tmp_path.glob(".*.part"))
        db = home / "checkpoints.sqlite"
        if db.exists():
            assert integrity(db) == "ok"
            count("db_integrity_ok")
        count("crashes_survived")
        resumed = Runner(home).resume("run")  # what `restoregraph resume run` does
        assert resumed.output == out and out.exists()
        if db.exists():
            assert integrity(db) == "ok"
        if np.array_equal(load_image(out), ref_image):
            count("identical_after_resume")
        else:
            problems.append(f"{kind} {k}: the resumed image differs from the uninterrupted run")
    assert not problems, problems


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_at_a_random_time_then_resume(
    seed: int, src: Path, reference: tuple[np.ndarray, int], tmp_path: Path
) -> None:
    """An outside ``kill -9`` at a seeded random moment once the run has started (wherever the
    process is: a tool, perception, SQLite, writing the output or the report)."""
    ref_image, _ = reference
    home, out = tmp_path / "h", tmp_path / "out.png"
    proc = subprocess.Popen(
        restore_argv(src, out, home, "run"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    meta = home / "runs" / "run" / "run.json"
    while not meta.exists() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(random.Random(seed).uniform(0.0, 3.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    runner = Runner(home)
    db = home / "checkpoints.sqlite"
    if db.exists():
        assert integrity(db) == "ok"
        count("db_integrity_ok")
    result = runner.resume("run")
    assert result.output == out
    assert np.array_equal(load_image(out), ref_image)
    if proc.returncode == -signal.SIGKILL:  # (the run may have finished before the kill)
        count("crashes_survived")
        count("identical_after_resume")


def test_two_processes_on_one_database_with_gc_beside(src: Path, tmp_path: Path) -> None:
    """Two runs in two processes on one checkpoint database, and ``gc`` in a loop beside them:
    both finish (no lock held forever), give the same image, and the database is intact."""
    home = tmp_path / "shared-home"
    runner = Runner(home)
    procs = [
        subprocess.Popen(
            restore_argv(src, tmp_path / f"c{i}.png", home, f"c{i}"),
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 400
    removed = 0
    while any(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "concurrent runs did not finish"
        removed += runner.collect_garbage()
        time.sleep(0.05)
    for p in procs:
        err = p.stderr.read() if p.stderr else ""
        assert p.returncode == 0, err[-2000:]
        count("concurrent_runs_finished")
    assert removed == 0  # everything written was referenced, or too young to collect
    a, b = (load_image(tmp_path / f"c{i}.png") for i in range(2))
    assert np.array_equal(a, b)  # same input, same settings: same result, whatever the interleaving
    assert integrity(home / "checkpoints.sqlite") == "ok"
    assert runner.referenced_images() <= ImageStore(runner.store_dir).all_hashes()
    count("db_integrity_ok")


def test_gc_keeps_young_and_referenced_images_and_clears_stale_parts(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    old, young, kept = (store.put(np.full((9, 9, 3), v, np.float32)) for v in (0.1, 0.2, 0.3))
    part = Path(old["uri"]).with_name("x.part")  # what a writer killed mid-write leaves
    part.write_bytes(b"partial")
    long_ago = time.time() - 3600
    for p in (Path(old["uri"]), Path(kept["uri"]), part):
        os.utime(p, (long_ago, long_ago))
    assert store.collect_garbage({kept["sha256"]}, min_age_s=600) == 1
    assert not Path(old["uri"]).exists() and not part.exists()
    assert Path(young["uri"]).exists() and Path(kept["uri"]).exists()
    # putting an old image again makes it young: a gc running beside that run keeps it
    os.utime(kept["uri"], (long_ago, long_ago))
    store.put(np.full((9, 9, 3), 0.3, np.float32))
    assert store.collect_garbage(set(), min_age_s=600) == 0
