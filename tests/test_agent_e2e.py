"""The agent end to end on real pixels: real tools, the trained perception CNN, SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.settings import RunContext
from restoregraph.core.tasks import TASK_FOR_DEGRADATION
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import load_image, save_image
from restoregraph.metrics import balanced_scores, compute
from restoregraph.runner import Runner
from restoregraph.tools import builtin_registry
from restoregraph.tools.registry import ToolSpec

FR = ["psnr", "ssim", "ms_ssim", "gmsd", "haarpsi"]


def degraded_file(tmp_path: Path, clean: np.ndarray, spec: list, seed: int = 0) -> Path:
    img, _ = apply_mixture(clean, spec, seed=seed)
    return save_image(img, tmp_path / "in.png")


def balanced_gain(clean: np.ndarray, before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    cands = [compute(FR, before, clean), compute(FR, after, clean)]
    b = balanced_scores(cands)
    return b[0], b[1]


def test_rain_noise_jpeg_restored(tmp_path: Path, home: Path, astronaut_192: np.ndarray) -> None:
    spec = [("rain", 2), ("noise", 2), ("jpeg", 2)]
    src = degraded_file(tmp_path, astronaut_192, spec)
    out = tmp_path / "out.png"
    result = Runner(home).start(src, out, RunContext(planner="fixed", max_steps=8))
    assert out.exists() and result.report is not None and result.report.exists()
    tasks = {h["task"] for h in result.history if h["status"] == "accepted"}
    assert {"denoise", "dejpeg"} & tasks, result.history
    before, after = balanced_gain(astronaut_192, load_image(src), load_image(out))
    assert after > before
    html = result.report.read_text()
    assert "data:image/jpeg;base64" in html and result.state["plan_text"] in html


def test_bad_tool_rolled_back_and_replaced(
    tmp_path: Path, home: Path, chelsea_192: np.ndarray
) -> None:
    def make_worse(img: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(0)
        return np.clip(img + rng.normal(0, 0.25, img.shape), 0, 1).astype(np.float32)

    reg = builtin_registry()
    reg.register(
        ToolSpec(
            id="denoise.worse",
            task="denoise",
            description="adds noise",
            run=make_worse,
            cost=0.0,
            kind="learned",
        )
    )
    src = degraded_file(tmp_path, chelsea_192, [("noise", 3)])
    runner = Runner(home)
    ctx = RunContext(planner="fixed", max_steps=6)
    ctx.registry = reg
    result = runner.start(src, tmp_path / "out.png", ctx, run_id="badtool")
    steps = result.history
    assert steps[0]["tool"] == "denoise.worse" and steps[0]["status"] == "rolled_back"
    later = [h for h in steps[1:] if h["task"] == "denoise"]
    assert later and later[0]["tool"] != "denoise.worse"
    assert any(h["status"] == "accepted" for h in later)
    shown = subprocess.run(
        [sys.executable, "-m", "restoregraph", "history", "badtool", "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "rolled_back" in shown and "denoise.worse" in shown


def test_undo_forks_a_new_branch(tmp_path: Path, home: Path, astronaut_192: np.ndarray) -> None:
    src = degraded_file(tmp_path, astronaut_192, [("haze", 2), ("noise", 2), ("jpeg", 2)])
    runner = Runner(home)
    first = runner.start(src, tmp_path / "out.png", RunContext(max_steps=8), run_id="undo")
    accepted = [h for h in first.history if h["status"] == "accepted"]
    assert len(accepted) >= 2, first.history
    second = runner.undo("undo", 1)
    new_hist = second.history
    assert new_hist[: accepted[0]["index"]] == first.history[: accepted[0]["index"]]
    assert new_hist != first.history
    assert "undid" in second.state["abandoned"][-1]
    branches = runner.branches("undo")
    assert any(b == first.history for b in branches), "the old branch must stay readable"


def test_kill_and_resume_gives_same_image(tmp_path: Path, astronaut_192: np.ndarray) -> None:
    src = degraded_file(tmp_path, astronaut_192, [("noise", 2), ("jpeg", 2)])
    base = [sys.executable, "-m", "restoregraph"]
    env = dict(os.environ)
    ref_home, crash_home = tmp_path / "ref", tmp_path / "crash"
    subprocess.run(
        base
        + [
            "restore",
            str(src),
            "-o",
            str(tmp_path / "ref.png"),
            "--home",
            str(ref_home),
            "--run-id",
            "r",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    crashed = subprocess.run(
        base
        + [
            "restore",
            str(src),
            "-o",
            str(tmp_path / "res.png"),
            "--home",
            str(crash_home),
            "--run-id",
            "r",
        ],
        env={**env, "RESTOREGRAPH_CRASH_AFTER_STEPS": "1"},
        capture_output=True,
    )
    assert crashed.returncode == -9
    assert not (tmp_path / "res.png").exists()
    subprocess.run(
        base + ["resume", "r", "--home", str(crash_home)], check=True, env=env, capture_output=True
    )
    a, b = load_image(tmp_path / "ref.png"), load_image(tmp_path / "res.png")
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "mixture",
    [
        [("noise", 2), ("jpeg", 2)],
        [("low_light", 2), ("noise", 1)],
        [("motion_blur", 2), ("noise", 1), ("jpeg", 2)],
        [("rain", 2), ("noise", 1), ("jpeg", 2)],
        [("haze", 2), ("noise", 1), ("jpeg", 2)],
        [("haze", 2), ("rain", 2), ("noise", 1), ("jpeg", 2)],
        [("motion_blur", 2), ("rain", 2), ("noise", 1), ("jpeg", 2)],
    ],
)
def test_seven_mixtures(tmp_path: Path, home: Path, chelsea_192: np.ndarray, mixture: list) -> None:
    src = degraded_file(tmp_path, chelsea_192, mixture, seed=3)
    out = tmp_path / "out.png"
    result = Runner(home).start(src, out, RunContext(max_steps=8))
    assert out.exists()
    before, after = balanced_gain(chelsea_192, load_image(src), load_image(out))
    needed = {TASK_FOR_DEGRADATION[t] for t, _ in mixture}
    tried = {h["task"] for h in result.history}
    assert tried & needed, (mixture, result.history)
    assert after > before, (mixture, result.history)


def test_library_use_memory_checkpointer_and_stepwise(
    tmp_path: Path, chelsea_192: np.ndarray
) -> None:
    from restoregraph.graph import compile_graph, make_checkpointer

    src = degraded_file(tmp_path, chelsea_192, [("noise", 3)])
    graph = compile_graph(make_checkpointer("memory"))
    ctx = RunContext(mode="stepwise", max_steps=3, store_dir=str(tmp_path / "store"))
    out = graph.invoke({"image": str(src)}, {"configurable": {"thread_id": "t"}}, context=ctx)
    assert set(out) <= {"current", "history", "plan_text", "stop_reason", "perception"}
    assert out["history"] and Path(out["current"]["uri"]).exists()
    assert "pixels" not in str(out) and len(str(out)) < 20_000  # references only, no pixels


def test_as_tool_and_gc(tmp_path: Path, home: Path, chelsea_192: np.ndarray) -> None:
    from restoregraph.api import as_tool
    from restoregraph.store.images import ImageStore

    src = degraded_file(tmp_path, chelsea_192, [("noise", 3)])
    tool = as_tool(home=home, max_steps=3)
    assert tool.name == "restore_image"
    res = tool.invoke({"image_path": str(src)})
    assert Path(res["result_path"]).exists() and res["result_path"] != str(src)
    assert "Restored with" in res["summary"]
    res2 = tool.invoke({"image_path": str(src)})
    assert res2["result_path"] != res["result_path"]  # never overwrites an earlier result
    runner = Runner(home)
    stray = ImageStore(runner.store_dir).put(np.full((9, 9, 3), 0.5, np.float32))
    assert runner.collect_garbage() == 0  # too young: a run in progress may be about to use it
    assert runner.collect_garbage(min_age_s=0) == 1
    assert not Path(stray["uri"]).exists()
    assert runner.referenced_images() <= ImageStore(runner.store_dir).all_hashes()
