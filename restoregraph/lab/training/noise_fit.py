"""Fit the realistic camera-noise synthesis to real noisy/clean pairs (PolyU, cropped).

    python -m restoregraph.lab.training.noise_fit --data ../shared/data/train \\
        --out restoregraph/degrade/realistic/noise_params.json

The pairs (``*_real.JPG`` noisy, ``*_mean.JPG`` clean: the mean of many shots) are split **by
scene** (the file name without the trailing ``_<n>_real/mean.JPG``): a hash of the scene puts
all its crops on one side, about 80 % of the scenes to fit, 20 % held out. On the fit half this
measures the noise (flat regions, sigma-clipped std against intensity, the spatial correlation
as the std ratio after a 2x2 box filter, the correlation between colour channels), then finds
per pair the synthesis gain and in-camera (luma, chroma) denoising that reproduce that pair's noise
level, spatial and colour correlation on the same clean image (the other nuisance parameters
random), and writes their ranges: level 1 = the real (PolyU) range of gains, levels 2 and 3
stronger (x4, x16). The held-out half checks the fitted ranges: its real statistics against
level-1 synthesis on its clean images. Also :func:`polyu_noise_pairs`, for training code that
wants the real pairs of one split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from restoregraph.degrade.realistic.camera import DEFAULT_NOISE_PARAMS, camera_noise
from restoregraph.degrade.realistic.noise_stats import BIN_EDGES, measure_noise
from restoregraph.imageio import load_image

POLYU_DIR = "PolyU_real_noise_cropped"
HELDOUT_PERCENT = 20
SPLIT_RULE = (
    "scene = file name without the trailing '_<n>_real.JPG' / '_<n>_mean.JPG' (underscores "
    "before <n> all dropped, so 'plant__4' is scene 'plant'); heldout when "
    f"int(sha256(scene).hexdigest()[:8], 16) % 100 >= {100 - HELDOUT_PERCENT}, else fit"
)
Split = Literal["fit", "heldout"]

_NAME = re.compile(r"^(?P<scene>.+?)_+(?P<index>\d+)_(?P<kind>real|mean)\.jpe?g$", re.IGNORECASE)


def scene_of(name: str) -> str | None:
    """The scene of a PolyU crop file name, or None when the name is not one."""
    m = _NAME.match(Path(name).name)
    return m.group("scene") if m else None


def split_of_scene(scene: str) -> Split:
    """``"fit"`` or ``"heldout"``, from a hash of the scene name alone (stable across runs and
    machines, and the same for every crop of the scene)."""
    bucket = int(hashlib.sha256(scene.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "heldout" if bucket >= 100 - HELDOUT_PERCENT else "fit"


def split_names(names: Sequence[str]) -> dict[str, list[str]]:
    """Split file names into ``{"fit": [...], "heldout": [...]}`` by scene (names that are not
    PolyU crops are left out)."""
    out: dict[str, list[str]] = {"fit": [], "heldout": []}
    for name in names:
        scene = scene_of(name)
        if scene is not None:
            out[split_of_scene(scene)].append(name)
    return out


@dataclass(frozen=True)
class PolyUPair:
    noisy: Path
    clean: Path
    scene: str

    @property
    def name(self) -> str:
        return self.noisy.name


def _polyu_dir(root: str | Path) -> Path:
    root = Path(root)
    return root if root.name == POLYU_DIR or not (root / POLYU_DIR).is_dir() else root / POLYU_DIR


def list_pairs(root: str | Path, split: Split | None = None) -> list[PolyUPair]:
    """The (noisy, clean) file pairs under ``root`` (the data folder holding
    ``PolyU_real_noise_cropped``, or that folder), sorted, optionally of one split."""
    folder = _polyu_dir(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"no {POLYU_DIR} folder at {root}")
    pairs = []
    for noisy in sorted(folder.iterdir()):
        m = _NAME.match(noisy.name)
        if not m or m.group("kind").lower() != "real":
            continue
        clean = noisy.with_name(
            noisy.name[: m.start("kind")] + "mean" + noisy.name[m.end("kind") :]
        )
        if not clean.is_file():
            continue
        scene = m.group("scene")
        if split is None or split_of_scene(scene) == split:
            pairs.append(PolyUPair(noisy, clean, scene))
    return pairs


class PolyUNoisePairs(Sequence[tuple[np.ndarray, np.ndarray]]):
    """A lazy sequence of (noisy, clean) float32 (H, W, 3) pairs; images load on access."""

    def __init__(self, pairs: Sequence[PolyUPair]) -> None:
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[np.ndarray, np.ndarray]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return PolyUNoisePairs(self.pairs[index])
        pair = self.pairs[index]
        return load_image(pair.noisy), load_image(pair.clean)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def scenes(self) -> list[str]:
        return sorted({p.scene for p in self.pairs})


def polyu_noise_pairs(root: str | Path, split: Split = "fit") -> PolyUNoisePairs:
    """The real (noisy, clean) PolyU pairs of ``split`` ("fit" or "heldout", split by scene),
    as float32 RGB arrays in [0, 1], loaded lazily."""
    if split not in ("fit", "heldout"):
        raise ValueError(f"split must be 'fit' or 'heldout', got {split!r}")
    return PolyUNoisePairs(list_pairs(root, split))


# ------------------------------------------------------------------------------------- fitting

GAIN_PROBES = (2e-4, 6e-3)  # two gains per denoising strength; log std is ~linear in log gain
DENOISE_GRID = (0.0, 0.33, 0.67, 1.0)
CHROMA_GRID = (0.0, 0.25, 0.75, 1.0)


def _crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if size <= 0 or (h <= size and w <= size):
        return image
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[y : y + size, x : x + size]


def _synth(
    clean: np.ndarray, seed: int, gain: float, denoise: float, chroma: float
) -> dict[str, Any]:
    out = camera_noise(
        clean,
        np.random.default_rng(seed),
        1,
        gain=gain,
        denoise=denoise,
        chroma_denoise=chroma,
        sharpen=0.25,
    )
    return measure_noise(out, clean)


def _cost(synth: dict[str, Any], real: dict[str, Any]) -> float:
    return float(
        ((synth["box_ratio"] - real["box_ratio"]) / 0.03) ** 2
        + ((synth["channel_corr"] - real["channel_corr"]) / 0.1) ** 2
        + (np.log(synth["std"] / real["std"]) / 0.1) ** 2
    )


def fit_pair(noisy: np.ndarray, clean: np.ndarray, seed: int) -> dict[str, Any]:
    """The synthesis gain, denoising and chroma-denoising strengths that best reproduce this
    pair's noise (level, 2x2 box ratio, colour-channel correlation) on its clean image.

    For each luma denoising strength (chroma at 0.5) the gain matching the real std is
    interpolated in log-log between two probes; the best strength is kept, then the chroma
    strength is chosen at that gain, and the gain is refined once for the final std."""
    real = measure_noise(noisy, clean)
    target = np.log(real["std"])
    best: dict[str, Any] | None = None
    for denoise in DENOISE_GRID:
        lo, hi = (_synth(clean, seed, g, denoise, 0.5)["std"] for g in GAIN_PROBES)
        slope = (np.log(hi) - np.log(lo)) / (np.log(GAIN_PROBES[1]) - np.log(GAIN_PROBES[0]))
        slope = max(float(slope), 0.1)
        gain = float(
            np.clip(np.exp(np.log(GAIN_PROBES[0]) + (target - np.log(lo)) / slope), 1e-5, 0.2)
        )
        synth = _synth(clean, seed, gain, denoise, 0.5)
        cost = _cost(synth, real)
        if best is None or cost < best["cost"]:
            best = {"gain": gain, "denoise": denoise, "chroma_denoise": 0.5, "slope": slope}
            best.update(cost=cost, synth=synth)
    assert best is not None
    for chroma in CHROMA_GRID:
        synth = _synth(clean, seed, best["gain"], best["denoise"], chroma)
        cost = _cost(synth, real)
        if cost < best["cost"]:
            best.update(chroma_denoise=chroma, cost=cost, synth=synth)
    # one secant step on the gain for the final std
    gain = float(best["gain"] * np.exp((target - np.log(best["synth"]["std"])) / best["slope"]))
    synth = _synth(clean, seed, gain, best["denoise"], best["chroma_denoise"])
    if abs(np.log(synth["std"]) - target) < abs(np.log(best["synth"]["std"]) - target):
        best.update(gain=gain, synth=synth, cost=_cost(synth, real))
    return {"real": real, **best}


def _pct(values: Sequence[float], qs: Sequence[float] = (10, 50, 90)) -> list[float]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return [float("nan")] * len(qs)
    return [round(float(x), 4) for x in np.percentile(v, qs)]


def _summary(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """p10 / median / p90 of std, box ratio, channel correlation and of the std per bin."""
    curve = []
    for i in range(len(BIN_EDGES) - 1):
        centre = stats[0]["curve"][i][0] if stats else None
        curve.append([centre, *_pct([s["curve"][i][1] for s in stats])])
    return {
        "pairs": len(stats),
        "std_p10_p50_p90": _pct([s["std"] for s in stats]),
        "box_ratio_p10_p50_p90": _pct([s["box_ratio"] for s in stats]),
        "channel_corr_p10_p50_p90": _pct([s["channel_corr"] for s in stats]),
        "std_by_intensity_centre_p10_p50_p90": curve,
    }


def _range(values: Sequence[float], min_width: float = 0.2) -> tuple[float, float]:
    """p10-p90 of fitted strengths in [0, 1], widened to at least ``min_width``."""
    lo, hi = (float(x) for x in np.percentile(values, [10, 90]))
    if hi - lo < min_width:
        mid = min(max((lo + hi) / 2, min_width / 2), 1 - min_width / 2)
        lo, hi = mid - min_width / 2, mid + min_width / 2
    return round(lo, 3), round(hi, 3)


def _seed(name: str, seed: int) -> int:
    return (zlib.crc32(name.encode("utf-8")) + 1_000_003 * seed) % (2**32)


def fit(root: str | Path, seed: int = 0, crop: int = 256, log: bool = True) -> dict[str, Any]:
    fit_pairs, held_pairs = list_pairs(root, "fit"), list_pairs(root, "heldout")
    if not fit_pairs or not held_pairs:
        raise FileNotFoundError(f"no PolyU pairs for both splits under {root}")
    fitted = []
    for i, pair in enumerate(fit_pairs):
        noisy, clean = _crop(load_image(pair.noisy), crop), _crop(load_image(pair.clean), crop)
        result = fit_pair(noisy, clean, _seed(pair.name, seed))
        fitted.append(result)
        if log:
            r, s = result["real"], result["synth"]
            print(
                f"[{i + 1}/{len(fit_pairs)}] {pair.name}: real std {r['std']:.2f} "
                f"ratio {r['box_ratio']:.3f} corr {r['channel_corr']:.2f} -> gain "
                f"{result['gain']:.2e} denoise {result['denoise']:.2f} chroma {result['chroma_denoise']:.2f} (synth std "
                f"{s['std']:.2f} ratio {s['box_ratio']:.3f} corr {s['channel_corr']:.2f})",
                file=sys.stderr,
            )
    gains = [f["gain"] for f in fitted]
    g_lo, g_hi = (float(x) for x in np.percentile(gains, [10, 90]))
    d_lo, d_hi = _range([f["denoise"] for f in fitted])
    c_lo, c_hi = _range([f["chroma_denoise"] for f in fitted])
    synthesis = {
        "gain": {
            "1": [float(f"{g_lo:.3g}"), float(f"{g_hi:.3g}")],
            "2": [float(f"{g_hi:.3g}"), float(f"{4 * g_hi:.3g}")],
            "3": [float(f"{4 * g_hi:.3g}"), float(f"{16 * g_hi:.3g}")],
        },
        "denoise": [d_lo, d_hi],
        "chroma_denoise": [c_lo, c_hi],
        "sharpen": DEFAULT_NOISE_PARAMS["sharpen"],
        "jpeg_quality": DEFAULT_NOISE_PARAMS["jpeg_quality"],
    }

    # Held-out check: real statistics vs level-1 synthesis (gain, denoise drawn from the fitted
    # ranges) on the same clean crops.
    held_real, held_synth = [], []
    rng = np.random.default_rng(seed + 1)
    for pair in held_pairs:
        noisy, clean = _crop(load_image(pair.noisy), crop), _crop(load_image(pair.clean), crop)
        held_real.append(measure_noise(noisy, clean))
        gain = float(np.exp(rng.uniform(np.log(g_lo), np.log(g_hi))))
        denoise, chroma = float(rng.uniform(d_lo, d_hi)), float(rng.uniform(c_lo, c_hi))
        held_synth.append(_synth(clean, _seed(pair.name, seed), gain, denoise, chroma))
    iid = []
    for pair in held_pairs:  # the old model: i.i.d. gaussian noise at the real pair's std
        noisy, clean = _crop(load_image(pair.noisy), crop), _crop(load_image(pair.clean), crop)
        sigma = measure_noise(noisy, clean)["std"] / 255.0
        g = np.random.default_rng(_seed(pair.name, seed)).standard_normal(clean.shape)
        iid.append(measure_noise(np.clip(clean + sigma * g, 0, 1).astype(np.float32), clean))
    return {
        "source": POLYU_DIR,
        "split_rule": SPLIT_RULE,
        "scenes": {
            "fit": sorted({p.scene for p in fit_pairs}),
            "heldout": sorted({p.scene for p in held_pairs}),
        },
        "pairs": {"fit": len(fit_pairs), "heldout": len(held_pairs)},
        "crop": crop,
        "seed": seed,
        "measure": (
            "flat pixels of the clean image (5x5 luminance std <= min(median, 4/255)); residual "
            "high-passed (minus a gaussian sigma 5 blur); sigma-clipped std on the 0-255 scale; "
            "box_ratio = std of 2x2 block means / std (0.5 = independent noise)"
        ),
        "measured_fit_real": _summary([f["real"] for f in fitted]),
        "measured_fit_synthetic_at_fitted": _summary([f["synth"] for f in fitted]),
        "fitted_gain_p10_p50_p90": _pct(gains),
        "fitted_denoise_p10_p50_p90": _pct([f["denoise"] for f in fitted]),
        "fitted_chroma_denoise_p10_p50_p90": _pct([f["chroma_denoise"] for f in fitted]),
        "synthesis": synthesis,
        "validation_heldout": {
            "real": _summary(held_real),
            "synthetic_level1": _summary(held_synth),
            "iid_gaussian_same_std": _summary(iid),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m restoregraph.lab.training.noise_fit",
        description="Fit the realistic camera-noise ranges to the PolyU real noisy/clean pairs.",
    )
    ap.add_argument("--data", default="../shared/data/train", help="folder holding " + POLYU_DIR)
    ap.add_argument("--out", default="restoregraph/degrade/realistic/noise_params.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crop", type=int, default=256, help="centre crop size (0 = whole)")
    args = ap.parse_args(argv)
    result = fit(args.data, seed=args.seed, crop=args.crop)
    command = ["python -m restoregraph.lab.training.noise_fit", "--data", str(args.data)]
    command += ["--out", str(args.out), "--seed", str(args.seed), "--crop", str(args.crop)]
    result = {"command": " ".join(command), **result}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    syn = result["synthesis"]
    print(f"wrote {args.out}: gain by level {syn['gain']}, denoise {syn['denoise']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
