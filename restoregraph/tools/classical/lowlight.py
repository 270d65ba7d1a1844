"""Low-light enhancement: CLAHE on Lab lightness, adaptive gamma, and Zero-DCE++.

Zero-DCE++ (Li, Guo & Loy, TPAMI 2021) comes from the ``neuro-low-light`` package, which ships
its weights; the network is loaded once per process and run on the CPU without gradients.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.tools.classical._common import as_rgb, finish

# --------------------------------------------------------------------------------------- CLAHE

CLAHE_TILES = 4
_SATURATION_FOLLOW = 0.5  # chroma follows the lightness gain to this power


def clahe(image: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of L (Lab), a 4x4 tile grid.

    The clip limit grows as the image gets darker (2 for a mid-grey mean, up to 40), so a dark
    image is lifted rather than only locally stretched; a and b are scaled by the square root of
    the lightness gain so colours do not wash out.
    """
    import cv2

    img = as_rgb(image)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)
    lightness = lab[..., 0]
    mean = float(lightness.mean()) / 100.0
    clip = float(np.clip(0.5 / max(mean, 1e-3), 2.0, 40.0))
    l8 = np.clip(lightness * 2.55 + 0.5, 0, 255).astype(np.uint8)
    engine = cv2.createCLAHE(clipLimit=clip, tileGridSize=(CLAHE_TILES, CLAHE_TILES))
    out_l = engine.apply(l8).astype(np.float32) / 2.55
    gain = ((out_l + 1.0) / (lightness + 1.0)) ** _SATURATION_FOLLOW
    lab[..., 0] = out_l
    lab[..., 1] *= gain
    lab[..., 2] *= gain
    return finish(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB))


# --------------------------------------------------------------------------------------- gamma

TARGET_LOG_MEAN = 0.3  # geometric-mean brightness of a typical well-exposed photo
WHITE_PERCENTILE = 99.5
GAMMA_RANGE = (0.2, 1.0)  # only ever brighten


def adaptive_gamma_exponent(image: np.ndarray) -> tuple[float, float]:
    """(white level, exponent) such that ``(image / white) ** exponent`` has the target
    geometric-mean brightness. A power law maps log-means linearly, so for an image darkened
    as ``b * x ** g`` this recovers ``1 / g`` when the white level finds ``b``."""
    img = as_rgb(image)
    white = float(np.percentile(img.max(axis=2), WHITE_PERCENTILE))
    white = max(white, 1e-3)
    norm = np.clip(img / white, 0.0, 1.0)
    log_mean = float(np.mean(np.log(norm + 1.0 / 255.0)))
    if log_mean >= -1e-6:
        return white, 1.0
    exponent = float(np.log(TARGET_LOG_MEAN) / log_mean)
    return white, float(np.clip(exponent, *GAMMA_RANGE))


def gamma(image: np.ndarray) -> np.ndarray:
    """Normalise the white level, then a per-channel gamma chosen from the mean brightness."""
    img = as_rgb(image)
    white, exponent = adaptive_gamma_exponent(img)
    return finish(np.power(np.clip(img / white, 0.0, 1.0), exponent))


# ------------------------------------------------------------------------------------ Zero-DCE

_WEIGHTS = Path("weights") / "best_model.pth"
_CURVE_MIN_SIDE = 128  # curves are estimated on a downscaled copy (as Zero-DCE++ does)
_CURVE_MAX_SIDE = 512
_LOCK = threading.Lock()


def _zerodce_weights() -> Path | None:
    """The weights bundled with neuro-low-light, found without importing it (or torch)."""
    try:
        spec = importlib.util.find_spec("neuro_low_light")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / _WEIGHTS
        if path.is_file():
            return path
    return None


def _zerodce_class() -> Any:
    """``neuro_low_light.model.ZeroDCEPP``, loaded from its file: importing the package itself
    would also import torchvision and its video helpers (over a second), which are not needed."""
    path = _zerodce_weights()
    if path is None:
        raise FileNotFoundError("neuro-low-light weights not found")
    source = path.parent.parent / "model.py"
    spec = importlib.util.spec_from_file_location("_restoregraph_zerodce_model", source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ZeroDCEPP


@functools.cache
def _zerodce_model() -> Any:
    """Load Zero-DCE++ once (CPU, eval mode, bundled weights)."""
    import torch

    path = _zerodce_weights()
    if path is None:
        raise FileNotFoundError("neuro-low-light weights not found")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state_dict", checkpoint)
    model = _zerodce_class()(num_iterations=8)
    model.load_state_dict(state)
    model.eval()
    return model


@functools.cache
def zerodce_available() -> bool:
    """Whether the Zero-DCE++ package and its weights are present, found without importing it
    or torch: registering the tool costs nothing. Weights that do not load make ``zerodce``
    raise when it runs (a failed step)."""
    return _zerodce_weights() is not None


def zerodce(image: np.ndarray) -> np.ndarray:
    """Zero-DCE++: per-pixel quadratic curves estimated by a small CNN, applied 8 times."""
    import torch
    import torch.nn.functional as F

    img = as_rgb(image)
    h, w = img.shape[:2]
    try:
        model = _zerodce_model()
    except ImportError:
        raise
    except Exception as exc:  # weights missing or not loading: say so, on one line
        raise ImportError(f"Zero-DCE++ does not load: {type(exc).__name__}: {exc}") from exc
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    side = float(np.clip(max(h, w) / 12.0, _CURVE_MIN_SIDE, _CURVE_MAX_SIDE))
    with _LOCK, torch.no_grad():
        if max(h, w) > side:
            scale = side / max(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            small = F.interpolate(
                x, size=size, mode="bilinear", align_corners=False, antialias=True
            )
            curves = model.dce_net(small)
            curves = F.interpolate(curves, size=(h, w), mode="bilinear", align_corners=False)
        else:
            curves = model.dce_net(x)
        out = model.enhance(x, curves)
    return finish(out[0].numpy().transpose(1, 2, 0))
