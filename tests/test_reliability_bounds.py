"""Resource bounds: the step budget holds whatever the planner proposes (up to the CLI's
maximum of 100 steps, within the graph's recursion limit), the planning rounds are bounded,
plans are capped at MAX_PLAN_STEPS, the settings refuse out-of-range budgets, and the image
store is bounded by ``gc`` (see also test_reliability_crash.py for gc beside a running run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restoregraph.cli.main import main
from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.settings import RunContext
from restoregraph.imageio import save_image
from restoregraph.perception.base import PerceptionResult
from restoregraph.planners.base import MAX_PLAN_STEPS, Plan, PlanRequest
from restoregraph.runner import Runner
from restoregraph.store.images import ImageStore
from restoregraph.tools.registry import ToolRegistry, ToolSpec
from tests.reliability_counts import count, reliability_counts  # noqa: F401

N_TOOLS = 120


class SteadyPerceiver:
    """Always 'noise level 3', so no step ever looks like an improvement (a fast test double
    for the CNN: the bound under test is the graph's, not perception's)."""

    name = "steady"
    types = ("noise",)

    def perceive(self, image: np.ndarray) -> PerceptionResult:
        return PerceptionResult(probs={"noise": [0.0, 0.0, 0.0, 1.0]}, detector=self.name)


def _shift(k: int) -> Any:
    def run(img: np.ndarray) -> np.ndarray:
        return np.clip(img + (k % 7 - 3) * 1e-3, 0.0, 1.0).astype(np.float32)

    return run


def many_tools() -> ToolRegistry:
    return ToolRegistry(
        ToolSpec(id=f"denoise.t{k:03d}", task="denoise", description="test", run=_shift(k))
        for k in range(N_TOOLS)
    )


class Endless:
    """Always proposes every tool not yet rolled back here: a planner that never stops."""

    name = "endless"

    def plan(self, request: PlanRequest) -> Plan:
        tools = [t for t in request.toolbox.ids() if not request.is_forbidden(t)]
        return Plan(steps=[{"task": "denoise", "tool": t} for t in tools[:MAX_PLAN_STEPS]])


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return save_image(rng.random((24, 24, 3), dtype=np.float32), tmp_path / "small.png")


@pytest.mark.parametrize(("mode", "max_steps"), [("stepwise", 1), ("plan", 7), ("stepwise", 100)])
def test_step_budget_holds_against_an_endless_planner(
    mode: str, max_steps: int, small: Path, tmp_path: Path
) -> None:
    ctx = RunContext(
        mode=mode, max_steps=max_steps, max_rounds=1000, quality_weight=0.0, max_tries=0
    )
    ctx.registry, ctx.planner_obj, ctx.perceiver = many_tools(), Endless(), SteadyPerceiver()
    result = Runner(tmp_path / "home").start(small, tmp_path / "o.png", ctx, run_id="endless")
    assert len(result.history) == max_steps
    assert result.state["stop_reason"] == f"step budget of {max_steps} reached"
    assert (tmp_path / "o.png").exists()
    count("bounds_checked")


def test_planning_rounds_are_bounded(small: Path, tmp_path: Path) -> None:
    """Every plan is rolled back: replanning stops at the round limit, not the step budget."""
    ctx = RunContext(mode="plan", max_steps=100, max_rounds=0, quality_weight=0.0)
    ctx.registry, ctx.planner_obj, ctx.perceiver = many_tools(), Endless(), SteadyPerceiver()
    result = Runner(tmp_path / "home").start(small, tmp_path / "o.png", ctx, run_id="rounds")
    assert result.state["stop_reason"] == "planning round limit reached"
    assert len(result.history) < 100
    count("bounds_checked")


@pytest.mark.parametrize("bad", [0, -1, 101, 10_000])
def test_out_of_range_budgets_are_refused(
    bad: int, small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RestoreGraphError):
        RunContext(max_steps=bad)
    argv = ["restore", str(small), "-o", str(tmp_path / "o.png"), "--max-steps", str(bad)]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--home", str(tmp_path / "h")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
    count("bounds_checked")


def test_gc_bounds_the_store(small: Path, tmp_path: Path) -> None:
    """After runs are deleted from the checkpoints, gc frees their images; referenced ones stay."""
    home = tmp_path / "home"
    runner = Runner(home)
    ctx = RunContext(mode="stepwise", max_steps=5, quality_weight=0.0, max_tries=0)
    ctx.registry, ctx.planner_obj, ctx.perceiver = many_tools(), Endless(), SteadyPerceiver()
    runner.start(small, tmp_path / "a.png", ctx, run_id="a")
    store = ImageStore(runner.store_dir)
    before = store.all_hashes()
    assert len(before) >= 5
    assert runner.collect_garbage(min_age_s=0) == 0  # all referenced
    runner.checkpointer.delete_thread("a")
    assert runner.collect_garbage(min_age_s=0) == len(before)
    assert store.all_hashes() == set()
    count("bounds_checked")
