"""Human in the loop: the run stops at its plan; we look at it, edit it, and let it run.

python examples/approve_plan.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import skimage.data

from restoregraph.degrade import apply_mixture
from restoregraph.graph import RunContext
from restoregraph.imageio import as_float_image, save_image
from restoregraph.runner import Runner

with tempfile.TemporaryDirectory() as tmp:
    d = Path(tmp)
    degraded, _ = apply_mixture(as_float_image(skimage.data.chelsea()), [("noise", 2)], seed=1)
    src = save_image(degraded, d / "in.png")
    runner = Runner(d / "home")
    ctx = RunContext(planner="fixed", approve="first", max_steps=4)
    result = runner.start(src, d / "out.png", ctx, run_id="demo")
    request = result.approval  # the interrupt's value: plan, perception, tools
    assert request is not None and result.history == []  # nothing has run yet
    print("proposed:", [s["tool"] for s in request["plan"]], "perceived:", request["perception"])
    # accept with True, reject with {"action": "reject"}; here: run a gentler denoiser instead
    result = runner.approve("demo", {"action": "edit", "plan": ["denoise.bilateral"]})
    print("ran:", [(h["tool"], h["status"]) for h in result.history])
    print("stop:", result.state["stop_reason"], "| output:", result.output)
