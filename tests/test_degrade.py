"""Tests for restoregraph.degrade: every type x level, determinism, severity, mixtures, parsing."""

from __future__ import annotations

import json
import time
from functools import cache

import numpy as np
import pytest
from PIL import Image
from skimage import data

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import DEGRADATION_TYPES
from restoregraph.degrade import (
    DEGRADATIONS,
    DegradationInfo,
    apply_mixture,
    degrade,
    level_of,
    parse_mixture,
    step_seed,
)
from restoregraph.imageio import as_float_image

TYPES = list(DEGRADATION_TYPES)
LEVELS = (1, 2, 3)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    pil = Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS)
    return as_float_image(np.asarray(pil))


@cache
def astronaut() -> np.ndarray:
    return _resize(data.astronaut(), 128, 128)


@cache
def chelsea() -> np.ndarray:
    return _resize(data.chelsea(), 150, 100)


@cache
def coffee() -> np.ndarray:
    return _resize(data.coffee(), 144, 96)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def upsample(image: np.ndarray, height: int, width: int) -> np.ndarray:
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def expected_shape(shape: tuple[int, ...], info: DegradationInfo) -> tuple[int, int, int]:
    h, w = shape[:2]
    if info.type == "low_resolution":
        s = int(info.params["scale"])
        return max(1, h // s), max(1, w // s), 3
    return h, w, 3


# ------------------------------------------------------------------------------- registry / API


def test_registry_covers_every_declared_type():
    assert set(DEGRADATIONS) == set(DEGRADATION_TYPES)
    for name, spec in DEGRADATIONS.items():
        assert spec.type == name
        assert spec.level_params, f"{name} has no level-setting parameter"


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_every_type_and_level_runs(type_, level):
    img = chelsea()
    out, info = degrade(img, type_, level=level, seed=5)
    assert out.dtype == np.float32
    assert out.shape == expected_shape(img.shape, info)
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert info.type == type_ and info.level == level
    assert level_of(type_, **info.params) == level  # sampled params lie in the level's range
    restored = json.loads(json.dumps(info.to_dict()))
    assert DegradationInfo.from_dict(restored) == info
    if type_ != "low_resolution":
        assert not np.array_equal(out, img), f"{type_} L{level} changed nothing"


@pytest.mark.parametrize("type_", TYPES)
def test_deterministic_given_seed(type_):
    img = coffee()
    a, info_a = degrade(img, type_, seed=11)
    b, info_b = degrade(img, type_, seed=11)
    assert np.array_equal(a, b) and info_a == info_b
    if type_ != "low_resolution":  # its only parameter is fixed by the level
        c, info_c = degrade(img, type_, level=2, seed=12)
        d, info_d = degrade(img, type_, level=2, seed=13)
        assert info_c.params != info_d.params or not np.array_equal(c, d)
        assert not np.array_equal(c, d) or type_ == "jpeg"  # jpeg may draw the same quality


def test_level_none_is_sampled_from_all_levels():
    levels = {degrade(chelsea(), "noise", seed=s)[1].level for s in range(30)}
    assert levels == {1, 2, 3}


def test_global_rng_untouched():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    for type_ in TYPES:
        degrade(chelsea(), type_, seed=1)
    assert np.array_equal(np.random.get_state()[1], state)


# ------------------------------------------------------------------------------------ severity


@pytest.mark.parametrize("type_", TYPES)
def test_severity_grows_with_level(type_):
    for img in (astronaut(), coffee()):
        for seed in (0, 1):
            scores = []
            for level in LEVELS:
                out, _ = degrade(img, type_, level=level, seed=seed)
                if type_ == "low_resolution":
                    out = upsample(out, *img.shape[:2])
                scores.append(psnr(out, img))
            assert scores[0] > scores[1] > scores[2], f"{type_} seed {seed}: PSNR {scores}"


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0, 50.0])
def test_gaussian_noise_std_matches_sigma(sigma):
    grey = np.full((192, 192, 3), 0.5, dtype=np.float32)
    out, info = degrade(grey, "noise", sigma=sigma, seed=3)
    measured = float((out - grey).std()) * 255.0
    assert info.params["sigma"] == sigma
    assert abs(measured - sigma) <= 0.1 * sigma, (measured, sigma)


def test_explicit_parameter_sets_the_level():
    _, info = degrade(chelsea(), "noise", sigma=25)
    assert info.level == 2 and info.params == {"sigma": 25.0}
    _, info = degrade(chelsea(), "noise", level=1, sigma=40)
    assert info.level == 3
    _, info = degrade(chelsea(), "jpeg", quality=15)
    assert info.level == 3 and info.params["quality"] == 15
    # a parameter that does not set the level leaves it alone, and the other draws unchanged
    a, info_a = degrade(chelsea(), "rain", level=2, seed=4)
    b, info_b = degrade(chelsea(), "rain", level=2, seed=4, angle=0.0)
    assert info_b.level == 2 and info_b.params["angle"] == 0.0
    assert info_a.params["density"] == info_b.params["density"]
    assert not np.array_equal(a, b)


def test_level_of():
    assert level_of("noise", sigma=10) == 1
    assert level_of("noise", sigma=15) == 2
    assert level_of("noise", sigma=34.9) == 2
    assert level_of("noise", sigma=35) == 3
    assert [level_of("jpeg", quality=q) for q in (80, 30, 29, 20, 19, 10)] == [1, 1, 2, 2, 3, 3]
    assert [level_of("low_resolution", scale=s) for s in (2, 3, 4)] == [1, 2, 3]
    assert level_of("blur", sigma=0.2) == 1 and level_of("blur", sigma=4) == 3
    assert level_of("defocus", radius=6) == 3 and level_of("motion_blur", length=10) == 1
    assert level_of("haze", beta=1.2, airlight=0.9) == 2
    assert level_of("low_light", gamma=1.6, brightness=0.22) == 3  # the worst one counts
    with pytest.raises(InputError, match="sigma"):
        level_of("noise")
    with pytest.raises(InputError, match="unknown degradation type"):
        level_of("fog", beta=1.0)


# ------------------------------------------------------------------------------------ mixtures


def test_mixture_reproducible_and_order_matters():
    img = astronaut()
    spec = ["rain", ("noise", 2), {"type": "jpeg", "level": 3, "quality": 12}]
    a, infos_a = apply_mixture(img, spec, seed=9)
    b, infos_b = apply_mixture(img, spec, seed=9)
    assert np.array_equal(a, b) and infos_a == infos_b
    assert [i.type for i in infos_a] == ["rain", "noise", "jpeg"]
    assert infos_a[1].level == 2 and infos_a[2].params == {"quality": 12}
    assert a.dtype == np.float32 and a.shape == img.shape
    c, _ = apply_mixture(img, spec, seed=10)
    assert not np.array_equal(a, c)
    d, _ = apply_mixture(img, list(reversed(spec)), seed=9)
    assert not np.array_equal(a, d)
    # step i is seeded from (seed, i) alone: extending a mixture continues from its output
    e, _ = apply_mixture(img, spec[:2], seed=9)
    f, infos_f = apply_mixture(img, spec[:2] + [("haze", 2)], seed=9)
    g, info_g = degrade(e, "haze", level=2, seed=step_seed(9, 2))
    assert np.array_equal(f, g) and infos_f[2] == info_g
    # the same type at two positions of a mixture draws different randomness
    _, twice = apply_mixture(img, ["noise", "noise"], seed=9)
    assert twice[0] != twice[1]
    # replaying the recorded infos (or their dicts) reproduces the output
    h, infos_h = apply_mixture(img, infos_a, seed=9)
    assert np.array_equal(a, h) and infos_h == infos_a
    k, _ = apply_mixture(img, [i.to_dict() for i in infos_a], seed=9)
    assert np.array_equal(a, k)


def test_mixture_accepts_parsed_text_and_shrinks_with_low_resolution():
    img = chelsea()
    a, infos = apply_mixture(img, parse_mixture("haze+low_resolution:1,noise:1"), seed=2)
    b, _ = apply_mixture(img, "haze+low_resolution:1,noise:1", seed=2)
    assert np.array_equal(a, b)
    assert a.shape == (img.shape[0] // 2, img.shape[1] // 2, 3)
    assert [i.level for i in infos][1:] == [1, 1]
    out, none = apply_mixture(img, [], seed=0)
    assert none == [] and np.array_equal(out, img)


def test_mixture_rejects_bad_steps_before_work():
    with pytest.raises(InputError, match="valid types"):
        apply_mixture(chelsea(), ["noise", "fog"])
    with pytest.raises(InputError, match="level"):
        apply_mixture(chelsea(), [("noise", 4)])
    with pytest.raises(InputError):
        apply_mixture(chelsea(), [{"level": 2}])
    with pytest.raises(InputError):
        apply_mixture(chelsea(), [42])


def test_parse_mixture():
    assert parse_mixture("rain+noise:2+jpeg") == [("rain", None), ("noise", 2), ("jpeg", None)]
    assert parse_mixture("rain, noise:2 ,jpeg") == [("rain", None), ("noise", 2), ("jpeg", None)]
    assert parse_mixture("Low-Light:3+motion_blur") == [("low_light", 3), ("motion_blur", None)]
    assert parse_mixture("") == []
    with pytest.raises(InputError, match="valid types"):
        parse_mixture("rain+fog")
    with pytest.raises(InputError, match="level"):
        parse_mixture("noise:5")
    with pytest.raises(InputError, match="level"):
        parse_mixture("noise:high")


# ------------------------------------------------------------------------------ bad arguments


def test_bad_type_lists_valid_types():
    with pytest.raises(InputError) as exc:
        degrade(chelsea(), "nois")
    message = str(exc.value)
    assert "did you mean 'noise'" in message
    assert all(t in message for t in DEGRADATION_TYPES)


@pytest.mark.parametrize("level", [0, 4, -1, 2.5, "2", True])
def test_bad_level(level):
    with pytest.raises(InputError, match="level"):
        degrade(chelsea(), "noise", level=level)


@pytest.mark.parametrize(
    "params",
    [{"sigmaa": 3}, {"sigma": -1}, {"sigma": float("nan")}, {"sigma": "high"}],
)
def test_bad_params(params):
    with pytest.raises(InputError):
        degrade(chelsea(), "noise", **params)


def test_bad_params_other_types():
    with pytest.raises(InputError, match="integer"):
        degrade(chelsea(), "jpeg", quality=20.5)
    with pytest.raises(InputError, match="seed"):
        degrade(chelsea(), "noise", seed=-1)


# ------------------------------------------------------------------------------- input kinds


@pytest.mark.parametrize("type_", TYPES)
def test_uint8_odd_and_grey_inputs(type_):
    rgb8 = data.astronaut()[100:117, 200:223]  # uint8, 17 x 23
    grey = data.camera()[::16, ::16]  # uint8, 2-D, 32 x 32
    for img in (rgb8, grey, grey.astype(np.float64) / 255.0):
        for level in LEVELS:
            out, info = degrade(img, type_, level=level, seed=level)
            assert out.dtype == np.float32
            assert out.shape == expected_shape(img.shape, info)
            assert out.min() >= 0.0 and out.max() <= 1.0
    a, _ = degrade(rgb8, type_, level=2, seed=1)
    b, _ = degrade(as_float_image(rgb8), type_, level=2, seed=1)
    assert np.array_equal(a, b)  # uint8 is just converted


def test_fast_on_512():
    img = data.astronaut()  # 512 x 512 uint8
    for type_ in TYPES:
        degrade(img, type_, level=3, seed=0)  # warm-up (kernel caches, imports)
        start = time.perf_counter()
        degrade(img, type_, level=3, seed=1)
        elapsed = time.perf_counter() - start
        assert elapsed < 0.5, f"{type_} took {elapsed:.2f} s on 512x512"


def test_contact_sheet(tmp_path):
    from restoregraph.degrade.sheet import contact_sheet

    path = contact_sheet(_resize(data.chelsea(), 48, 32), tmp_path / "sheet.png", seed=1)
    with Image.open(path) as sheet:
        assert sheet.format == "PNG"
        assert sheet.width >= 4 * 48 and sheet.height >= len(TYPES) * 32
