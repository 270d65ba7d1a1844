"""The learned tools for real photos: ``deraindrop.nafnet`` and ``denoise.nafnet.real``.

Catalog entries, shipped weights (load, run, manifest), the fixed planner's deraindrop rule,
and a tiny training run of each (no ``../shared`` data: scikit-image's sample photos and a fake
PolyU folder)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from restoregraph.tools.learned import MANIFEST, WEIGHTS_DIR, learned_specs
from restoregraph.tools.learned.catalog import VARIANT_BY_ID, find_variant
from restoregraph.weightfiles import sha256_of

REAL_TOOLS = {"deraindrop.nafnet": "deraindrop", "denoise.nafnet.real": "denoise"}


def _entries() -> dict[str, dict]:
    return {e["id"]: e for e in json.loads(MANIFEST.read_text()) if e.get("id") in REAL_TOOLS}


@pytest.mark.parametrize("tool_id", sorted(REAL_TOOLS))
def test_variant_in_catalog(tool_id: str) -> None:
    v = VARIANT_BY_ID[tool_id]
    assert v.task == REAL_TOOLS[tool_id]
    assert v.severity == (1, 2, 3)
    assert v.arch == "nafnet" and v.scale == 1
    assert find_variant(v.task, v.variant or None) is v


def test_samplers_use_the_realistic_synthesis() -> None:
    rng = np.random.default_rng(0)
    drops = [VARIANT_BY_ID["deraindrop.nafnet"].sampler(rng) for _ in range(400)]
    assert all(s[0]["type"] == "raindrop" and s[0]["realistic"] for s in drops)
    assert {s[0]["level"] for s in drops} == {1, 2, 3}
    jpeg = [s[1] for s in drops if len(s) == 2]
    assert 0.12 < len(jpeg) / len(drops) < 0.28  # about a fifth compressed
    assert all(s["type"] == "jpeg" and 50 <= s["quality"] <= 90 for s in jpeg)
    noise = [VARIANT_BY_ID["denoise.nafnet.real"].sampler(rng) for _ in range(100)]
    assert all(len(s) == 1 and s[0]["type"] == "noise" and s[0]["realistic"] for s in noise)
    assert VARIANT_BY_ID["denoise.nafnet.real"].real_pairs == "polyu"


def test_degrade_steps_realistic_and_deterministic() -> None:
    from restoregraph.lab.training.tools import degrade_steps

    img = np.ascontiguousarray(data.astronaut()[::4, ::4], np.float32) / 255.0
    steps = [{"type": "raindrop", "level": 3, "realistic": True}, {"type": "jpeg", "quality": 60}]
    a = degrade_steps(img, steps, seed=5)
    assert a.shape == img.shape and a.dtype == np.float32
    assert np.array_equal(a, degrade_steps(img, steps, seed=5))
    assert np.abs(a - img).mean() > 0.005
    # without a realistic step: the older pools' apply_mixture, unchanged
    from restoregraph.degrade import apply_mixture

    plain = [{"type": "noise", "sigma": 10.0}]
    assert np.array_equal(degrade_steps(img, plain, 3), apply_mixture(img, plain, seed=3)[0])


@pytest.mark.parametrize("tool_id", sorted(REAL_TOOLS))
def test_shipped_weights_load_and_run(tool_id: str) -> None:
    specs = {s.id: s for s in learned_specs()}
    spec = specs[tool_id]
    assert spec.task == REAL_TOOLS[tool_id] and spec.kind == "learned"
    assert spec.severity == (1, 2, 3)
    img = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    out = spec.run(img)
    assert out.shape == img.shape
    assert np.isfinite(out).all()


@pytest.mark.parametrize("tool_id", sorted(REAL_TOOLS))
def test_manifest_entry_matches_the_file(tool_id: str) -> None:
    e = _entries()[tool_id]
    v = VARIANT_BY_ID[tool_id]
    path = WEIGHTS_DIR / e["file"]
    assert e["file"] == v.file and e["kind"] == "learned_tool" and e["task"] == v.task
    assert e["sha256"] == sha256_of(path)
    assert e["bytes"] == path.stat().st_size < 5_000_000
    assert e["command"].startswith(f"python -m restoregraph.lab.training.tools {v.task}")
    assert f"--seed {e['seed']}" in e["command"] and f"--steps {e['steps']}" in e["command"]
    assert e["seed"] == 0


def test_registered_and_preferred_by_the_fixed_planner() -> None:
    from restoregraph.planners.base import PlanRequest
    from restoregraph.planners.fixed import RULES, choose_tool
    from restoregraph.tools import builtin_registry

    reg = builtin_registry()
    assert set(REAL_TOOLS) <= set(reg.ids())
    for level in (1, 2, 3):
        assert RULES[("deraindrop", level)] == ("deraindrop.nafnet",)
        req = PlanRequest(perception={"raindrop": level}, toolbox=reg)
        spec = choose_tool(req, "deraindrop", level)
        assert spec is not None and spec.id == "deraindrop.nafnet"
    # denoising keeps its level-specific models (the real-noise tool is only registered)
    for level, expected in ((1, "low"), (2, "mid"), (3, "high")):
        req = PlanRequest(perception={"noise": level}, toolbox=reg)
        spec = choose_tool(req, "denoise", level)
        assert spec is not None and spec.id == f"denoise.nafnet.{expected}"


def _fake_train_data(root: Path) -> Path:
    from PIL import Image

    for sub, names in (("CBSD432", ("astronaut", "chelsea")), ("ImageNetSample", ("coffee",))):
        (root / sub).mkdir(parents=True)
        for n in names:
            Image.fromarray(getattr(data, n)()).save(root / sub / f"{n}.png")
    return root


def test_tiny_deraindrop_training(tmp_path: Path) -> None:
    from restoregraph.lab.training.tools import train
    from restoregraph.tools.loading import load_model

    t0 = time.time()
    v = VARIANT_BY_ID["deraindrop.nafnet"]
    entry = train(
        v,
        _fake_train_data(tmp_path / "train"),
        out_dir=tmp_path / "out",
        checkpoint=tmp_path / "ck.pt",
        steps=3,
        n_images=3,
        n_sources=4,
        per_source=2,
        batch_size=2,
        progress=False,
    )
    assert time.time() - t0 < 20
    assert entry["id"] == v.id and entry["steps"] == 3 and entry["crop"] == v.crop
    assert "320px crops" in entry["data"]
    assert entry["sha256"] == sha256_of(tmp_path / "out" / v.file)
    assert load_model(tmp_path / "out" / v.file).architecture.id == "NAFNet"


def test_real_pairs_come_from_the_fit_scenes_only(tmp_path: Path) -> None:
    from PIL import Image

    from restoregraph.lab.training.noise_fit import split_of_scene
    from restoregraph.lab.training.tools import real_pool

    polyu = tmp_path / "PolyU_real_noise_cropped"
    polyu.mkdir()
    scenes = [f"Cam_1_100_800_scene{k}" for k in range(12)]
    fit = [s for s in scenes if split_of_scene(s) == "fit"]
    held = [s for s in scenes if split_of_scene(s) == "heldout"]
    assert fit and held
    rng = np.random.default_rng(0)
    for s in scenes:
        clean = (rng.random((64, 72, 3)) * 180).astype(np.uint8)
        noisy = np.full_like(clean, 255) if s in held else clean  # held-out would show up
        Image.fromarray(clean).save(polyu / f"{s}_1_mean.JPG", quality=100)
        Image.fromarray(noisy).save(polyu / f"{s}_1_real.JPG", quality=100)
    v = VARIANT_BY_ID["denoise.nafnet.real"]
    xs, ys, desc = real_pool(v, tmp_path, seed=0, per_pair=3, crop=48)
    assert xs.shape == ys.shape == (3 * len(fit), 48, 48, 3)
    assert xs.max() < 250 and f"{len(fit)} PolyU 'fit' pairs" in desc
    again, _, _ = real_pool(v, tmp_path, seed=0, per_pair=3, crop=48)
    assert np.array_equal(xs, again)
