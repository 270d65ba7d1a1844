"""Image features for the embedded planner: what the perception CNN sees in an image.

The feature vector of an image is the input of the perception network's head (global average
and max pooled CNN features plus its batch-normalised hand-crafted image statistics) followed by
the head's class probabilities (per perception type: absent / level 1 / 2 / 3), computed on the
centre crop of at most 160 x 160 px, the perceiver's crop size (one crop keeps a decision under
50 ms whatever the image size). One forward pass of the shipped perception CNN; the weights'
sha256 is recorded with every feature set (:func:`feature_fingerprint`) so data and planner
weights can say which perceiver they were computed with.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


@functools.lru_cache(maxsize=2)
def _net_and_path(weights: str | None) -> tuple[object, Path]:
    from restoregraph.perception.cnn import FEATURE_WEIGHTS, load_net

    path = Path(weights) if weights else FEATURE_WEIGHTS
    return load_net(path), path.resolve()


def feature_dim(weights: str | None = None) -> int:
    net, _ = _net_and_path(weights)
    head = net.head  # type: ignore[attr-defined]
    n_out = int(head[-1].out_features)
    return int(head[0].in_features) + n_out


def feature_fingerprint(weights: str | None = None) -> str:
    """sha256 of the perception weights the features come from."""
    from restoregraph.perception.cnn import sha256_file

    _, path = _net_and_path(weights)
    return sha256_file(path)


def image_features(image: np.ndarray, weights: str | None = None) -> np.ndarray:
    """(D,) float32 features of one float RGB image (any size). On an ONNX backend
    (``$RESTOREGRAPH_BACKEND``) the perception CNN's export computes them (no torch); else, or
    when the export cannot be used, PyTorch."""
    from restoregraph.imageio import as_float_image
    from restoregraph.perception.crops import INFER_CROP, crop_boxes, softmax
    from restoregraph.tools.backends import onnx_backend

    img = as_float_image(image)
    top, left, ch, cw = crop_boxes(img.shape[0], img.shape[1], INFER_CROP)[0]
    crop = np.ascontiguousarray(img[top : top + ch, left : left + cw].transpose(2, 0, 1))
    backend = onnx_backend()
    if backend is not None:
        from restoregraph.perception.exported import exported_net

        exported = exported_net(weights, backend)
        if exported is not None:
            logits, pooled = exported.run(crop[None])
            probs = softmax(logits.mean(0)).reshape(-1)  # float32, as torch.softmax below
            return np.concatenate([pooled.mean(0), probs]).astype(np.float32)
    return _torch_features(crop, weights)


def _torch_features(crop: np.ndarray, weights: str | None) -> np.ndarray:
    import torch

    net, _ = _net_and_path(weights)
    captured: list[torch.Tensor] = []

    def hook(_module: object, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0].detach())

    handle = net.head.register_forward_pre_hook(hook)  # type: ignore[attr-defined]
    try:
        with torch.inference_mode():
            logits = net(torch.from_numpy(crop)[None])  # type: ignore[operator]
    finally:
        handle.remove()
    pooled = captured[0].float().mean(0)
    probs = torch.softmax(logits.float().mean(0), dim=-1).reshape(-1)
    return torch.cat([pooled, probs]).numpy().astype(np.float32)


def perception_features(
    perception: Mapping[str, int], types: Sequence[str] | None = None
) -> np.ndarray:
    """(3 * len(types),) float32 encoding of a perception result (type -> level): per perception
    type, a one-hot of its level 1 / 2 / 3 (all zero when absent or level 0). What the embedded
    planner reads besides the image: the degradations still to undo and how severe they are.

    ``types``: the perception types the planner was trained with (its weights' meta
    ``perception_types``); by default the nine types before raindrop, which the shipped planner
    reads (a type outside ``types`` is left out: the planner cannot weigh it, and the task has no
    tool yet)."""
    from restoregraph.core.tasks import LEGACY_PERCEPTION_TYPES

    PERCEPTION_TYPES = tuple(types) if types is not None else LEGACY_PERCEPTION_TYPES
    out = np.zeros((len(PERCEPTION_TYPES), 3), np.float32)
    for ptype, level in perception.items():
        if ptype not in PERCEPTION_TYPES:
            continue
        try:
            lvl = int(level)
        except (TypeError, ValueError):
            continue
        if lvl >= 1:
            out[PERCEPTION_TYPES.index(ptype), min(lvl, 3) - 1] = 1.0
    return out.reshape(-1)


def size_features(height: int, width: int) -> np.ndarray:
    """(1,) float32: log2 of the image's geometric-mean side over 128 px (0 at 128 x 128). The
    image features see a fixed-size centre crop; this says how big the whole image is, which
    changes what super-resolution and deblurring do to it."""
    side = max(1.0, float(height) * float(width)) ** 0.5
    return np.array([np.log2(side / 128.0)], np.float32)


__all__ = [
    "feature_dim",
    "feature_fingerprint",
    "image_features",
    "perception_features",
    "size_features",
]
