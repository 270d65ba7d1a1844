"""Golden runs: five fixed inputs and seeds, recorded before the architecture move.

For each case the plan text of every planning round, every step's tool and decision
(accepted / rolled back / failed) and the sha256 of the output pixels must stay identical
across refactors that promise the same behaviour. Record anew (only when a change is meant
to alter behaviour) with ``RESTOREGRAPH_RECORD_GOLDEN=1 pytest tests/test_golden_runs.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data

from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import load_image, save_image
from restoregraph.runner import Runner
from tests.conftest import crop

GOLDEN = Path(__file__).parent / "golden" / "runs.json"

# (name, sample, size, mixture, degradation seed, run settings)
CASES: list[tuple[str, str, int, list[tuple[str, int]], int, dict[str, Any]]] = [
    ("astronaut-noise-jpeg-embedded", "astronaut", 128, [("noise", 2), ("jpeg", 2)], 0, {}),
    (
        "chelsea-rain-noise-fixed",
        "chelsea",
        128,
        [("rain", 2), ("noise", 1)],
        1,
        {"planner": "fixed"},
    ),
    (
        "coffee-haze-jpeg-stepwise",
        "coffee",
        128,
        [("haze", 2), ("jpeg", 1)],
        2,
        {"mode": "stepwise", "seed": 3},
    ),
    (
        "astronaut-lowlight-noise-embedded",
        "astronaut",
        112,
        [("low_light", 2), ("noise", 1)],
        4,
        {"max_steps": 4},
    ),
    (
        "chelsea-motion-jpeg-random",
        "chelsea",
        112,
        [("motion_blur", 2), ("jpeg", 2)],
        5,
        {"planner": "random", "seed": 7},
    ),
]


def _sample(name: str) -> np.ndarray:
    return np.asarray(getattr(skimage.data, name)())


def run_case(
    tmp_path: Path,
    home: Path,
    sample: str,
    size: int,
    mixture: list[tuple[str, int]],
    seed: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    degraded, _ = apply_mixture(crop(_sample(sample), size), mixture, seed=seed)
    src = save_image(degraded, tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = Runner(home).start(src, out, RunContext(**settings))
    pixels = np.ascontiguousarray(load_image(out), dtype=np.float32)
    plans = [str(e.get("plan", "")) for e in result.events if e.get("event") == "plan"]
    return {
        "plan_text": result.state.get("plan_text", ""),
        "plans": plans,
        "decisions": [[h["tool"], h["status"]] for h in result.history],
        "stop_reason": result.state.get("stop_reason", ""),
        "output_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
    }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_golden_run(case: tuple[Any, ...], tmp_path: Path, home: Path) -> None:
    name, sample, size, mixture, seed, settings = case
    got = run_case(tmp_path, home, sample, size, mixture, seed, settings)
    if os.environ.get("RESTOREGRAPH_RECORD_GOLDEN") == "1":
        data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        data[name] = got
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(GOLDEN.read_text())[name]
    assert got["plan_text"] == want["plan_text"]
    assert got["plans"] == want["plans"]
    assert got["decisions"] == want["decisions"]
    assert got["stop_reason"] == want["stop_reason"]
    assert got["output_sha256"] == want["output_sha256"]
