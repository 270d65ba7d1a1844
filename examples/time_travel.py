"""Time travel without a notebook: run, inspect every checkpoint, undo to step 1, compare.

python examples/time_travel.py
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
    clean = as_float_image(skimage.data.chelsea())
    degraded, _ = apply_mixture(clean, [("haze", 2), ("noise", 2), ("jpeg", 2)], seed=1)
    src = save_image(degraded, d / "in.png")
    runner = Runner(d / "home")
    first = runner.start(src, d / "out.png", RunContext(max_steps=8), run_id="demo")
    print("first branch:", [(h["tool"], h["status"]) for h in first.history])
    second = runner.undo("demo", 1)  # keep step 1, replan the rest
    print("after undo:  ", [(h["tool"], h["status"]) for h in second.history])
    print("branches kept in the checkpointer:", len(runner.branches("demo")))
