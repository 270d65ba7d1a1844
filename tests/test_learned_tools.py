"""Learned tools: every committed weight file loads through spandrel and improves its own
degradation on a real photo; tiled inference equals untiled; training is deterministic and
resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from restoregraph.degrade import apply_mixture
from restoregraph.lab.training.tools import degrade_steps
from restoregraph.metrics.fullref import psnr
from restoregraph.tools import builtin_registry
from restoregraph.tools.learned import MANIFEST, WEIGHTS_DIR, learned_entries, learned_specs
from restoregraph.tools.learned.catalog import VARIANT_BY_ID, VARIANTS, find_variant
from restoregraph.tools.learned.model import LearnedModel
from restoregraph.tools.loading import load_model
from restoregraph.tools.tiling import tiled_apply
from restoregraph.weightfiles import sha256_of

ENTRIES = learned_entries()
ENTRY_IDS = [e["id"] for e in ENTRIES]

# tool id -> (test photo, degradation it must undo). Mid-range settings of the tool's training.
CASES: dict[str, tuple[str, str | list[dict[str, object]]]] = {
    "denoise.nafnet.low": ("astronaut", [{"type": "noise", "sigma": 10}]),
    "denoise.nafnet.mid": ("chelsea", [{"type": "noise", "sigma": 25}]),
    "denoise.nafnet.high": ("astronaut", [{"type": "noise", "sigma": 45}]),
    "dejpeg.nafnet.mild": ("chelsea", [{"type": "jpeg", "quality": 40}]),
    "dejpeg.nafnet.severe": ("astronaut", [{"type": "jpeg", "quality": 15}]),
    "deblur.nafnet.motion": ("chelsea", "motion_blur:2"),  # meant for levels 2-3
    "deblur.nafnet.defocus": ("astronaut", "defocus:1"),
    "derain.nafnet": ("chelsea", "rain:2"),
    "dehaze.nafnet": ("astronaut", "haze:2"),
    "lowlight.nafnet": ("chelsea", "low_light:2"),
    "desnow.nafnet": ("astronaut", "snow:2"),
    "sr.compact.x2": ("chelsea", "low_resolution:1"),
    "hybrid.nafnet": ("astronaut", "haze:1+noise:2"),
    "deraindrop.nafnet": ("astronaut", [{"type": "raindrop", "level": 2, "realistic": True}]),
    "denoise.nafnet.real": ("chelsea", "noise:1"),
}


def photo(name: str, side: int = 128) -> np.ndarray:
    img = getattr(data, name)()
    h, w = img.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return img[top : top + side, left : left + side].astype(np.float32) / 255.0


def test_catalog_ids_are_valid_and_unique() -> None:
    reg = builtin_registry()
    assert len({v.id for v in VARIANTS}) == len(VARIANTS)
    assert set(CASES) == {v.id for v in VARIANTS}
    for v in VARIANTS:
        assert v.id.split(".")[0] == v.task
        assert find_variant(v.task, v.variant or None) is v
        if v.id in ENTRY_IDS:
            assert reg.get(v.id).kind == "learned"
    with pytest.raises(ValueError, match="choices"):
        find_variant("denoise", "extreme")
    with pytest.raises(ValueError, match="no learned tool"):
        find_variant("nosuchtask", None)


def test_manifest_entries_are_complete() -> None:
    entries = json.loads(MANIFEST.read_text())
    assert isinstance(entries, list)
    for e in ENTRIES:
        path = WEIGHTS_DIR / e["file"]
        for key in ("id", "architecture", "command", "data", "seed", "steps", "sha256", "bytes"):
            assert e.get(key) not in (None, ""), (e["id"], key)
        assert e["bytes"] == path.stat().st_size < 5_000_000
        assert e["sha256"] == sha256_of(path)
        assert e["id"] in VARIANT_BY_ID


def test_every_catalog_variant_has_committed_weights() -> None:
    missing = sorted(set(VARIANT_BY_ID) - set(ENTRY_IDS))
    assert not missing, f"no committed weights for {missing}"


def test_registry_acceptance_counts() -> None:
    reg = builtin_registry()
    assert len(reg) >= 20
    assert len(reg.tasks()) >= 9
    assert len(reg.for_task("denoise")) >= 4 and len(reg.for_task("dejpeg")) >= 2


@pytest.mark.parametrize("tool_id", ENTRY_IDS)
def test_weights_round_trip_and_improve_their_degradation(tool_id: str) -> None:
    entry = next(e for e in ENTRIES if e["id"] == tool_id)
    variant = VARIANT_BY_ID[tool_id]
    model = load_model(WEIGHTS_DIR / entry["file"])  # spandrel auto-detection
    assert model.architecture.id == variant.arch_name
    assert model.scale == variant.scale
    spec = builtin_registry().get(tool_id)
    assert (spec.task, spec.scale, spec.kind) == (variant.task, variant.scale, "learned")

    name, mixture = CASES[tool_id]
    clean = photo(name)
    degraded = degrade_steps(clean, mixture, seed=5)  # apply_mixture, or realistic steps
    out = spec.run(degraded)
    assert out.shape == (clean.shape[0], clean.shape[1], 3) and out.dtype == np.float32
    if variant.scale == 1:
        baseline = psnr(degraded, clean)
    else:  # super-resolution must beat bicubic upscaling
        baseline = psnr(builtin_registry().get("sr.bicubic.x2").run(degraded), clean)
    gain = psnr(out, clean) - baseline
    # "improves": the small CPU-trained models gain from +0.2 dB (JPEG) to several dB
    assert gain > 0.1, f"{tool_id}: {gain:+.2f} dB on {name} {mixture}"


@pytest.fixture(scope="module")
def denoiser() -> LearnedModel:
    specs = {s.id: s for s in learned_specs()}
    if "denoise.nafnet.mid" not in specs:
        pytest.skip("denoise.nafnet.mid weights not committed")
    run = specs["denoise.nafnet.mid"].run
    assert isinstance(run, LearnedModel)
    return run


def test_tiled_equals_untiled(denoiser: LearnedModel) -> None:
    img, _ = apply_mixture(photo("chelsea", 112)[:, :100], "noise:2", seed=1)
    whole = LearnedModel(denoiser.path, tile=512)(img)
    tiled = LearnedModel(denoiser.path, tile=48, overlap=24)(img)
    assert whole.shape == tiled.shape == img.shape
    diff = np.abs(whole - tiled)
    # NAFNet's channel attention pools over the whole tile, so tiles differ slightly.
    assert float(diff.mean()) < 0.01 and psnr(tiled, whole) > 32.0


def test_tiled_sr_keeps_scale() -> None:
    specs = {s.id: s for s in learned_specs()}
    if "sr.compact.x2" not in specs:
        pytest.skip("sr.compact.x2 weights not committed")
    path = Path(specs["sr.compact.x2"].source.replace("weights/", str(WEIGHTS_DIR) + "/"))
    img = photo("astronaut", 80)[:, :64]  # multiples of 16: no size padding anywhere
    whole = LearnedModel(path, tile=512)(img)
    tiled = LearnedModel(path, tile=32, overlap=16)(img)
    assert whole.shape == tiled.shape == (160, 128, 3)
    # The linear blend also weighs (lightly) pixels near a tile's cut edge, inside the model's
    # receptive field (19 px), so tiny tiles differ slightly from untiled inference.
    diff = np.abs(whole - tiled)
    assert float(diff.mean()) < 2e-3 and float(diff.max()) < 0.05
    assert psnr(tiled, whole) > 40.0


def test_tiling_logic_exact_and_bounded() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((203, 157, 3), dtype=np.float32)
    seen: list[tuple[int, int]] = []

    def double(tile: np.ndarray) -> np.ndarray:
        seen.append(tile.shape[:2])
        return np.repeat(np.repeat(tile, 2, axis=0), 2, axis=1)

    out = tiled_apply(double, img, tile=64, overlap=16, scale=2, multiple=16)
    assert out.shape == (406, 314, 3)
    np.testing.assert_allclose(out, double(img), atol=1e-6)
    assert max(max(s) for s in seen[:-1]) <= 64

    # a 4000 x 3000 photo: every tile is at most tile x tile, never the whole image
    big = np.zeros((3000, 4000, 3), np.float32)
    shapes: list[tuple[int, int]] = []

    def ident(tile: np.ndarray) -> np.ndarray:
        shapes.append(tile.shape[:2])
        return tile

    res = tiled_apply(ident, big, tile=512, overlap=32)
    assert res.shape == big.shape
    assert max(max(s) for s in shapes) <= 512 and len(shapes) >= 48


def _fake_train_data(root: Path) -> Path:
    from PIL import Image

    for sub, names in (("CBSD432", ("astronaut", "chelsea")), ("ImageNetSample", ("coffee",))):
        (root / sub).mkdir(parents=True)
        for n in names:
            Image.fromarray(getattr(data, n)()).save(root / sub / f"{n}.png")
    return root


def test_train_is_deterministic_resumable_and_loads(tmp_path: Path) -> None:
    from restoregraph.lab.training.tools import train

    train_data = _fake_train_data(tmp_path / "train")
    v = VARIANT_BY_ID["denoise.nafnet.low"]
    kw = dict(steps=4, n_images=3, n_sources=4, per_source=2, batch_size=2, progress=False)
    a = train(v, train_data, out_dir=tmp_path / "a", checkpoint=tmp_path / "a.ckpt", **kw)
    # interrupted after 2 steps, then resumed: the same weights as the uninterrupted run
    stopped = train(
        v, train_data, out_dir=tmp_path / "b", checkpoint=tmp_path / "b.ckpt", stop_after=2, **kw
    )
    assert stopped["stopped_at"] == 2 and not (tmp_path / "b" / v.file).exists()
    b = train(
        v, train_data, out_dir=tmp_path / "b", checkpoint=tmp_path / "b.ckpt", resume=True, **kw
    )
    assert a["sha256"] == b["sha256"]
    manifest = json.loads((tmp_path / "a" / "MANIFEST.json").read_text())
    assert [e["id"] for e in manifest] == [v.id]
    assert manifest[0]["sha256"] == sha256_of(tmp_path / "a" / v.file)
    model = load_model(tmp_path / "a" / v.file)
    assert model.architecture.id == "NAFNet"


@pytest.mark.slow
def test_4000x3000_photo_runs_in_bounded_memory() -> None:
    """A 12-megapixel photo through a learned tool: peak memory stays far below what untiled
    inference would need (~6 GB of NAFNet activations at this size)."""
    import resource

    specs = {s.id: s for s in learned_specs()}
    if "denoise.nafnet.low" not in specs:
        pytest.skip("denoise.nafnet.low weights not committed")
    img = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = specs["denoise.nafnet.low"].run(img)
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.shape == img.shape
    assert peak_growth_mb < 2000, f"peak memory grew by {peak_growth_mb:.0f} MB"


def test_training_device_choice() -> None:
    """``--device auto`` trains on a GPU when torch sees one, else on the CPU; a GPU that is
    not there, or an unknown device, is a clear error."""
    import torch

    from restoregraph.lab.training.tools import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="expected auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            resolve_device("cuda")
