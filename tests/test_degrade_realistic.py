"""Realistic degradation synthesis (restoregraph.degrade.realistic) and the noise fit's split.

Runs without ../shared: images come from scikit-image's samples.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.degrade.realistic import (
    ORDER,
    REALISTIC_TYPES,
    apply_realistic,
    camera_noise,
    depth_map,
    haze,
    realistic_mixture,
    sample_types,
    sky_mask,
)
from restoregraph.degrade.realistic import camera as camera_mod
from restoregraph.degrade.realistic._common import Sampler
from restoregraph.degrade.realistic.mixture import EXCLUSIVE
from restoregraph.degrade.realistic.noise_stats import measure_noise
from restoregraph.lab.training import noise_fit


def _sample(name: str, size: int) -> np.ndarray:
    from skimage import data

    pil = Image.fromarray(getattr(data, name)())
    side = min(pil.size)
    left, top = (pil.size[0] - side) // 2, (pil.size[1] - side) // 2
    pil = pil.crop((left, top, left + side, top + side)).resize(
        (size, size), Image.Resampling.LANCZOS
    )
    return np.asarray(pil, np.float32) / 255.0


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return _sample("astronaut", 128)


@pytest.fixture(scope="module")
def outdoor() -> np.ndarray:
    """The rocket on its pad: sky at the top, ground at the bottom."""
    return _sample("rocket", 128)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _grad_energy(img: np.ndarray) -> float:
    g = img.mean(axis=2)
    return float((np.diff(g, axis=0) ** 2).mean() + (np.diff(g, axis=1) ** 2).mean())


def _highfreq(img: np.ndarray) -> float:
    g = np.ascontiguousarray(img.mean(axis=2))
    return float((cv2.Laplacian(g, cv2.CV_32F) ** 2).mean())


def _dark_channel(img: np.ndarray) -> np.ndarray:
    return cv2.erode(np.ascontiguousarray(img.min(axis=2)), np.ones((7, 7), np.uint8))


# ------------------------------------------------------------------------ contract of each type


def test_types_are_the_perception_types() -> None:
    assert set(REALISTIC_TYPES) == set(PERCEPTION_TYPES)
    assert set(ORDER) == set(REALISTIC_TYPES)


@pytest.mark.parametrize("type_name", REALISTIC_TYPES)
def test_shape_dtype_range_and_determinism(type_name: str, portrait: np.ndarray) -> None:
    img = portrait[:96, :112]  # not square, odd-ish sizes
    for level in (1, 3):
        a = apply_realistic(img, type_name, level, _rng(5))
        b = apply_realistic(img, type_name, level, _rng(5))
        assert a.shape == img.shape and a.dtype == np.float32
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - img).mean() > 1e-3, f"{type_name} L{level} left the image unchanged"
    c = apply_realistic(img, type_name, 2, _rng(6))
    d = apply_realistic(img, type_name, 2, _rng(7))
    if type_name not in ("jpeg", "low_resolution"):  # few random draws: may coincide
        assert not np.array_equal(c, d)


def test_uint8_input_and_record(portrait: np.ndarray) -> None:
    img8 = (portrait * 255).astype(np.uint8)
    rec: dict[str, object] = {}
    out = apply_realistic(img8, "haze", 2, _rng(), record=rec, beta=1.3)
    assert out.dtype == np.float32 and out.shape == img8.shape
    assert rec["beta"] == 1.3 and "airlight_kind" in rec


def test_bad_arguments(portrait: np.ndarray) -> None:
    with pytest.raises(InputError):
        apply_realistic(portrait, "fog", 2, _rng())
    with pytest.raises(InputError):
        apply_realistic(portrait, "haze", 4, _rng())
    with pytest.raises(InputError):
        apply_realistic(portrait, "haze", 2, _rng(), bogus=1.0)


# ------------------------------------------------------------------------ expected directions


def test_haze_raises_dark_channel_and_is_thicker_at_the_top(outdoor: np.ndarray) -> None:
    out = haze(outdoor, _rng(1), 2)
    assert _dark_channel(out).mean() > _dark_channel(outdoor).mean() + 0.1
    third = outdoor.shape[0] // 3
    top_keep = out[:third].std() / outdoor[:third].std()
    bottom_keep = out[-third:].std() / outdoor[-third:].std()
    assert top_keep < bottom_keep  # more contrast lost far away / in the sky
    lift_top = (out[:third] - outdoor[:third]).mean()
    lift_bottom = (out[-third:] - outdoor[-third:]).mean()
    assert lift_top > lift_bottom
    heavy = haze(outdoor, _rng(1), 3)
    assert _dark_channel(heavy).mean() > _dark_channel(out).mean()


def test_sky_mask_finds_the_sky() -> None:
    from skimage import data

    # the cameraman: a bright, smooth sky above, a textured ground below
    gray = np.asarray(Image.fromarray(data.camera()).resize((128, 128)), np.float32) / 255.0
    scene = np.repeat(gray[..., None], 3, axis=2)
    mask = sky_mask(scene)
    assert mask[:16].mean() > 0.3
    assert mask[-32:].mean() < 0.05
    # the sky is farthest: the lowest transmission t = exp(-beta * depth)
    depth = depth_map(scene, Sampler("haze", _rng(2), 2, {}))
    sky = mask > 0.5
    assert depth[sky].mean() > 0.97
    assert depth[sky].mean() > depth[-32:].mean() + 0.2


def test_camera_noise_is_high_frequency_correlated_and_signal_dependent() -> None:
    # a smooth image, so the residual is noise rather than lost texture
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32) / 127.0
    smooth = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.2 * xx * yy], axis=2)
    out = camera_noise(smooth, _rng(2), 2)
    assert _highfreq(out) > 5 * _highfreq(smooth)
    stats = measure_noise(out, smooth)
    sigma = stats["std"] / 255.0
    iid = np.clip(smooth + sigma * _rng(3).standard_normal(smooth.shape), 0, 1)
    iid_stats = measure_noise(iid.astype(np.float32), smooth)
    assert iid_stats["box_ratio"] < 0.56
    assert stats["box_ratio"] > iid_stats["box_ratio"] + 0.1  # spatially correlated
    assert stats["channel_corr"] > 0.2  # and across colour channels
    # signal-dependent: the same camera settings on dark and bright flat patches
    dark, bright = (np.full((64, 64, 3), v, np.float32) for v in (0.1, 0.9))
    std_dark = (camera_noise(dark, _rng(4), 2) - dark).std()
    std_bright = (camera_noise(bright, _rng(4), 2) - bright).std()
    assert std_dark > 1.3 * std_bright
    heavier = camera_noise(smooth, _rng(2), 3)
    assert measure_noise(heavier, smooth)["std"] > stats["std"]


@pytest.mark.parametrize("type_name", ["blur", "motion_blur", "low_resolution"])
def test_blur_lowers_gradient_energy(type_name: str, portrait: np.ndarray) -> None:
    e1 = _grad_energy(apply_realistic(portrait, type_name, 1, _rng(3)))
    e3 = _grad_energy(apply_realistic(portrait, type_name, 3, _rng(3)))
    assert e3 < e1 < _grad_energy(portrait)


def test_low_light_lowers_the_mean(portrait: np.ndarray) -> None:
    means = [apply_realistic(portrait, "low_light", lvl, _rng(4)).mean() for lvl in (1, 2, 3)]
    assert means[0] < 0.85 * portrait.mean()
    assert means[2] < means[0]


@pytest.mark.parametrize("type_name", ["rain", "raindrop", "snow"])
def test_weather_changes_local_regions(type_name: str, outdoor: np.ndarray) -> None:
    out = apply_realistic(outdoor, type_name, 2, _rng(5))
    diff = np.abs(out - outdoor).max(axis=2)
    changed = float((diff > 0.1).mean())
    assert 0.003 < changed < 0.6  # some regions, not the whole frame
    assert np.percentile(diff, 99) > 2 * np.median(diff) + 0.05  # sparse, strong changes


def test_raindrops_show_blurred_refracted_content(portrait: np.ndarray) -> None:
    out = apply_realistic(portrait, "raindrop", 3, _rng(6))
    changed = np.abs(out - portrait).max(axis=2) > 0.08
    # inside the drops the image is smoother than the scene it covers
    assert _grad_energy(out * changed[..., None]) < _grad_energy(portrait * changed[..., None])


# ------------------------------------------------------------------------------- mixtures


def test_mixture_labels(portrait: np.ndarray) -> None:
    img = portrait[:64, :64]
    for seed in range(12):
        records: dict[str, dict[str, object]] = {}
        out, labels = realistic_mixture(img, _rng(seed), records=records)
        assert out.shape == img.shape and out.dtype == np.float32
        assert 1 <= len(labels) <= 3
        assert set(labels) <= set(REALISTIC_TYPES)
        assert all(level in (1, 2, 3) for level in labels.values())
        assert list(labels) == [t for t in ORDER if t in labels]
        assert not any(pair <= set(labels) for pair in EXCLUSIVE)
        # a record for every labelled type, and nothing else applied (bar the camera)
        applied = set(records) - {"camera"}
        camera = records["camera"]
        if "jpeg" in labels:
            assert "saves" in camera
            applied.add("jpeg")
        if "low_resolution" in labels:
            assert "resize" in camera
            applied.add("low_resolution")
        assert applied == set(labels)
    again, labels_again = realistic_mixture(img, _rng(11))
    np.testing.assert_array_equal(again, realistic_mixture(img, _rng(11))[0])


def test_mixture_explicit_types_and_effects(outdoor: np.ndarray) -> None:
    out, labels = realistic_mixture(outdoor, _rng(1), {"low_light": 3, "haze": 2})
    assert labels == {"haze": 2, "low_light": 3}  # applied in physical order
    assert out.mean() < outdoor.mean()
    hazy, labels = realistic_mixture(outdoor, _rng(1), ["haze"])
    assert list(labels) == ["haze"]
    assert _dark_channel(hazy).mean() > _dark_channel(outdoor).mean()
    _, labels = realistic_mixture(outdoor, _rng(1), ["jpeg", "rain"], camera=False)
    assert set(labels) == {"rain", "jpeg"}
    with pytest.raises(InputError):
        realistic_mixture(outdoor, _rng(1), ["haze", "haze"])


def test_sample_types_respects_exclusions() -> None:
    for seed in range(200):
        types = sample_types(_rng(seed), count=3)
        assert len(types) == 3
        assert not any(pair <= set(types) for pair in EXCLUSIVE)


# ------------------------------------------------------------------------ noise fit and params


def test_noise_params_defaults_without_json(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, portrait: np.ndarray
) -> None:
    missing = f"{tmp_path}/missing.json"
    params = camera_mod.noise_params(missing)
    assert params["gain"] == camera_mod.DEFAULT_NOISE_PARAMS["gain"]
    monkeypatch.setattr(camera_mod, "PARAMS_PATH", missing)
    rec: dict[str, object] = {}
    out = camera_noise(portrait[:48, :48], _rng(), 1, record=rec)
    lo, hi = camera_mod.DEFAULT_NOISE_PARAMS["gain"]["1"]
    assert lo <= float(rec["gain"]) <= hi  # type: ignore[arg-type]
    assert out.shape == (48, 48, 3)


def test_shipped_noise_params_are_consistent() -> None:
    if not camera_mod.PARAMS_PATH.is_file():
        pytest.skip("noise_params.json not fitted")
    data = json.loads(camera_mod.PARAMS_PATH.read_text())
    assert {"command", "split_rule", "scenes", "synthesis"} <= set(data)
    fit, held = set(data["scenes"]["fit"]), set(data["scenes"]["heldout"])
    assert fit and held and not fit & held
    assert all(noise_fit.split_of_scene(s) == "fit" for s in fit)
    assert all(noise_fit.split_of_scene(s) == "heldout" for s in held)
    gains = data["synthesis"]["gain"]
    assert gains["1"][0] < gains["1"][1] <= gains["2"][1] <= gains["3"][1]


def _synthetic_names(n_scenes: int) -> list[str]:
    names = []
    for i in range(n_scenes):
        scene = f"Cam{i % 5}_{i % 7}-5_125_{1600 * (1 + i % 4)}_scene{i}"
        for crop in range(1 + i % 4):
            for kind in ("real", "mean"):
                sep = "__" if crop == 2 else "_"  # the odd double underscore of the real set
                names.append(f"{scene}{sep}{crop + 3}_{kind}.JPG")
    return names


def test_noise_fit_split_keeps_scenes_together() -> None:
    assert noise_fit.scene_of("Canon5D2_5_160_3200_chair_11_real.JPG") == (
        "Canon5D2_5_160_3200_chair"
    )
    assert noise_fit.scene_of("NikonD800_6-3_125_5000_plant__4_mean.JPG") == (
        "NikonD800_6-3_125_5000_plant"
    )
    assert noise_fit.scene_of("notes.txt") is None
    names = _synthetic_names(300)
    split = noise_fit.split_names(names)
    again = noise_fit.split_names(list(reversed(names)))
    assert {k: set(v) for k, v in split.items()} == {k: set(v) for k, v in again.items()}
    side_of: dict[str, str] = {}
    for side, members in split.items():
        for name in members:
            scene = noise_fit.scene_of(name)
            assert scene is not None
            assert side_of.setdefault(scene, side) == side, f"{scene} on both sides"
    assert sum(len(v) for v in split.values()) == len(names)
    held = sum(1 for side in side_of.values() if side == "heldout") / len(side_of)
    assert 0.1 < held < 0.3


def test_polyu_noise_pairs_on_a_fake_folder(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / noise_fit.POLYU_DIR
    folder.mkdir()
    rng = _rng(0)
    names = _synthetic_names(12)
    for name in names:
        arr = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / name)
    fit = noise_fit.polyu_noise_pairs(folder.parent, "fit")
    held = noise_fit.polyu_noise_pairs(folder.parent, "heldout")
    assert len(fit) + len(held) == len(names) // 2
    assert not set(fit.scenes) & set(held.scenes)
    noisy, clean = fit[0]
    assert noisy.shape == clean.shape == (8, 8, 3) and noisy.dtype == np.float32
    with pytest.raises(ValueError):
        noise_fit.polyu_noise_pairs(folder.parent, "test")  # type: ignore[arg-type]
