"""Data safety (issue #23, items 11-14) on real files: real PNGs, the real SQLite checkpointer, the
CLI as a user runs it.

11. a stored image that was replaced or damaged is refused (sha256 and shape checked on read);
12. a damaged checkpoints.sqlite is a one-line error naming the file, with a recovery hint; a home
    that was copied or moved still works, including a home written before run.json recorded the
    store relative to the home;
13. ``undo`` never overwrites an output without ``--overwrite``;
14. Ctrl-C names the run and the resume command; ``history`` fits an 80-column pipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from restoregraph.core.errors import StoreError
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import save_image
from restoregraph.runner import Runner
from restoregraph.store.images import ImageStore

RUN = "base"
CLI = [sys.executable, "-m", "restoregraph"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "80", **(env or {})}
    full.pop("RESTOREGRAPH_DEBUG", None)
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, env=full, timeout=600
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line, which must be the error (and no traceback anywhere)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr
    return last


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished CLI run ``base`` (>= 2 accepted steps) in ``<dir>/home``; its input is
    ``<dir>/in.png`` and its output ``<dir>/restored.png``."""
    d = tmp_path_factory.mktemp("safety")
    clean = cv2.resize(
        skimage.data.astronaut().astype(np.float32) / 255.0,
        (160, 160),
        interpolation=cv2.INTER_AREA,
    )
    degraded, _ = apply_mixture(clean, [("haze", 2), ("noise", 2), ("jpeg", 2)], seed=0)
    save_image(degraded, d / "in.png")
    proc = cli("restore", d / "in.png", "-o", d / "restored.png", "--home", d / "home",
               "--run-id", RUN)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    history = Runner(d / "home").history(RUN)
    assert len([h for h in history if h["status"] == "accepted"]) >= 2, history
    return d


def clone(base: Path, dest: Path) -> tuple[Path, Path]:
    """A copy of the base run's home in ``dest/home`` whose output is ``dest/restored.png`` (a
    copy of the base output), so a test can change both freely. Returns (home, output)."""
    home = dest / "home"
    shutil.copytree(base / "home", home)
    out = dest / "restored.png"
    shutil.copy2(base / "restored.png", out)
    meta_path = home / "runs" / RUN / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["output"] = str(out)
    meta_path.write_text(json.dumps(meta))
    return home, out


# ---- 11. stored images are checked on read ------------------------------------------------------


def test_store_get_refuses_a_replaced_or_reshaped_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = ImageStore(tmp_path / "store")
    a = rng.random((40, 50, 3), dtype=np.float32)
    ref_a, ref_b = store.put(a), store.put(rng.random((40, 50, 3), dtype=np.float32))
    ref_small = store.put(rng.random((30, 50, 3), dtype=np.float32))
    path_a = Path(ref_a["uri"])
    good = path_a.read_bytes()
    np.testing.assert_allclose(store.get(ref_a), a, atol=1 / 65535)

    shutil.copy(ref_b["uri"], path_a)  # another valid 16-bit PNG, same shape
    with pytest.raises(StoreError, match="does not match its sha256") as err:
        store.get(ref_a)
    assert str(path_a) in str(err.value)

    shutil.copy(ref_small["uri"], path_a)  # a valid PNG of another shape
    with pytest.raises(StoreError, match=r"has shape \[30, 50, 3\].*\[40, 50, 3\]"):
        store.get(ref_a)

    # the same picture saved as an 8-bit PNG: the same shape, not the stored pixels
    eight = cv2.cvtColor((a * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path_a), eight)
    with pytest.raises(StoreError, match="does not match its sha256"):
        store.get(ref_a)

    path_a.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(StoreError, match="unreadable"):
        store.get(ref_a)

    path_a.write_bytes(good)  # put back: read again, exactly
    np.testing.assert_allclose(store.get(ref_a), a, atol=1 / 65535)
    path_a.unlink()
    with pytest.raises(StoreError, match="missing from the store"):
        store.get(ref_a)


def test_store_finds_images_of_a_moved_store_by_hash(tmp_path: Path) -> None:
    image = np.random.default_rng(1).random((33, 34, 3), dtype=np.float32)
    ref = ImageStore(tmp_path / "old").put(image)
    shutil.move(tmp_path / "old", tmp_path / "new")
    moved = ImageStore(tmp_path / "new")
    np.testing.assert_allclose(moved.get(ref), image, atol=1 / 65535)  # uri points to "old"
    assert not (tmp_path / "old").exists()


def test_undo_refuses_a_replaced_stored_image(base: Path, tmp_path: Path) -> None:
    home, out = clone(base, tmp_path)
    state = Runner(home).state(RUN)
    store = ImageStore(home / "store")
    original = store.path_for(state["original"]["sha256"])
    other = store.path_for(state["history"][0]["output"]["sha256"])  # a valid PNG, same shape
    shutil.copy(other, original)
    before = sha(out)

    proc = cli("undo", RUN, "--to", "0", "--home", home)

    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert str(original) in line and "does not match its sha256" in line
    assert "failed" not in proc.stderr  # stopped at once: no tool ran on the wrong image
    assert sha(out) == before
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["restored.png"]


# ---- 12. a damaged checkpoint database; a copied or moved home ----------------------------------


def test_damaged_checkpoint_database_is_a_clear_error(base: Path, tmp_path: Path) -> None:
    home, _ = clone(base, tmp_path)
    db = home / "checkpoints.sqlite"
    assert db.stat().st_size > 4 * 4096
    with db.open("r+b") as fh:  # damage pages in the middle (the header stays valid)
        fh.seek(2 * 4096)
        fh.write(b"\xff" * 3 * 4096)
    for args in (("history", RUN), ("resume", RUN), ("undo", RUN, "--to", "0")):
        proc = cli(*args, "--home", home)
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_line_error(proc)
        assert f"checkpoint database {db} is damaged" in line, line
        assert "malformed" in line and f"mv {db} {db}.damaged" in line and ".recover" in line

    db.write_bytes(os.urandom(4096))  # not a database at all
    proc = cli("history", RUN, "--home", home)
    assert proc.returncode == 2
    assert "file is not a database" in one_line_error(proc)
    with pytest.raises(StoreError, match="is damaged"):
        Runner(home)

    # the hint works: moved aside, new runs go on
    db.rename(db.with_name("checkpoints.sqlite.damaged"))
    proc = cli("restore", base / "in.png", "-o", tmp_path / "again.png", "--home", home,
               "--max-steps", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_run_json_records_the_store_relative_to_the_home(base: Path, tmp_path: Path) -> None:
    meta = json.loads((base / "home" / "runs" / RUN / "run.json").read_text())
    assert meta["format"] == 2 and meta["settings"]["store_dir"] == "store"

    # a copy of a home (the original still there) uses its own store, not the original's
    home, out = clone(base, tmp_path)
    originals = sorted(p.name for p in (base / "home" / "store").rglob("*.png"))
    proc = cli("undo", RUN, "--to", "1", "--home", home)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (base / "home" / "store").rglob("*.png")) == originals
    new = Runner(home).state(RUN)["current"]["sha256"]
    assert ImageStore(home / "store").path_for(new).exists()
    assert (tmp_path / "restored.undo-1.png").exists()


def test_a_moved_home_written_by_the_previous_version_resumes(base: Path, tmp_path: Path) -> None:
    """A run killed after one step in a home laid out as before (run.json without "format",
    the store as an absolute path, absolute image paths in the checkpoints); the home is then
    moved. ``resume`` finishes it with the image an uninterrupted run made, and the old home is
    not recreated."""
    old_home, out = tmp_path / "old" / "home", tmp_path / "out.png"
    proc = cli("restore", base / "in.png", "-o", out, "--home", old_home, "--run-id", RUN,
               env={"RESTOREGRAPH_CRASH_AFTER_STEPS": "1"})  # fmt: skip
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    meta_path = old_home / "runs" / RUN / "run.json"
    meta = json.loads(meta_path.read_text())
    del meta["format"]
    meta["settings"]["store_dir"] = str(old_home / "store")  # what the previous version wrote
    meta_path.write_text(json.dumps(meta, indent=2))
    assert Runner(old_home).state(RUN)["original"]["uri"].startswith(str(old_home / "store"))

    new_home = tmp_path / "moved" / "home"
    new_home.parent.mkdir()
    shutil.move(old_home, new_home)
    shutil.rmtree(tmp_path / "old")

    proc = cli("resume", RUN, "--home", new_home)
    assert proc.returncode == 0, proc.stderr
    assert sha(out) == sha(base / "restored.png")  # the uninterrupted run's image
    assert not (tmp_path / "old").exists()
    listed = cli("history", RUN, "--home", new_home, "--paths")
    paths = [ln.split(": ", 1)[1] for ln in listed.stdout.splitlines() if " image: " in ln]
    assert paths and all(p.startswith(str(new_home / "store")) and Path(p).exists() for p in paths)

    proc = cli("undo", RUN, "--to", "0", "--home", new_home)  # reads the input from the store
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.undo-0.png").exists() and not (tmp_path / "old").exists()


# ---- 13. undo never overwrites an output ----------------------------------------------------------


def test_undo_writes_beside_the_output_and_never_overwrites(base: Path, tmp_path: Path) -> None:
    home, out = clone(base, tmp_path)
    before = sha(out)

    first = cli("undo", RUN, "--to", "1", "--home", home)
    assert first.returncode == 0, first.stderr
    undo1 = tmp_path / "restored.undo-1.png"
    assert undo1.exists() and sha(out) == before
    assert f"output: {undo1}" in first.stderr
    head = Runner(home).state(RUN)["current"]
    assert sha(undo1) == sha(save_image(ImageStore(home / "store").get(head), tmp_path / "x.png"))

    second = cli("undo", RUN, "--to", "1", "--home", home)  # the same name is taken now
    assert second.returncode == 0, second.stderr
    undo1b = tmp_path / "restored.undo-1-2.png"
    assert undo1b.exists() and f"output: {undo1b}" in second.stderr
    assert sha(out) == before

    taken = sha(undo1)
    refused = cli("undo", RUN, "--to", "0", "--home", home, "-o", undo1)
    assert refused.returncode == 3  # the documented code for a refused output
    assert "already exists (pass --overwrite" in one_line_error(refused)
    assert sha(undo1) == taken and not (tmp_path / "restored.undo-0.png").exists()

    chosen = cli("undo", RUN, "--to", "0", "--home", home, "-o", tmp_path / "chosen.png")
    assert chosen.returncode == 0 and (tmp_path / "chosen.png").exists()

    replaced = cli("undo", RUN, "--to", "0", "--home", home, "-o", undo1, "--overwrite")
    assert replaced.returncode == 0 and sha(undo1) != taken
    assert sha(out) == before

    # a resume after the undo writes the undo's file again, never the run's first output
    os.utime(out, (1, 1))
    assert cli("resume", RUN, "--home", home).returncode == 0
    assert out.stat().st_mtime == 1 and sha(out) == before

    refused = cli("undo", RUN, "--to", "0", "--home", home, "-o", base / "in.png", "--overwrite")
    assert refused.returncode == 3 and "input file" in one_line_error(refused)


# ---- 14. Ctrl-C and history in a pipe -----------------------------------------------------------


def test_ctrl_c_names_the_run_and_the_resume_command(base: Path, tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out.png"
    full = {**os.environ}
    full.pop("RESTOREGRAPH_DEBUG", None)
    args = ["restore", str(base / "in.png"), "-o", str(out), "--home", str(home)]
    for _attempt in range(3):
        proc = subprocess.Popen(
            [*CLI, *args],
            stderr=subprocess.PIPE,
            text=True,
            env=full,
            # SIGINT as a terminal gives it: a shell that starts jobs in the background (`&`
            # without job control) leaves it ignored, and Python then installs no handler
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert proc.stderr is not None
        seen = ""
        for line in proc.stderr:
            seen += line
            if "step 1 " in line:  # a step is checkpointed: Ctrl-C now
                proc.send_signal(signal.SIGINT)
                break
        seen += proc.stderr.read()
        code = proc.wait(timeout=600)
        if code == 0 and "done in" in seen:
            # on a loaded machine the whole (short) run can end before the signal lands: the
            # run is complete and rightly exits 0; start again from nothing
            shutil.rmtree(home)
            out.unlink()
            continue
        break
    assert code == 130, seen
    (run_id,) = Runner(home).list_runs()
    last = seen.strip().splitlines()[-1]
    assert "Traceback" not in seen
    assert last == (
        f"error: interrupted: run {run_id} stopped at its last checkpoint; continue it with "
        f"`restoregraph resume {run_id} --home {home}`"
    )
    assert not out.exists()
    resumed = cli("resume", run_id, "--home", home)
    assert resumed.returncode == 0, resumed.stderr
    assert sha(out) == sha(base / "restored.png")


def test_history_fits_an_80_column_pipe(base: Path) -> None:
    home = base / "home"
    proc = cli("history", RUN, "--home", home)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(ln) <= 80 for ln in lines), [len(ln) for ln in lines]
    steps = Runner(home).history(RUN)
    header = next(ln for ln in lines if "tool" in ln)
    for label in ("#", "tool", "decision", "severity", "quality", "time"):
        assert label in header
    rows = [ln for ln in lines if ln.split() and ln.split()[0].isdigit()]
    assert len(rows) == len(steps)  # one line per step, nothing wrapped
    for row, h in zip(rows, steps, strict=True):
        assert h["tool"] in row and h["status"] in row
    assert any(ln.startswith("severity: sum of perceived degradation levels") for ln in lines)
    assert str(home) not in proc.stdout and ".png" not in proc.stdout

    with_paths = cli("history", RUN, "--home", home, "--paths").stdout.splitlines()
    listed = [ln for ln in with_paths if " image: " in ln]
    assert len(listed) == len(steps)
    store = ImageStore(home / "store")
    for ln, h in zip(listed, steps, strict=True):
        path = store.path_for(h["output"]["sha256"])
        assert ln == f"step {h['index']} image: {path}" and path.exists()
