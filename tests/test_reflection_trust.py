"""Reflection users can trust: a requested step is kept unless it damages the photo (newly
clipped pixels, a mean colour shift), and the reason names the check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import save_image
from restoregraph.metrics.safety import clipped_fraction, colour_shift, safety_problem
from restoregraph.nodes.reflection import judge_requested
from restoregraph.runner import Runner
from restoregraph.tools import builtin_registry
from restoregraph.tools.registry import ToolSpec


def test_clipping_and_colour_shift_measures() -> None:
    img = np.full((10, 10, 3), 0.5, np.float32)
    assert clipped_fraction(img) == 0.0
    img[:2] = 1.0  # 20 % blown
    img[9, :5] = 0.0  # 5 % crushed
    assert abs(clipped_fraction(img) - 0.25) < 1e-6
    grey = np.full((4, 4, 3), 0.4, np.float32)
    assert colour_shift(grey, grey * 2) < 1e-9  # brightness alone is no colour shift
    cyan = grey * np.array([0.5, 1.0, 1.0], np.float32)
    assert colour_shift(grey, cyan) > 0.08


def test_safety_problem_names_the_failed_check() -> None:
    rng = np.random.default_rng(0)
    before = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
    assert safety_problem(before, before * 1.1) == ""
    assert "clipped" in safety_problem(before, np.clip(before * 3, 0, 1))
    assert "colour" in safety_problem(before, before * np.array([1, 0.6, 0.6], np.float32))
    keep, why = judge_requested(before, np.clip(before * 3, 0, 1))
    assert not keep and "clipped" in why and "requested" in why


def test_requested_brightening_is_kept_and_a_blow_out_is_not(
    tmp_path: Path, home: Path, astronaut_192: np.ndarray
) -> None:
    dark, _ = apply_mixture(astronaut_192, [("low_light", 2)], seed=0)
    src = save_image(dark, tmp_path / "dark.png")
    reg = builtin_registry()
    reg.register(
        ToolSpec(
            id="lowlight.blowout",
            task="lowlight",
            description="multiplies by 12 (blows the highlights)",
            run=lambda img: np.clip(img * 12.0, 0.0, 1.0).astype(np.float32),
            cost=0.0,
            kind="classical",
        )
    )
    ctx = RunContext(planner="fixed", max_steps=2, required_tasks=("lowlight",))
    ctx.registry = reg.subset(["lowlight.blowout"])
    blown = Runner(home).start(src, tmp_path / "blown.png", ctx)
    step = blown.history[0]
    assert step["tool"] == "lowlight.blowout" and step["status"] == "rolled_back"
    assert "clipped" in step["reason"] and "requested" in step["reason"]
    ctx = RunContext(planner="fixed", max_steps=2, required_tasks=("lowlight",))
    ctx.registry = reg.subset(["lowlight.gamma"])
    kept = Runner(home).start(src, tmp_path / "kept.png", ctx)
    assert kept.history[0]["status"] == "accepted" and "requested" in kept.history[0]["reason"]


def test_colour_correcting_tasks_have_their_own_bound() -> None:
    """Undoing a cast is a low-light or dehazing tool's job: a shift within the casts the
    realistic synthesis models (0.12) is kept for those tasks, not for a denoiser."""
    rng = np.random.default_rng(0)
    img = (0.3 + 0.2 * rng.random((48, 48, 3))).astype(np.float32)
    warm = img * np.array([1.3, 1.0, 0.75], np.float32)  # a strong warm cast removed / added
    shift = colour_shift(img, warm)
    assert 0.08 < shift < 0.12
    assert judge_requested(img, warm, "lowlight")[0]
    assert judge_requested(img, warm, "dehaze")[0]
    kept, reason = judge_requested(img, warm, "denoise")
    assert not kept and "limit 0.08" in reason
    far = img * np.array([2.5, 1.0, 0.2], np.float32)
    kept, reason = judge_requested(img, np.clip(far, 0, 0.99), "lowlight")
    assert not kept and "limit 0.12" in reason
