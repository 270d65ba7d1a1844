"""Batch restore (``restoregraph restore DIR -o OUTDIR``): resumable, identical, never destructive.

The images are 32 px crops with a step budget of 2, so 50 images run in seconds. The outputs of
an uninterrupted sequential run are the reference every other way of running must reproduce
byte for byte: killed with -9 halfway and resumed, killed at a random point while two worker
processes run, and on Ray.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from restoregraph.batch import (
    CRASH_HOOK_ENV,
    MANIFEST,
    plan_batch,
    run_batch,
)
from restoregraph.core.errors import InputError, OutputError
from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture, parse_mixture
from restoregraph.imageio import as_float_image, load_image, save_image

N_IMAGES = 50
SIZE = 32
MAX_STEPS = "2"
# classical tools only: cheap, and the tests do not depend on models other parts may change
TOOLBOX = "denoise.bilateral,deblur.unsharp,dejpeg.deblock,dehaze.dcp,lowlight.gamma,derain.median"
MIXTURES = ("noise:2+jpeg:2", "low_light:2+noise:1", "jpeg:3", "haze:2+noise:1", "rain:1")
CLI = [sys.executable, "-m", "restoregraph"]


def make_inputs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    sources = [
        as_float_image(getattr(skimage.data, k)()) for k in ("astronaut", "chelsea", "coffee")
    ]
    for i in range(n):
        src = sources[i % len(sources)]
        rng = np.random.default_rng(i)
        y = int(rng.integers(0, src.shape[0] - SIZE))
        x = int(rng.integers(0, src.shape[1] - SIZE))
        crop = src[y : y + SIZE, x : x + SIZE]
        out, _ = apply_mixture(crop, parse_mixture(MIXTURES[i % len(MIXTURES)]), seed=i)
        save_image(out, folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image\n")


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def restore_cmd(src: Path, out: Path, home: Path, *extra: str) -> list[str]:
    return CLI + [
        "restore",
        str(src),
        "-o",
        str(out),
        "--home",
        str(home),
        "--max-steps",
        MAX_STEPS,
        "--toolbox",
        TOOLBOX,
        *extra,
    ]


def run_cli(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def checkpoint_counts(home: Path, out: Path) -> dict[str, tuple[int, int]]:
    """Per image: (checkpoints in its thread, checkpoints written as a run's input)."""
    items = json.loads((out / MANIFEST).read_text())["items"]
    con = sqlite3.connect(home / "checkpoints.sqlite")
    try:
        rows = con.execute(
            "SELECT thread_id, count(*), "
            "sum(json_extract(metadata, '$.source') = 'input') FROM checkpoints GROUP BY thread_id"
        ).fetchall()
    finally:
        con.close()
    per_thread = {t: (int(n), int(i)) for t, n, i in rows}
    return {it["image"]: per_thread[it["run_id"]] for it in items if it["run_id"] in per_thread}


def integrity(home: Path) -> str:
    con = sqlite3.connect(home / "checkpoints.sqlite")
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def summary_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cheap_context() -> RunContext:
    return RunContext(max_steps=int(MAX_STEPS), toolbox=tuple(TOOLBOX.split(",")))


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """50 degraded images (+ a text file) and an uninterrupted sequential batch over them.

    Built once per session, shared by the xdist workers through a lock file.
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    root = base / "batch_reference"
    paths = {"root": root, "src": root / "in", "out": root / "out", "home": root / "home"}
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            if root.exists():
                import shutil

                shutil.rmtree(root)
            make_inputs(paths["src"], N_IMAGES)
            batch = plan_batch(paths["src"], paths["out"], cheap_context(), home=paths["home"])
            run_batch(batch)
            (root / "done").write_text("ok")
    return paths


def copy_inputs(reference: dict[str, Path], dest: Path, names: list[str]) -> Path:
    dest.mkdir(parents=True)
    for name in names:
        (dest / name).write_bytes((reference["src"] / name).read_bytes())
    return dest


def test_uninterrupted_batch(reference: dict[str, Path]) -> None:
    out = reference["out"]
    rows = summary_rows(out)
    assert [r["image"] for r in rows] == [f"img{i}.png" for i in range(N_IMAGES)] + ["notes.txt"]
    assert sum(r["status"] == "restored" for r in rows) == N_IMAGES
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 1 and "not an image" in skipped[0]["message"]
    assert len(outputs(out)) == N_IMAGES
    for r in rows[:N_IMAGES]:
        assert r["output"] == r["image"] and r["plan"] and r["perceived"]
        assert float(r["quality_in"]) >= 0 and float(r["seconds"]) > 0
    assert sum(int(r["steps"]) > 0 for r in rows) >= N_IMAGES // 2  # the agent did work
    data = json.loads((out / "summary.json").read_text())
    assert data["counts"] == {"restored": N_IMAGES, "skipped": 1}
    assert len(data["images"]) == N_IMAGES + 1
    counts = checkpoint_counts(reference["home"], out)
    assert len(counts) == N_IMAGES  # one thread per image, none for the text file
    assert all(n > 2 and inputs == 1 for n, inputs in counts.values())


def test_kill_halfway_then_resume_with_two_workers(
    reference: dict[str, Path], tmp_path: Path
) -> None:
    """The CLI killed with -9 inside image 26 of 50, then the same command with --workers 2."""
    src = reference["src"]
    before = digest(src)
    out, home = tmp_path / "out", tmp_path / "home"
    cmd = restore_cmd(src, out, home)
    half = N_IMAGES // 2
    # dies like kill -9 right after the first step of image `half` (0-based)
    crashed = run_cli(cmd, **{CRASH_HOOK_ENV: f"{half}:1"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert integrity(home) == "ok"
    assert len(outputs(out)) == half
    assert not (out / "summary.csv").exists()
    runs = [json.loads(p.read_text()) for p in (home / "runs").glob("*/run.json")]
    assert len(runs) == half + 1
    assert sum(not r.get("finished") for r in runs) == 1  # the half-done image

    resumed = run_cli(cmd + ["--workers", "2"])
    assert resumed.returncode == 0, resumed.stderr
    assert integrity(home) == "ok"
    statuses = [r["status"] for r in summary_rows(out)]
    assert statuses.count("earlier") == half  # finished images are not redone
    assert statuses.count("resumed") == 1  # continued from its checkpoint
    assert statuses.count("restored") == N_IMAGES - half - 1
    assert statuses.count("skipped") == 1
    # every image done exactly once: one run, one thread, one input checkpoint, and as many
    # checkpoints as the uninterrupted run wrote (no step was executed twice)
    assert len(list((home / "runs").glob("*/run.json"))) == N_IMAGES
    assert checkpoint_counts(home, out) == checkpoint_counts(reference["home"], reference["out"])
    assert outputs(out) == outputs(reference["out"])
    assert not list(out.glob(".*.part"))
    assert digest(src) == before  # the inputs are untouched

    # the same batch again (here in-process): nothing left to do, nothing rewritten
    again = plan_batch(src, out, cheap_context(), home=home)
    assert again.resumed
    summary = run_batch(again)
    assert summary.counts == {"earlier": N_IMAGES, "skipped": 1}
    assert outputs(out) == outputs(reference["out"])
    assert digest(src) == before


def test_kill9_at_a_random_point_with_workers(reference: dict[str, Path], tmp_path: Path) -> None:
    """Two worker processes; the batch is killed from outside once a few outputs exist."""
    names = [f"img{i}.png" for i in range(10)]
    src = copy_inputs(reference, tmp_path / "in", names)
    before = digest(src)
    out, home = tmp_path / "out", tmp_path / "home"
    proc = subprocess.Popen(
        restore_cmd(src, out, home, "--workers", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(list(out.glob("*.png"))) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "the batch wrote no outputs"
        time.sleep(0.02)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    # the workers die with the batch (PR_SET_PDEATHSIG): none keeps writing to a thread
    deadline = time.monotonic() + 30
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "worker processes outlived the killed batch"
        time.sleep(0.1)
    assert integrity(home) == "ok"
    assert 3 <= len(outputs(out)) < len(names)

    batch = plan_batch(src, out, cheap_context(), home=home)
    assert batch.resumed
    summary = run_batch(batch)
    assert summary.counts.get("failed", 0) == 0
    assert integrity(home) == "ok"
    assert len(list((home / "runs").glob("*/run.json"))) == len(names)
    counts = checkpoint_counts(home, out)
    ref_counts = checkpoint_counts(reference["home"], reference["out"])
    assert counts == {k: ref_counts[k] for k in names}
    ref = outputs(reference["out"])
    assert outputs(out) == {k: ref[k] for k in names}
    assert not list(out.glob(".*.part"))
    assert digest(src) == before


def test_resume_after_a_node_saved_its_writes(reference: dict[str, Path], tmp_path: Path) -> None:
    """Killed after a node's writes were saved but before the next checkpoint: the run goes on
    from those writes (``next`` is empty there, yet the run is not finished)."""
    names = [f"img{i}.png" for i in range(N_IMAGES)]
    rows = {r["image"]: r for r in summary_rows(reference["out"])}
    name = next(n for n in names if int(rows[n]["steps"]) == int(MAX_STEPS))
    src = copy_inputs(reference, tmp_path / "in", [name])
    out, home = tmp_path / "out", tmp_path / "home"
    batch = plan_batch(src, out, cheap_context(), home=home)
    run_batch(batch)
    finished = (out / name).read_bytes()
    run_id = batch.items[0].run_id
    from restoregraph.runner import Runner, reached_end

    runner = Runner(home)
    config = runner.config(run_id)
    first_reflection = min(
        s.metadata["step"]
        for s in runner.graph.get_state_history(config)
        if s.next == ("reflection",)
    )
    con = sqlite3.connect(home / "checkpoints.sqlite")
    with con:  # forget every checkpoint after it; the reflection's saved writes stay
        con.execute(
            "DELETE FROM checkpoints WHERE thread_id = ? AND json_extract(metadata, '$.step') > ?",
            (run_id, first_reflection),
        )
    con.close()
    snapshot = runner.graph.get_state(config)
    assert snapshot.next == () and not reached_end(snapshot)
    meta_path = runner.run_dir(run_id) / "run.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, finished=False)))
    (out / name).unlink()

    summary = run_batch(plan_batch(src, out, cheap_context(), home=home))
    assert summary.rows[0]["status"] == "resumed"
    assert (out / name).read_bytes() == finished == (reference["out"] / name).read_bytes()
    assert (
        checkpoint_counts(home, out)[name]
        == checkpoint_counts(reference["home"], reference["out"])[name]
    )


def test_ray_gives_the_same_outputs(reference: dict[str, Path], tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    names = ["img3.png", "img7.png", "img10.png", "img11.png"]
    src = copy_inputs(reference, tmp_path / "in", names)
    out, home = tmp_path / "out", tmp_path / "home"
    batch = plan_batch(src, out, cheap_context(), home=home)
    for attempt in range(2):  # Ray gives its node 30 s to start, which a busy CI box can miss
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as exc:
            ray.shutdown()
            if attempt:
                pytest.skip(f"Ray did not start on this machine: {exc}")
    try:
        summary = run_batch(batch, ray_address="auto")
    finally:
        ray.shutdown()
    assert [r["status"] for r in summary.rows] == ["restored"] * len(names)
    assert [r["image"] for r in summary.rows] == names
    ref = outputs(reference["out"])
    assert outputs(out) == {k: ref[k] for k in names}


# ---- refusals: checked before anything runs ---------------------------------------------------
def test_refuses_to_overwrite_inputs_and_foreign_outputs(tmp_path: Path) -> None:
    src = tmp_path / "in"
    make_inputs(src, 2)
    ctx = cheap_context()
    home = tmp_path / "home"
    with pytest.raises(OutputError, match="refusing to overwrite the input"):
        plan_batch(src, src, ctx, home=home)  # img0.png -> img0.png in the same folder
    out = tmp_path / "out"
    out.mkdir()
    (out / "img1.png").write_bytes(b"someone else's file")
    with pytest.raises(OutputError, match="not from this batch"):
        plan_batch(src, out, ctx, home=home)
    assert plan_batch(src, out, ctx, home=home, overwrite=True).items
    (out / "img1.png").unlink()
    (out / MANIFEST).write_text(json.dumps({"batch_id": "other", "identity": {}, "items": []}))
    with pytest.raises(OutputError, match="holds batch 'other'"):
        plan_batch(src, out, ctx, home=home)
    with pytest.raises(InputError, match="invalid batch id"):
        plan_batch(src, tmp_path / "o2", ctx, home=home, batch_id="../x")
    with pytest.raises(InputError, match="must name a folder"):
        plan_batch(src, tmp_path / "restored.png", ctx, home=home)
    with pytest.raises(InputError, match="no such folder"):
        plan_batch(tmp_path / "missing", tmp_path / "o3", ctx, home=home)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_jpeg_inputs_may_share_their_folder_with_the_outputs(tmp_path: Path) -> None:
    """OUTDIR == DIR is fine when nothing would be overwritten; outputs are not rescanned."""
    src = tmp_path / "in"
    make_inputs(src, 2)
    for p in sorted(src.glob("*.png")):
        save_image(load_image(p), p.with_suffix(".jpg"))
        p.unlink()
    ctx = cheap_context()
    plan = plan_batch(src, src, ctx, home=tmp_path / "home")
    assert [Path(it.out).name for it in plan.items] == ["img0.png", "img1.png", "notes.png"]
    (src / "summary.csv").write_text("a user's own table\n")
    with pytest.raises(OutputError, match="summary.csv: refusing to overwrite an input"):
        plan_batch(src, src, ctx, home=tmp_path / "home", overwrite=True)
    (src / "summary.csv").unlink()
    summary = run_batch(plan)
    assert summary.counts == {"restored": 2, "skipped": 1}
    again = plan_batch(src, src, ctx, home=tmp_path / "home")
    assert again.resumed and [it.rel for it in again.items] == ["img0.jpg", "img1.jpg", "notes.txt"]
    assert run_batch(again).counts == {"earlier": 2, "skipped": 1}


def test_cli_errors_are_one_line(tmp_path: Path, reference: dict[str, Path]) -> None:
    src, home = reference["src"], tmp_path / "home"

    def restore(*args: object) -> subprocess.CompletedProcess[str]:
        return run_cli(CLI + ["restore", *map(str, args), "--home", str(home)])

    res = restore(src, "-o", src)
    assert res.returncode == 3 and res.stderr.count("\n") == 1
    assert "refusing to overwrite the input" in res.stderr
    one = restore(src / "img0.png", "-o", tmp_path / "x.png", "--workers", "2")
    assert one.returncode == 2 and "apply to a folder" in one.stderr
    ray = restore(src, "-o", tmp_path / "o", "--ray", "127.0.0.1:1")
    assert ray.returncode == 2 and "Traceback" not in ray.stderr
    assert ray.stderr.strip().splitlines()[-1].startswith("error: --ray 127.0.0.1:1: cannot reach")
    assert not (tmp_path / "o").exists() and not home.exists()
