"""What the perception CNN looks at: native-resolution crops (centre and corners) and, for
weights calibrated with it, the whole image downscaled; and the per-type probabilities of its
averaged logits. Numpy only: shared by the PyTorch and the exported (ONNX) perceivers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import LEGACY_PERCEPTION_TYPES, PERCEPTION_TYPES
from restoregraph.imageio import as_float_image
from restoregraph.perception.base import PerceptionResult
from restoregraph.perception.files import (
    DEFAULT_WEIGHTS,
    load_thresholds,
    uses_global_view,
    weights_missing,
)

N_LEVELS = 4  # absent, level 1, 2, 3
INFER_CROP = 160
# Nets trained before the raindrop type report these nine types (in this order).
LEGACY_TYPES = LEGACY_PERCEPTION_TYPES


def types_for(n_types: int) -> tuple[str, ...]:
    """The perception types a net with ``n_types`` outputs reports."""
    for types in (PERCEPTION_TYPES, LEGACY_TYPES):
        if len(types) == n_types:
            return types
    raise ToolError(f"perception weights: {n_types} output types match no known type list")


def crop_boxes(height: int, width: int, crop: int) -> list[tuple[int, int, int, int]]:
    """Centre + four corners (deduplicated), each ``crop`` square clipped to the image:
    (top, left, h, w)."""
    ch, cw = min(crop, height), min(crop, width)
    cy, cx = (height - ch) // 2, (width - cw) // 2
    boxes = [(cy, cx, ch, cw)]
    for t in (0, height - ch):
        for left in (0, width - cw):
            if (t, left) != (cy, cx):
                boxes.append((t, left, ch, cw))
    return list(dict.fromkeys(boxes))


def crops_array(image: np.ndarray, crop: int = INFER_CROP) -> np.ndarray:
    """(H, W, 3) image -> (n_crops, 3, ch, cw) float32 array of native-resolution crops."""
    img = as_float_image(image)
    h, w = img.shape[:2]
    crops = [img[t : t + ch, x : x + cw] for t, x, ch, cw in crop_boxes(h, w, crop)]
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))


def global_view(image: np.ndarray, side: int = INFER_CROP) -> np.ndarray:
    """The whole image downscaled (area) so that its longer side is at most ``side`` px: what
    global degradations (haze, low light, raindrops) look like at a glance."""
    h, w = image.shape[:2]
    f = side / max(h, w)
    if f >= 1.0:
        return image
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.float32)


def views(image: np.ndarray, crop: int, with_global: bool) -> list[np.ndarray]:
    """The batches the perceiver runs: the crops, then (``with_global`` and an image larger
    than a crop) the global view as a batch of one."""
    batches = [crops_array(image, crop)]
    if with_global and max(image.shape[:2]) > crop:
        view = global_view(as_float_image(image), crop).transpose(2, 0, 1)
        batches.append(np.ascontiguousarray(view)[None])
    return batches


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in ``logits``' own precision (max-shifted)."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def probs_of_mean(mean: np.ndarray) -> dict[str, list[float]]:
    """(n_types, 4) crop-averaged logits -> {type: [p0, p1, p2, p3]} (softmax in float64)."""
    return probs_by_type(softmax(np.asarray(mean, np.float64)))


def probs_by_type(probs: np.ndarray) -> dict[str, list[float]]:
    """(n_types, 4) level probabilities -> {type: [p0, p1, p2, p3]} over every perception
    type; a type the net does not report (an older net) is absent: [1, 0, 0, 0]."""
    reported = dict(zip(types_for(int(probs.shape[0])), probs, strict=True))
    out: dict[str, list[float]] = {}
    for t in PERCEPTION_TYPES:
        p = reported.get(t)
        out[t] = [float(v) for v in p / p.sum()] if p is not None else [1.0, 0.0, 0.0, 0.0]
    return out


class CropPerceiver:
    """What the CNN perceivers share (Perceiver protocol): weights, calibrated thresholds and
    the global view setting; subclasses run the network (:meth:`perceive`)."""

    name = "cnn"
    types: tuple[str, ...] = PERCEPTION_TYPES

    def __init__(
        self,
        weights_path: str | Path | None = None,
        crop: int = INFER_CROP,
        thresholds: dict[str, float] | None = None,
        global_view_: bool | None = None,
    ) -> None:
        path = Path(weights_path) if weights_path is not None else DEFAULT_WEIGHTS
        if not path.is_file():
            raise weights_missing(path)
        self.weights_path = path.resolve()
        self.crop = int(crop)
        self.thresholds = (
            dict(thresholds) if thresholds is not None else load_thresholds(self.weights_path)
        )
        self.global_view = (
            bool(global_view_) if global_view_ is not None else uses_global_view(self.weights_path)
        )

    def result(self, probs: dict[str, list[float]]) -> PerceptionResult:
        return PerceptionResult(probs=probs, detector=self.name, thresholds=dict(self.thresholds))


__all__ = [
    "INFER_CROP",
    "LEGACY_TYPES",
    "N_LEVELS",
    "CropPerceiver",
    "crop_boxes",
    "crops_array",
    "global_view",
    "probs_by_type",
    "probs_of_mean",
    "types_for",
    "views",
]
