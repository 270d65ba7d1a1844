"""Camera noise through a simulated raw pipeline, and the camera / web pipeline on top.

``camera_noise``: the sRGB image is "unprocessed" (inverse tone curve -> linear, inverse colour
matrix and white balance -> raw), mosaicked to a Bayer pattern, given Poisson-Gaussian noise
(shot variance ``gain * x`` plus read variance, the read noise tied to the gain as in real
sensors: log read var = 2.18 log gain + 1.2 + N(0, 0.26), Brooks et al. 2019), demosaicked with
OpenCV (bilinear or edge-aware), white-balanced, colour-corrected, tone-mapped, lightly
denoised (chroma more than luma) and sharpened, and saved as JPEG (quality 70-95). The noise is
therefore signal-dependent (strongest in mid-tones after the tone curve), colour-correlated and
spatially correlated, like a real camera's.

The gain ranges per level come from ``noise_params.json`` (fitted on real noisy/clean pairs by
``python -m restoregraph.lab.training.noise_fit``); without the file the defaults below apply.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from restoregraph.degrade.realistic._common import (
    Sampler,
    ToneCurve,
    as_image,
    finish,
    gaussian,
    jpeg,
    resize,
)

PARAMS_PATH = Path(__file__).with_name("noise_params.json")

# Used when noise_params.json is absent or unreadable. Gains are linear-light shot-noise
# variances per unit signal (raw, before white balance); level 1 ~ real PolyU-like camera noise
# (sRGB std ~2-6/255), level 3 ~ high-ISO night shots.
DEFAULT_NOISE_PARAMS: dict[str, Any] = {
    "gain": {"1": [4e-4, 3e-3], "2": [3e-3, 1.2e-2], "3": [1.2e-2, 4e-2]},
    "denoise": [0.2, 0.8],
    "chroma_denoise": [0.3, 1.0],
    "sharpen": [0.0, 0.5],
    "jpeg_quality": [70, 95],
}

# A typical camera -> sRGB colour correction matrix (rows sum to 1); the pipeline uses a random
# blend of it with the identity, so colour noise is correlated across channels as in real JPEGs.
_CCM = np.array(
    [[1.65, -0.50, -0.15], [-0.22, 1.52, -0.30], [0.02, -0.52, 1.50]],
    dtype=np.float32,
)

# Bayer pattern (colour at (0,0), (0,1), (1,0), (1,1)) -> OpenCV demosaicing code suffix.
_BAYER = {"RGGB": "BG", "BGGR": "RG", "GRBG": "GB", "GBRG": "GR"}
_CHANNEL = {"R": 0, "G": 1, "B": 2}
_BLACK, _WHITE = 2048.0, 60000.0


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    params = json.loads(json.dumps(DEFAULT_NOISE_PARAMS))
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return params
    fitted = data.get("synthesis", data) if isinstance(data, dict) else {}
    for key in DEFAULT_NOISE_PARAMS:
        if key in fitted:
            params[key] = fitted[key]
    return params


def noise_params(path: str | Path | None = None) -> dict[str, Any]:
    """The noise synthesis ranges: ``gain`` per level ("1".."3" -> [lo, hi]), ``denoise``,
    ``sharpen`` and ``jpeg_quality`` ([lo, hi]). Read from ``noise_params.json`` (or ``path``);
    the defaults fill in whatever it lacks, and all of them apply when it is absent."""
    return _load(str(path if path is not None else PARAMS_PATH))


def _gain_ranges(params: dict[str, Any]) -> dict[int, tuple[float, float]]:
    return {
        lvl: (float(params["gain"][str(lvl)][0]), float(params["gain"][str(lvl)][1]))
        for lvl in (1, 2, 3)
    }


def _span(values: Any) -> dict[int, tuple[float, float]]:
    lo, hi = float(values[0]), float(values[1])
    return {1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}


def _span_int(lo: int, hi: int) -> dict[int, tuple[int, int]]:
    return {1: (lo, hi), 2: (lo, hi), 3: (lo, hi)}


def mosaic(raw: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W, 3) -> (H, W) Bayer mosaic with ``pattern`` (e.g. "RGGB")."""
    out = np.empty(raw.shape[:2], raw.dtype)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = raw[dy::2, dx::2, _CHANNEL[pattern[k]]]
    return out


def demosaic(bayer: np.ndarray, pattern: str, method: str = "bilinear") -> np.ndarray:
    """OpenCV demosaicing of a float mosaic in roughly [0, 1] (via 16 bits with a black level,
    so negative noise survives)."""
    code = f"COLOR_Bayer{_BAYER[pattern]}2RGB" + ("_EA" if method == "edge_aware" else "")
    raw16 = np.clip(np.rint(bayer * (_WHITE - _BLACK) + _BLACK), 0, 65535).astype(np.uint16)
    rgb = cv2.demosaicing(raw16, getattr(cv2, code))
    return ((rgb.astype(np.float32) - _BLACK) / (_WHITE - _BLACK)).astype(np.float32)


def poisson_gaussian(
    raw: np.ndarray, rng: np.random.Generator, gain: float, read_var: float
) -> np.ndarray:
    """Shot noise (Poisson counts of ``raw / gain`` photons, times gain) plus gaussian read
    noise of variance ``read_var``."""
    x = np.clip(raw, 0.0, None).astype(np.float64)
    shot = rng.poisson(x / gain) * gain
    read = rng.standard_normal(raw.shape) * np.sqrt(read_var)
    return (shot + read).astype(np.float32)


def read_variance(gain: float, offset: float) -> float:
    return float(np.exp(2.18 * np.log(gain) + 1.20 + offset))


def _in_camera_processing(
    image: np.ndarray, denoise: float, chroma: float, sharpen: float, noise_sigma: float
) -> np.ndarray:
    """In-camera noise reduction and sharpening, in YCrCb: chroma is blurred strongly (colour
    noise becomes luminance-like, as in real JPEGs), luma gets an edge-preserving bilateral
    filter tuned to the expected noise level ``noise_sigma`` (what is left is low-frequency,
    blotchy grain), then an unsharp mask."""
    ycc = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    if chroma > 0:
        cr = gaussian(cr, 4.0 * chroma)
        cb = gaussian(cb, 4.0 * chroma)
    if denoise > 0:
        smooth = cv2.bilateralFilter(
            np.ascontiguousarray(y),
            d=7,
            sigmaColor=float(max(noise_sigma, 1e-3) * (1.0 + 2.0 * denoise)),
            sigmaSpace=float(0.8 + 1.5 * denoise),
        )
        y = (1.0 - denoise) * y + denoise * np.asarray(smooth, np.float32)
    if sharpen > 0:
        y = y + np.float32(sharpen) * (y - gaussian(y, 1.0))
    out = cv2.cvtColor(np.stack([y, cr, cb], axis=2).astype(np.float32), cv2.COLOR_YCrCb2RGB)
    return np.asarray(out, np.float32)


def raw_pipeline(
    image: np.ndarray,
    s: Sampler,
    gain: float,
    *,
    exposure: float = 1.0,
    cast: np.ndarray | None = None,
) -> np.ndarray:
    """Unprocess ``image``, expose it by ``exposure``, add sensor noise at ``gain``, process it
    back (demosaic, white balance with an optional colour ``cast``, CCM, tone curve, in-camera
    noise reduction and sharpening, JPEG). Draws its own nuisance parameters from ``s``."""
    params = noise_params()
    contrast = s.uniform("tone_contrast", _span([0.0, 0.5]))
    curve = ToneCurve(contrast=contrast)
    ccm_amount = s.uniform("ccm_amount", _span([0.3, 1.0]))
    wb_r = s.uniform("wb_red", _span([1.7, 2.5]))
    wb_b = s.uniform("wb_blue", _span([1.3, 2.0]))
    pattern = s.choice("bayer", tuple(_BAYER))
    method = s.choice("demosaic", ("bilinear", "edge_aware"))
    read_offset = s.uniform("read_offset", _span([-0.5, 0.5]))
    denoise = s.uniform("denoise", _span(params["denoise"]))
    chroma = s.uniform("chroma_denoise", _span(params["chroma_denoise"]))
    sharpen = s.uniform("sharpen", _span(params["sharpen"]))
    q_lo, q_hi = (int(q) for q in params["jpeg_quality"])
    quality = s.integer("jpeg_quality", {1: (q_lo, q_hi), 2: (q_lo, q_hi), 3: (q_lo, q_hi)})
    subsampling = s.choice("jpeg_subsampling", (2, 1, 0), p=(0.7, 0.15, 0.15))

    ccm = (1.0 - ccm_amount) * np.eye(3, dtype=np.float32) + ccm_amount * _CCM
    wb = np.array([wb_r, 1.0, wb_b], dtype=np.float32)
    lin = curve.inverse(image) * np.float32(exposure)
    cam = lin @ np.linalg.inv(ccm).T.astype(np.float32)
    raw = np.clip(cam / wb, 0.0, 1.0)
    bayer = mosaic(raw, pattern)
    noisy = poisson_gaussian(bayer, s.rng, gain, read_variance(gain, read_offset))
    rgb = demosaic(noisy, pattern, method)
    if cast is not None:
        wb = wb * cast
    lin_out = np.clip(rgb * wb, 0.0, None) @ ccm.T
    out = curve.forward(np.clip(lin_out, 0.0, 1.0))
    # the noise std expected at mid-grey after the tone curve (sets the NR filter's strength)
    sigma = float(np.sqrt(gain * 0.2 + read_variance(gain, read_offset))) * 1.2 / exposure**0.5
    out = _in_camera_processing(out, denoise, chroma, sharpen, sigma)
    return jpeg(finish(out), quality, subsampling)


def camera_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Real-camera-like noise (see the module docstring). ``gain``: linear shot-noise variance
    per unit signal, log-uniform in the level's fitted range."""
    img = as_image(image)
    s = Sampler("noise", rng, level, overrides)
    gain = s.uniform("gain", _gain_ranges(noise_params()), log=True)
    out = raw_pipeline(img, s, gain)
    s.done(record)
    return finish(out)


# ------------------------------------------------------------------------ the camera pipeline

_JPEG_QUALITY = {1: (40, 65), 2: (25, 40), 3: (10, 25)}
_SCALE = {1: (1.5, 2.0), 2: (2.0, 3.0), 3: (3.0, 4.0)}


def jpeg_artifacts(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """One or two JPEG re-saves (as images passed around the web), the last at the level's
    quality (40-65, 25-40, 10-25); an earlier save is at a higher quality."""
    img = as_image(image)
    s = Sampler("jpeg", rng, level, overrides)
    out = _jpeg_saves(img, s)
    s.done(record)
    return finish(out)


def _jpeg_saves(img: np.ndarray, s: Sampler) -> np.ndarray:
    quality = s.integer("quality", _JPEG_QUALITY)
    saves = s.integer("saves", {1: (1, 2), 2: (1, 2), 3: (1, 2)})
    first = int(min(95, quality + 5 + s.integer("first_quality_step", _span_int(0, 30))))
    subsampling = s.choice("subsampling", (2, 1, 0), p=(0.75, 0.1, 0.15))
    if saves == 2:
        img = jpeg(img, first, 2)
    return jpeg(img, quality, subsampling)


def low_resolution(
    image: np.ndarray,
    rng: np.random.Generator,
    level: int = 2,
    *,
    keep_size: bool = True,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Downscale by a factor of 1.5-2, 2-3 or 3-4 with a random kernel (area, bilinear, bicubic,
    nearest after a random pre-blur) and, with ``keep_size``, upscale back with a random
    interpolation (as an upsampled web image); otherwise return the small image."""
    img = as_image(image)
    s = Sampler("low_resolution", rng, level, overrides)
    out = _down_up(img, s, keep_size)
    s.done(record)
    return finish(out)


def _down_up(img: np.ndarray, s: Sampler, keep_size: bool) -> np.ndarray:
    h, w = img.shape[:2]
    factor = s.uniform("factor", _SCALE)
    pre_blur = s.uniform("pre_blur", _span([0.0, 0.6]))
    down = s.choice("down", ("area", "bilinear", "bicubic", "nearest"), p=(0.35, 0.25, 0.3, 0.1))
    up = s.choice("up", ("bilinear", "bicubic", "lanczos", "nearest"), p=(0.35, 0.4, 0.15, 0.1))
    small_w, small_h = max(8, round(w / factor)), max(8, round(h / factor))
    blurred = gaussian(img, pre_blur * factor) if pre_blur > 0 else img
    small = resize(blurred, small_w, small_h, down)
    if not keep_size:
        return small
    return resize(small, w, h, up)


def camera_pipeline(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    jpeg_level: int | None = None,
    resize_level: int | None = None,
    record: dict[str, Any] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """A random camera / sharing pipeline: white-balance jitter, a tone-curve tweak, then
    optionally a down/up resize (``resize_level``), then JPEG: 1-2 re-saves at
    ``jpeg_level``'s quality, or one high-quality save (88-97, no visible artefacts) when
    ``jpeg_level`` is None."""
    img = as_image(image)
    s = Sampler("camera_pipeline", rng, jpeg_level or 1, overrides)
    wb = np.array(
        [s.uniform("wb_red", _span([0.93, 1.07])), 1.0, s.uniform("wb_blue", _span([0.93, 1.07]))],
        dtype=np.float32,
    )
    contrast = s.uniform("contrast", _span([-0.12, 0.2]))
    gamma = s.uniform("gamma", _span([0.9, 1.1]))
    lin = ToneCurve().inverse(img) * wb
    out = ToneCurve(contrast=max(contrast, 0.0), gamma=gamma).forward(
        lin / max(1.0, float(wb.max()))
    )
    if contrast < 0:  # a flatter curve: blend towards mid-grey
        out = out * np.float32(1.0 + contrast) - np.float32(contrast * 0.5)
    if resize_level is not None:
        rs = Sampler("low_resolution", s.rng, resize_level, {})
        out = _down_up(finish(out), rs, True)
        s.values["resize"] = rs.values
    if jpeg_level is not None:
        out = _jpeg_saves(finish(out), s)
    else:
        out = jpeg(finish(out), s.integer("quality", _span_int(88, 97)), 2)
    s.done(record)
    return finish(out)
