"""No wasted calls: a task is tried at most ``max_tries`` times at one point of the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.settings import RunContext
from restoregraph.core.state import FailedAttempt
from restoregraph.imageio import save_image
from restoregraph.planners.base import PlanRequest
from restoregraph.planners.fixed import FixedPlanner
from restoregraph.runner import Runner
from restoregraph.tools import default_registry
from restoregraph.tools.registry import ToolRegistry, ToolSpec


def _request(failed: list[FailedAttempt], max_tries: int) -> PlanRequest:
    return PlanRequest(
        perception={"noise": 2, "jpeg": 2},
        toolbox=default_registry(),
        failed=failed,
        max_tries=max_tries,
    )


def test_a_task_is_skipped_after_max_tries_rollbacks_at_one_point() -> None:
    denoisers = [t.id for t in default_registry().for_task("denoise")]
    assert len(denoisers) > 2
    one = [FailedAttempt(tool=denoisers[0], position=0, reason="worse")]
    two = [*one, FailedAttempt(tool=denoisers[1], position=0, reason="worse")]
    assert _request(one, 2).tries("denoise") == 1 and not _request(one, 2).tries_exhausted(
        "denoise"
    )
    plan = FixedPlanner().plan(_request(one, 2))
    assert "denoise" in {s["task"] for s in plan.steps}  # a second try
    plan = FixedPlanner().plan(_request(two, 2))
    assert "denoise" not in {s["task"] for s in plan.steps}
    assert "dejpeg" in {s["task"] for s in plan.steps}  # the other task goes on
    assert "denoise (2 tools rolled back here, the limit of max_tries)" in plan.note
    # the limit counts per point of the run: at the next position denoise may be tried again
    later = [FailedAttempt(tool=t["tool"], position=1, reason=t["reason"]) for t in two]
    assert not _request(later, 2).tries_exhausted("denoise")
    # 0: no limit (every tool until all are rolled back)
    assert "denoise" in {s["task"] for s in FixedPlanner().plan(_request(two, 0)).steps}


def test_max_tries_bounds_a_real_run(tmp_path: Path, home: Path) -> None:
    """A requested task whose tools all make things worse is tried twice, not once per tool."""

    def ruin(image: np.ndarray) -> np.ndarray:
        return np.clip(image * 0.0 + 1.0, 0, 1).astype(np.float32)  # blows every pixel out

    reg = ToolRegistry(
        [ToolSpec(f"dehaze.ruin{i}", "dehaze", "blows the photo out", ruin) for i in range(4)]
    )
    rng = np.random.default_rng(0)
    src = save_image((0.2 + 0.5 * rng.random((64, 64, 3))).astype(np.float32), tmp_path / "a.png")
    ctx = RunContext(planner="fixed", required_tasks=("dehaze",), max_steps=8, max_tries=2)
    ctx.registry = reg
    result = Runner(home).start(src, None, ctx)
    tried = [h["tool"] for h in result.history if h["task"] == "dehaze"]
    assert len(tried) == 2 and all(h["status"] == "rolled_back" for h in result.history)
    try:
        RunContext(max_tries=-1)
    except RestoreGraphError as exc:
        assert "max_tries" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("max_tries=-1 accepted")
    ctx = RunContext(planner="fixed", required_tasks=("dehaze",), max_steps=8, max_tries=0)
    ctx.registry = reg
    unlimited = Runner(home).start(src, None, ctx)
    assert len(unlimited.history) == 4  # 0: no limit, every tool until all are rolled back


def test_cli_passes_max_tries_and_step_critic(tmp_path: Path, home: Path) -> None:
    import json

    from click.testing import CliRunner

    from restoregraph.cli.main import app as cli

    rng = np.random.default_rng(1)
    src = save_image((0.2 + 0.5 * rng.random((48, 48, 3))).astype(np.float32), tmp_path / "b.png")
    args = ["restore", str(src), "-o", str(tmp_path / "out.png"), "--home", str(home)]
    args += ["--planner", "fixed", "--max-steps", "2", "--max-tries", "1"]
    res = CliRunner().invoke(cli, [*args, "--step-critic", "off", "--run-id", "cli-tries"])
    assert res.exit_code == 0, res.output
    settings = json.loads((home / "runs" / "cli-tries" / "run.json").read_text())["settings"]
    assert settings["max_tries"] == 1 and settings["step_critic"] == "off"
    bad = CliRunner().invoke(cli, [*args, "--max-tries", "-1"])
    assert bad.exit_code == 2 and "max-tries" in bad.output
