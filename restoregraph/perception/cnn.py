"""A small CNN that tells which degradations an image has, and how severe each one is.

The network (:class:`PerceptionNet`) is fully convolutional: the RGB image and its 3x3 high-pass
residual go through five stride-2 blocks (conv 3x3 stride 2 -> BN -> ReLU -> conv 3x3 -> BN ->
ReLU) and global average + max pooling; the pooled features, with a few hand-crafted global image
statistics (:func:`image_stats`: brightness, residual energy, JPEG blockiness...), feed an MLP head
giving, per perception type, four logits (absent, level 1, 2, 3). Presence thresholds per type
are calibrated after training (:mod:`restoregraph.lab.training.perception_calibrate`).

Degradations such as noise, JPEG blocking and low resolution live at the *pixel* scale, so the
perceiver looks at crops of the image at its native resolution (resizing would wash out noise and
compression artefacts, and fake or hide softness): the centre and the four corners, each
``crop`` pixels square (the whole image when it is smaller), and averages the logits.

Inputs smaller than the training crop are handled exactly: training places them at the top-left
corner of a zero canvas and passes a validity mask; features outside the mask are zeroed after
every layer and pooling only reads the valid region, which is the same computation as running the
network on the small image alone (the stride-2 grid is anchored at the top-left corner).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import LEGACY_PERCEPTION_TYPES, PERCEPTION_TYPES
from restoregraph.imageio import as_float_image
from restoregraph.perception.base import PerceptionResult

N_LEVELS = 4  # absent, level 1, 2, 3
DEFAULT_WIDTHS: tuple[int, ...] = (32, 48, 64, 80, 96)
HEAD_HIDDEN = 128
INFER_CROP = 160
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# The first perception CNN (nine types, the project's own synthesis): the embedded planner and
# the plan critic read its features (restoregraph.planners.features), so it stays shipped.
FEATURE_WEIGHTS = WEIGHTS_DIR / "perception_cnn.pt"
# The perceiver's weights (what the perception node runs).
DEFAULT_WEIGHTS = FEATURE_WEIGHTS

# Fixed input normalisation (images are float RGB in [0, 1]); brightness matters (low light,
# haze), so there is no per-image normalisation.
_MEAN = 0.45
_STD = 0.25


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


HP_GAIN = 8.0  # the high-pass residual channels are small; scale them to the RGB channels' range
N_STATS = 21
_EPS = 1e-4


def _log(v: torch.Tensor) -> torch.Tensor:
    return torch.log(v + _EPS)


def _blockiness(profile: torch.Tensor) -> torch.Tensor:
    """(B, n) mean-|difference| profiles -> (B,) peak-to-mean ratio (log) of the profile folded
    modulo 8: JPEG blocks put every 8th difference above the rest, whatever the grid's phase."""
    n = (profile.shape[1] // 8) * 8
    if n < 16:
        return profile.new_zeros(profile.shape[0])
    phases = profile[:, :n].reshape(profile.shape[0], -1, 8).mean(1)
    return _log(phases.amax(1)) - _log(phases.mean(1))


def _laplacian(t: torch.Tensor, step: int = 1) -> torch.Tensor:
    """Signed 5-point (negative) Laplacian at pixel spacing ``step`` over the interior of
    (B, C, h, w): positive where a pixel is brighter than its neighbours."""
    s = step
    c = t[..., s:-s, s:-s]
    return (
        4 * c
        - t[..., : -2 * s, s:-s]
        - t[..., 2 * s :, s:-s]
        - t[..., s:-s, : -2 * s]
        - t[..., s:-s, 2 * s :]
    )


_QUANTILES = (0.02, 0.25, 0.5, 0.75, 0.98)


def image_stats(x: torch.Tensor) -> torch.Tensor:
    """Hand-crafted global statistics of (B, 3, h, w) images in [0, 1] -> (B, N_STATS).

    Brightness distribution and colour (low light, haze), pixel-scale Laplacian energy at
    spacings 1 and 2 (noise, blur, low resolution), chroma Laplacian (noise vs JPEG's chroma
    subsampling), the bright tail of the residual (rain, snow), gradient energy and coherence
    (motion blur), and JPEG blockiness along rows and
    columns. Cheap: slicing only, quantiles on a 2x-subsampled grid.
    """
    bsz = x.shape[0]
    zeros = x.new_zeros(bsz)
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b  # (B, 1, h, w)
    sub = y[:, :, ::2, ::2].reshape(bsz, -1)
    qs = torch.quantile(sub, torch.tensor(_QUANTILES, dtype=sub.dtype), dim=1)
    hi, lo = x.amax(1), x.amin(1)
    h, w = y.shape[2:]
    if h >= 5 and w >= 5:
        l1 = _laplacian(y).reshape(bsz, -1).abs()
        d2 = _laplacian(y, 2).reshape(bsz, -1)
        l2 = d2.abs()
        lc = _laplacian(torch.cat([r - g, b - g], dim=1)).reshape(bsz, -1).abs()
        # rain streaks and snow flakes are bright additions: a heavy positive tail
        bright = _log(torch.relu(d2).mean(1)) - _log(torch.relu(-d2).mean(1))
        tail = _log(torch.relu(torch.quantile(d2[:, ::3], 0.995, dim=1))) - _log(l2.mean(1))
        lap1, lap2 = _log(l1.mean(1)), _log(l2.mean(1))
        lap1_med = _log(l1[:, ::2].median(1).values)
        lap_c = _log(lc.mean(1))
    else:
        lap1 = lap2 = lap1_med = lap_c = bright = tail = zeros
    if h >= 2 and w >= 2:
        gx = (y[:, 0, :, 1:] - y[:, 0, :, :-1]).abs()  # (B, h, w-1)
        gy = (y[:, 0, 1:, :] - y[:, 0, :-1, :]).abs()  # (B, h-1, w)
        sx = y[:, 0, :-1, 1:] - y[:, 0, :-1, :-1]
        sy = y[:, 0, 1:, :-1] - y[:, 0, :-1, :-1]
        jxx, jyy = (sx * sx).mean((1, 2)), (sy * sy).mean((1, 2))
        jxy = (sx * sy).mean((1, 2))
        coherence = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + _EPS)
        grad_x, grad_y = _log(gx.mean((1, 2))), _log(gy.mean((1, 2)))
        block_x, block_y = _blockiness(gx.mean(1)), _blockiness(gy.mean(2))
    else:
        coherence = grad_x = grad_y = block_x = block_y = zeros
    feats = [
        y.mean((1, 2, 3)),
        y.std((1, 2, 3), unbiased=False) if h * w > 1 else zeros,
        *qs,
        lo.mean((1, 2)),
        ((hi - lo) / (hi + _EPS)).mean((1, 2)),
        lap1,
        lap1_med,
        lap2,
        lap1 - lap2,
        lap_c,
        bright,
        tail,
        grad_x,
        grad_y,
        coherence,
        block_x,
        block_y,
    ]
    return torch.stack(feats, dim=1)


def masked_stats(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """:func:`image_stats` of each sample's valid (top-left anchored) region."""
    if mask is None:
        return image_stats(x)
    rows = []
    for i in range(x.shape[0]):
        hb = int(mask[i, 0, :, 0].sum())
        wb = int(mask[i, 0, 0, :].sum())
        rows.append(image_stats(x[i : i + 1, :, :hb, :wb])[0])
    return torch.stack(rows)


def _high_pass(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x - (3x3 mean over the valid pixels), per channel."""
    if mask is None:
        return x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    num = F.avg_pool2d(x * mask, 3, 1, 1, count_include_pad=False)
    den = F.avg_pool2d(mask, 3, 1, 1, count_include_pad=False).clamp_min(1e-6)
    return x - num / den


class PerceptionNet(nn.Module):
    """Multi-head classifier: ``forward(x, mask) -> logits (B, n_types, 4)``.

    ``x``: (B, 3, H, W) float RGB in [0, 1]. ``mask``: optional (B, 1, H, W) with 1 on the valid
    (top-left anchored) region of each sample and 0 on padding.

    The CNN sees the normalised RGB and its 3x3 high-pass residual (6 channels), so pixel-scale
    artefacts (noise, blocking, softness) are salient from the first layer; the head also gets
    :func:`image_stats` (batch-normalised) next to the pooled CNN features.
    """

    def __init__(
        self,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        n_types: int = len(PERCEPTION_TYPES),
        hidden: int = HEAD_HIDDEN,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.n_types = n_types
        layers: list[nn.Module] = []
        cin = 6
        for w in self.widths:
            layers.append(_conv_bn_relu(cin, w, 2))
            layers.append(_conv_bn_relu(w, w, 1))
            cin = w
        self.layers = nn.ModuleList(layers)
        self.stats_norm = nn.BatchNorm1d(N_STATS)
        self.head = nn.Sequential(
            nn.Linear(2 * cin + N_STATS, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_types * N_LEVELS),
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        stats: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``stats``: precomputed ``masked_stats(x, mask)`` (training computes them in the data
        workers); computed here when not given."""
        if stats is None:
            with torch.no_grad():
                stats = masked_stats(x, mask)
        h = torch.cat([(x - _MEAN) / _STD, _high_pass(x, mask) * HP_GAIN], dim=1)
        if mask is not None:
            h = h * mask
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if mask is not None:
                if i % 2 == 0:  # a stride-2 layer: output i reads input 2i
                    mask = mask[:, :, ::2, ::2]
                h = h * mask
        if mask is None:
            avg = h.mean(dim=(2, 3))
            mx = h.amax(dim=(2, 3))
        else:
            avg = h.sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp_min(1.0)
            mx = h.amax(dim=(2, 3))  # features are >= 0 after ReLU, padding is 0
        feats = torch.cat([avg, mx, self.stats_norm(stats)], dim=1)
        return self.head(feats).view(-1, self.n_types, N_LEVELS)


# Nets trained before the raindrop type report these nine types (in this order).
LEGACY_TYPES = LEGACY_PERCEPTION_TYPES


def types_for(n_types: int) -> tuple[str, ...]:
    """The perception types a net with ``n_types`` outputs reports."""
    for types in (PERCEPTION_TYPES, LEGACY_TYPES):
        if len(types) == n_types:
            return types
    raise ToolError(f"perception weights: {n_types} output types match no known type list")


def n_types_from_state_dict(state: dict[str, torch.Tensor]) -> int:
    heads = sorted(
        (int(k.split(".")[1]), k) for k in state if k.startswith("head.") and k.endswith(".weight")
    )
    if not heads:
        raise ToolError("perception weights: not a PerceptionNet state dict (no head)")
    return int(state[heads[-1][1]].shape[0]) // N_LEVELS


def widths_from_state_dict(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Recover the block widths from a saved state dict (every other layer is a stride-2 one)."""
    widths = []
    i = 0
    while f"layers.{i}.0.weight" in state:
        widths.append(int(state[f"layers.{i}.0.weight"].shape[0]))
        i += 2
    if not widths:
        raise ToolError("perception weights: not a PerceptionNet state dict")
    return tuple(widths)


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_net(path: str | Path) -> PerceptionNet:
    """Load a PerceptionNet from a plain state dict (``torch.load(weights_only=True)``)."""
    p = Path(path)
    if not p.is_file():
        raise ToolError(
            f"perception weights not found: {p} (train them with "
            "`python -m restoregraph.lab.training.perception`, see restoregraph/weights/MANIFEST.json)"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, wrong format
        raise ToolError(f"perception weights unreadable: {p} ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise ToolError(f"perception weights: {p} is not a state dict")
    net = PerceptionNet(
        widths=widths_from_state_dict(state), n_types=n_types_from_state_dict(state)
    )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ToolError(f"perception weights do not match the network: {p} ({exc})") from None
    net.eval()
    return net


@functools.lru_cache(maxsize=4)
def _cached_net(path: str, mtime_ns: int) -> PerceptionNet:
    return load_net(path)


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


def image_to_batch(image: np.ndarray, crop: int = INFER_CROP) -> torch.Tensor:
    """(H, W, 3) image -> (n_crops, 3, ch, cw) tensor of native-resolution crops."""
    img = as_float_image(image)
    h, w = img.shape[:2]
    crops = [img[t : t + ch, x : x + cw] for t, x, ch, cw in crop_boxes(h, w, crop)]
    arr = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))
    return torch.from_numpy(arr)


def global_view(image: np.ndarray, side: int = INFER_CROP) -> np.ndarray:
    """The whole image downscaled (area) so that its longer side is at most ``side`` px: what
    global degradations (haze, low light, raindrops) look like at a glance."""
    h, w = image.shape[:2]
    f = side / max(h, w)
    if f >= 1.0:
        return image
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.float32)


def probs_from_logits(logits: torch.Tensor) -> dict[str, list[float]]:
    """(n_crops, n_types, 4) logits -> {type: [p0, p1, p2, p3]} (logits averaged over crops).
    A type the net does not report (an older net) is absent: [1, 0, 0, 0]."""
    mean = logits.float().mean(dim=0)
    probs = torch.softmax(mean.double(), dim=-1).numpy()
    reported = dict(zip(types_for(int(probs.shape[0])), probs, strict=True))
    out: dict[str, list[float]] = {}
    for t in PERCEPTION_TYPES:
        p = reported.get(t)
        out[t] = [float(v) for v in p / p.sum()] if p is not None else [1.0, 0.0, 0.0, 0.0]
    return out


def thresholds_path(weights_path: Path) -> Path:
    """``perception_cnn.pt`` -> ``perception_cnn.thresholds.json`` (calibrated presence
    thresholds, written by ``python -m restoregraph.lab.training.perception_calibrate``)."""
    return weights_path.with_name(weights_path.stem + ".thresholds.json")


def load_thresholds(weights_path: Path) -> dict[str, float]:
    """Per-type presence thresholds stored next to the weights ({} when there are none)."""
    path = thresholds_path(weights_path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = data["thresholds"]
        out = {str(t): float(v) for t, v in raw.items() if t in PERCEPTION_TYPES}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ToolError(f"perception thresholds unreadable: {path} ({exc})") from None
    if not all(0.0 < v < 1.0 for v in out.values()):
        raise ToolError(f"perception thresholds must lie in (0, 1): {path}")
    return out


def uses_global_view(weights_path: Path) -> bool:
    """Whether the calibration next to the weights says to add the global view."""
    path = thresholds_path(weights_path)
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("global_view", False))
    except (ValueError, AttributeError):
        return False


class CNNPerceiver:
    """The learnt perceiver (Perceiver protocol): per perception type, p(absent, level 1..3).

    ``thresholds``: P(present) each type needs to count as present; by default the calibrated
    ones stored next to the weights (``*.thresholds.json``), else 0.5.
    """

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
            raise ToolError(
                f"perception weights not found: {path} (train them with "
                "`python -m restoregraph.lab.training.perception`)"
            )
        self.weights_path = path.resolve()
        self.crop = int(crop)
        self.net = _cached_net(str(self.weights_path), self.weights_path.stat().st_mtime_ns)
        self.thresholds = (
            dict(thresholds) if thresholds is not None else load_thresholds(self.weights_path)
        )
        self.global_view = (
            bool(global_view_) if global_view_ is not None else uses_global_view(self.weights_path)
        )

    def logits(self, image: np.ndarray) -> torch.Tensor:
        """Logits of the native-resolution crops, plus the downscaled whole image when the
        weights were calibrated with it (``global_view`` in the thresholds file)."""
        batch = image_to_batch(image, self.crop)
        with torch.inference_mode():
            out = self.net(batch)
            if self.global_view and max(image.shape[:2]) > self.crop:
                view = global_view(as_float_image(image), self.crop).transpose(2, 0, 1)
                out = torch.cat([out, self.net(torch.from_numpy(np.ascontiguousarray(view))[None])])
            return out

    def perceive(self, image: np.ndarray) -> PerceptionResult:
        return PerceptionResult(
            probs=probs_from_logits(self.logits(image)),
            detector=self.name,
            thresholds=dict(self.thresholds),
        )


__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_WEIGHTS",
    "LEGACY_TYPES",
    "CNNPerceiver",
    "PerceptionNet",
    "count_params",
    "crop_boxes",
    "image_to_batch",
    "load_net",
    "load_thresholds",
    "thresholds_path",
    "global_view",
    "uses_global_view",
    "probs_from_logits",
    "types_for",
    "sha256_file",
]
