"""Random degradation mixtures for training and evaluating the perception model.

A mixture has 0-4 degradations, at most one per perception type (poisson counts as noise, gaussian
blur and defocus as blur), each at a random level 1-3, in a mostly physically plausible order:
scene and weather first (haze, rain, snow), then exposure, optics (blur), resolution, sensor noise
and compression last. A quarter of the mixtures are shuffled instead, but even then JPEG stays last
and low resolution comes before noise and JPEG most of the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION, PERCEPTION_TYPES

# perception type -> the degradation types that realise it
DEGRADATIONS_FOR_TYPE: dict[str, tuple[str, ...]] = {
    t: tuple(d for d, p in PERCEPTION_TYPE_FOR_DEGRADATION.items() if p == t)
    for t in PERCEPTION_TYPES
}

# Physical order of the pipeline (lower first); ties are shuffled.
_RANK: dict[str, int] = {
    "haze": 0,
    "rain": 0,
    "raindrop": 0,
    "snow": 0,
    "low_light": 1,
    "blur": 2,
    "motion_blur": 2,
    "low_resolution": 3,
    "noise": 4,
    "jpeg": 5,
}

# P(number of degradations = 0, 1, 2, 3, 4)
COUNT_PROBS = (0.12, 0.22, 0.24, 0.22, 0.20)
P_SHUFFLED = 0.25
P_JPEG_LAST = 0.85
P_LOWRES_EARLY = 0.85

TYPE_INDEX = {t: i for i, t in enumerate(PERCEPTION_TYPES)}


def sample_mixture(rng: np.random.Generator) -> list[tuple[str, int]]:
    """A random mixture: ``[(degradation type, level), ...]`` in the order to apply them."""
    k = int(rng.choice(len(COUNT_PROBS), p=COUNT_PROBS))
    types = [PERCEPTION_TYPES[i] for i in rng.choice(len(PERCEPTION_TYPES), k, replace=False)]
    if rng.random() < P_SHUFFLED:
        order = list(types)  # already in random order
        if "low_resolution" in order and rng.random() < P_LOWRES_EARLY:
            later = [i for i, t in enumerate(order) if t in ("noise", "jpeg")]
            if later and order.index("low_resolution") > min(later):
                order.remove("low_resolution")
                order.insert(min(later), "low_resolution")
        if "jpeg" in order and rng.random() < P_JPEG_LAST:
            order.remove("jpeg")
            order.append("jpeg")
    else:
        jitter = rng.random(len(types))
        order = [
            t for _, _, t in sorted(zip([_RANK[t] for t in types], jitter, types, strict=True))
        ]
    mixture = []
    for t in order:
        choices = DEGRADATIONS_FOR_TYPE[t]
        dtype = choices[int(rng.integers(len(choices)))]
        mixture.append((dtype, int(rng.integers(1, 4))))
    return mixture


def labels_of(infos: Sequence[object]) -> np.ndarray:
    """Per perception type, the applied level (0 = absent), from DegradationInfo records."""
    return labels_of_levels(
        (PERCEPTION_TYPE_FOR_DEGRADATION[info.type], int(info.level))  # type: ignore[attr-defined]
        for info in infos
    )


def labels_of_levels(levels: Iterable[tuple[str, int]]) -> np.ndarray:
    """Per perception type, the highest level among ``(perception type, level)`` pairs (0 =
    absent): the labels of a realistic mixture's ``{type: level}.items()`` too."""
    labels = np.zeros(len(PERCEPTION_TYPES), dtype=np.int64)
    for t, level in levels:
        labels[TYPE_INDEX[t]] = max(labels[TYPE_INDEX[t]], int(level))
    return labels


def scale_of(mixture: Sequence[tuple[str, int]]) -> int:
    """The downscale factor of a mixture (low_resolution level 1/2/3 -> x2/x3/x4), else 1."""
    for dtype, level in mixture:
        if dtype == "low_resolution":
            return level + 1
    return 1


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(root: str | Path, subsets: Sequence[str] | None = None) -> list[Path]:
    """Image files under ``root`` (or under ``root/<subset>`` for each subset), sorted."""
    base = Path(root)
    dirs = [base / s for s in subsets] if subsets else [base]
    files: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: not a directory")
        files.extend(p for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def load_uint8(paths: Sequence[Path]) -> list[np.ndarray]:
    """Load images as uint8 RGB arrays (compact: the whole training set fits in ~350 MB)."""
    from restoregraph.imageio import load_image, to_uint8

    return [to_uint8(load_image(p)) for p in paths]
