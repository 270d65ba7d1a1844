"""Classical tools: each one measurably undoes its own degradation on a real photo, and every
tool honours the contract (float32 RGB in [0, 1], same size or x scale, deterministic)."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity
from skimage.transform import resize

from restoregraph.core.errors import ToolError
from restoregraph.degrade import degrade
from restoregraph.tools import ToolRegistry, ToolSpec, run_tool
from restoregraph.tools.classical import (
    classical_specs,
    deblur,
    dejpeg,
    denoise,
    lowlight,
    register_classical,
)

SIDE = 192


@cache
def photo(name: str, side: int = SIDE) -> np.ndarray:
    """A centre-cropped, downscaled skimage sample photo as float32 RGB."""
    img = getattr(skimage.data, name)().astype(np.float32) / 255.0
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.ascontiguousarray(resize(img, (side, side), anti_aliasing=True), dtype=np.float32)


@cache
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    register_classical(reg)
    return reg


def tool(tool_id: str) -> ToolSpec:
    reg = registry()
    if tool_id not in reg:
        pytest.skip(f"{tool_id} is not available on this machine")
    return reg.get(tool_id)


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0.0, 1.0).astype(np.float64) - ref) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def ssim(a: np.ndarray, ref: np.ndarray) -> float:
    return float(structural_similarity(ref, a, channel_axis=2, data_range=1.0))


# tool id -> (photo, degradation type, explicit parameters, minimum PSNR gain in dB).
# Typical gains at 192-256 px are about twice the thresholds (see the module docstrings).
RESTORE_CASES: dict[str, tuple[str, str, dict[str, Any], float]] = {
    "denoise.nlmeans": ("astronaut", "noise", {"sigma": 25.0}, 4.0),
    "denoise.bilateral": ("astronaut", "noise", {"sigma": 25.0}, 4.0),
    "denoise.tv": ("astronaut", "noise", {"sigma": 25.0}, 3.0),
    "denoise.oidn": ("astronaut", "noise", {"sigma": 25.0}, 4.0),
    "deblur.wiener": ("chelsea", "blur", {"sigma": 2.0}, 2.0),
    "deblur.unsharp": ("chelsea", "blur", {"sigma": 1.5}, 0.8),
    "dejpeg.deblock": ("coffee", "jpeg", {"quality": 15}, 0.4),
    "dehaze.dcp": ("coffee", "haze", {"beta": 1.2, "airlight": 0.9}, 4.0),
    "lowlight.clahe": ("chelsea", "low_light", {"gamma": 2.2, "brightness": 0.4}, 3.0),
    "lowlight.gamma": ("chelsea", "low_light", {"gamma": 2.2, "brightness": 0.4}, 5.0),
    "lowlight.zerodce": ("chelsea", "low_light", {"gamma": 2.2, "brightness": 0.4}, 2.0),
    "derain.median": ("astronaut", "rain", {}, 1.5),
}
SR_CASES = {"sr.bicubic.x2": 2, "sr.lanczos.x2": 2, "sr.bicubic.x4": 4}


def test_every_registered_tool_has_a_restoration_case() -> None:
    assert set(registry().ids()) <= set(RESTORE_CASES) | set(SR_CASES)


@pytest.mark.parametrize("tool_id", sorted(RESTORE_CASES))
def test_tool_improves_psnr_on_its_degradation(tool_id: str) -> None:
    spec = tool(tool_id)
    name, kind, params, min_gain = RESTORE_CASES[tool_id]
    clean = photo(name)
    degraded, info = degrade(clean, kind, level=2 if not params else None, seed=3, **params)
    out = run_tool(spec, degraded)
    gain = psnr(out, clean) - psnr(degraded, clean)
    assert gain >= min_gain, f"{tool_id} on {info}: {gain:+.2f} dB (want >= {min_gain})"


def test_dehaze_and_lowlight_also_improve_ssim() -> None:
    for tool_id in ("dehaze.dcp", "lowlight.gamma", "lowlight.clahe"):
        name, kind, params, _ = RESTORE_CASES[tool_id]
        clean = photo(name)
        degraded, _ = degrade(clean, kind, seed=3, **params)
        out = run_tool(tool(tool_id), degraded)
        assert ssim(out, clean) > ssim(degraded, clean) + 0.05, tool_id


@pytest.mark.parametrize("tool_id", sorted(SR_CASES))
def test_sr_beats_nearest_neighbour(tool_id: str) -> None:
    spec = tool(tool_id)
    scale = SR_CASES[tool_id]
    assert spec.scale == scale
    clean = photo("chelsea", 256)
    small, _ = degrade(clean, "low_resolution", scale=scale)
    out = run_tool(spec, small)
    h, w = small.shape[:2]
    assert out.shape == (h * scale, w * scale, 3)
    ref = clean[: h * scale, : w * scale]
    nearest = np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)
    assert psnr(out, ref) > psnr(nearest, ref) + 1.0


@pytest.mark.parametrize("tool_id", sorted(RESTORE_CASES) + sorted(SR_CASES))
def test_tool_contract(tool_id: str) -> None:
    """Raw output (before run_tool's clipping) is float32 RGB in [0, 1], the right size, and
    the same on a second run; odd and tiny sizes and flat images do not break it."""
    spec = tool(tool_id)
    rng = np.random.default_rng(0)
    textured = photo("coffee", 64)[5:42, 3:56]  # 37 x 53: not a multiple of 8
    inputs = [
        textured,
        np.clip(textured + rng.normal(0, 0.05, textured.shape), 0, 1).astype(np.float32),
        photo("astronaut", 64)[:8, :13],  # the smallest side load_image accepts
        np.zeros((16, 24, 3), np.float32),
        np.ones((16, 24, 3), np.float32),
        np.full((16, 24, 3), 0.5, np.float32),
    ]
    for image in inputs:
        before = image.copy()
        out = spec.run(image.copy())
        h, w = image.shape[:2]
        assert isinstance(out, np.ndarray)
        assert out.dtype == np.float32
        assert out.shape == (h * spec.scale, w * spec.scale, 3)
        assert np.isfinite(out).all()
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert np.array_equal(image, before)
        again = run_tool(spec, image)
        assert np.array_equal(again, out), f"{tool_id} is not deterministic"


def test_run_tool_accepts_uint8() -> None:
    u8 = (photo("chelsea", 64) * 255).astype(np.uint8)
    out = run_tool(tool("dehaze.dcp"), u8)
    assert out.dtype == np.float32 and out.shape == (64, 64, 3)


# ---------------------------------------------------------------------------- the estimators


def test_noise_estimate_tracks_sigma() -> None:
    from restoregraph.tools.classical._common import estimate_noise

    clean = photo("chelsea")
    texture = estimate_noise(clean) * 255  # fine texture reads as a little noise
    assert texture < 3.0
    for sigma in (5.0, 15.0, 30.0):
        noisy, _ = degrade(clean, "noise", sigma=sigma, seed=1)
        estimate = estimate_noise(noisy) * 255
        assert np.sqrt(estimate**2 - texture**2) == pytest.approx(sigma, rel=0.15)


def test_blur_estimate_tracks_sigma() -> None:
    clean = photo("coffee", 256)
    for sigma in (1.0, 2.0, 3.0):
        blurred, _ = degrade(clean, "blur", sigma=sigma)
        total = deblur.estimate_blur_sigma(blurred)
        # the estimate includes the photo's own edge width (~0.7 px) in quadrature
        assert np.sqrt(max(total**2 - deblur.INTRINSIC_SIGMA**2, 0)) == pytest.approx(
            sigma, abs=0.35
        )


def test_wiener_leaves_a_sharp_photo_alone() -> None:
    clean = photo("astronaut")
    assert psnr(run_tool(tool("deblur.wiener"), clean), clean) > 40.0


def test_jpeg_quality_is_recovered() -> None:
    clean = photo("chelsea", 256)
    for quality in (12, 35, 75):
        compressed, _ = degrade(clean, "jpeg", quality=quality)
        y = dejpeg._rgb_to_ycc(compressed)[0]
        assert dejpeg.estimate_jpeg(y).quality in range(quality - 1, quality + 2)
    assert dejpeg.estimate_jpeg(dejpeg._rgb_to_ycc(clean)[0]).quality is None


def test_deblock_finds_a_shifted_grid_and_leaves_non_jpeg_alone() -> None:
    clean = photo("coffee", 256)
    compressed, _ = degrade(clean, "jpeg", quality=20)
    cropped, ref = compressed[3:, 5:], clean[3:, 5:]
    est = dejpeg.estimate_jpeg(dejpeg._rgb_to_ycc(cropped)[0])
    assert est.offset == (5, 3)
    assert psnr(dejpeg.deblock(cropped), ref) > psnr(cropped, ref) + 0.3
    assert np.array_equal(dejpeg.deblock(clean), clean)


def test_adaptive_gamma_inverts_a_power_law() -> None:
    clean = photo("coffee")
    dark, _ = degrade(clean, "low_light", gamma=2.5, brightness=0.35)
    white, exponent = lowlight.adaptive_gamma_exponent(dark)
    assert white == pytest.approx(0.35, rel=0.1)
    assert 1.0 / exponent == pytest.approx(2.5, rel=0.35)


# ---------------------------------------------------------------------- optional tools


def test_unavailable_optional_tools_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(denoise, "oidn_available", lambda: False)
    monkeypatch.setattr(lowlight, "zerodce_available", lambda: False)
    reg = ToolRegistry()
    register_classical(reg)
    assert "denoise.oidn" not in reg and "lowlight.zerodce" not in reg
    assert len(reg) == len(classical_specs(include_optional=False))


def test_missing_pyoidn_reads_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Availability is an install check (no import: registering costs nothing); a pyoidn that
    is installed but broken fails when the tool runs (tests/test_startup.py)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyoidn" else real(name, *a)
    )
    assert denoise.oidn_available.__wrapped__() is False


def test_missing_zerodce_weights_read_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lowlight, "_zerodce_weights", lambda: None)
    assert lowlight.zerodce_available.__wrapped__() is False


def test_a_failing_tool_becomes_a_tool_error() -> None:
    def broken(image: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    spec = ToolSpec(id="denoise.broken", task="denoise", description="", run=broken)
    with pytest.raises(ToolError, match="denoise.broken"):
        run_tool(spec, photo("chelsea", 32))
