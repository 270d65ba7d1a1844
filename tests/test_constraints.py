"""User plan constraints (RunContext.forbidden_tasks / required_tasks / strength): the planning
node and the planners honour them whatever perception or the planner says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import save_image
from restoregraph.nodes.execution import MILD_MIX, apply_strength
from restoregraph.nodes.planning import _ask, apply_constraints
from restoregraph.planners import get_planner
from restoregraph.planners._common import allowed_tools, needed_tasks
from restoregraph.planners.base import Plan, PlanRequest
from restoregraph.planners.fixed import choose_tool
from restoregraph.runner import Runner
from restoregraph.tools import builtin_registry


@pytest.fixture(scope="module")
def registry():
    return builtin_registry()


def request(registry, perception: dict[str, int], **constraints) -> PlanRequest:
    return PlanRequest(perception=perception, toolbox=registry, **constraints)


def test_forbidden_task_never_needed_nor_tooled(registry) -> None:
    req = request(registry, {"noise": 2, "jpeg": 1}, forbidden_tasks=("denoise",))
    assert needed_tasks(req) == {"dejpeg": 1}
    assert allowed_tools(req, "denoise") == []
    for name in ("fixed", "random", "explore"):
        plan = get_planner(name).plan(req)
        assert "denoise" not in {s["task"] for s in plan.steps}, name


def test_required_task_planned_without_perception(registry) -> None:
    req = request(registry, {"noise": 2}, required_tasks=("lowlight",))
    assert needed_tasks(req) == {"denoise": 2, "lowlight": 2}
    plan = get_planner("fixed").plan(req)
    assert [s["task"] for s in plan.steps] == ["denoise", "lowlight"]


def test_strength_overrides_level_and_picks_milder_or_stronger_tool(registry) -> None:
    mild = request(registry, {"blur": 3}, strength={"deblur": 1})
    assert needed_tasks(mild) == {"deblur": 1}
    tool = choose_tool(mild, "deblur", 1)
    assert tool is not None and max(tool.severity) < 3  # unsharp: not meant for heavy blur
    strong = request(registry, {"low_light": 1}, strength={"lowlight": 3})
    tool = choose_tool(strong, "lowlight", 3)
    assert tool is not None and 3 in tool.severity
    mild_light = choose_tool(request(registry, {}, strength={"lowlight": 1}), "lowlight", 1)
    assert mild_light is not None and mild_light.id == "lowlight.clahe"


class _Stubborn:
    """A planner that ignores the constraints (as an LLM might)."""

    name = "stubborn"

    def plan(self, request: PlanRequest) -> Plan:
        return Plan(
            steps=[
                {"task": "denoise", "tool": "denoise.bilateral"},
                {"task": "dejpeg", "tool": "dejpeg.deblock"},
            ]
        )


def test_planning_node_enforces_constraints_on_any_planner(registry) -> None:
    req = request(
        registry,
        {"noise": 2, "jpeg": 2},
        forbidden_tasks=("denoise",),
        required_tasks=("lowlight", "sr"),
    )
    plan = _ask(_Stubborn(), req)
    assert [s["task"] for s in plan.steps] == ["dejpeg", "lowlight", "sr"]
    # the required task goes to its place in the fixed order
    steps = apply_constraints([{"task": "sr", "tool": "sr.bicubic.x2"}], req)
    assert [s["task"] for s in steps] == ["lowlight", "sr"]


def test_apply_strength_blends_mild_steps_only() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((8, 8, 3), dtype=np.float32)
    b = np.clip(a + 0.3, 0, 1).astype(np.float32)
    np.testing.assert_allclose(apply_strength(a, b, 1), a + MILD_MIX * (b - a), atol=1e-6)
    assert apply_strength(a, b, 2) is b and apply_strength(a, b, 3) is b
    big = np.zeros((16, 16, 3), np.float32)
    assert apply_strength(a, big, 1) is big  # a resize is never blended


def test_context_validates_and_round_trips() -> None:
    ctx = RunContext(
        forbidden_tasks=["denoise"], required_tasks=("lowlight",), strength={"lowlight": 1}
    )
    back = RunContext.from_settings(ctx.settings())
    assert back.forbidden_tasks == ("denoise",) and back.required_tasks == ("lowlight",)
    assert back.strength == {"lowlight": 1}
    with pytest.raises(RestoreGraphError, match="unknown task"):
        RunContext(forbidden_tasks=("grain",))
    with pytest.raises(RestoreGraphError, match="both forbidden and required"):
        RunContext(forbidden_tasks=("denoise",), required_tasks=("denoise",))
    with pytest.raises(RestoreGraphError, match="strength"):
        RunContext(strength={"deblur": 5})


def test_graph_never_executes_a_forbidden_task(
    tmp_path: Path, home: Path, astronaut_192: np.ndarray
) -> None:
    img, _ = apply_mixture(astronaut_192, [("noise", 3), ("low_light", 2)], seed=1)
    src = save_image(img, tmp_path / "in.png")
    ctx = RunContext(forbidden_tasks=("denoise",), required_tasks=("dehaze",), max_steps=4)
    result = Runner(home).start(src, None, ctx)
    first = next(e for e in result.events if e["event"] == "perception")
    assert first["present"].get("noise", 0) >= 1  # perception does see the noise
    # (the low-light tool, trained on realistic under-exposure, removes much of it on its own)
    executed = {h["task"] for h in result.history}
    assert "denoise" not in executed
    assert "dehaze" in executed  # required although not perceived
