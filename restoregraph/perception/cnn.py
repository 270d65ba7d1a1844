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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.perception.base import PerceptionResult
from restoregraph.perception.crops import (
    INFER_CROP,
    LEGACY_TYPES,
    N_LEVELS,
    CropPerceiver,
    crop_boxes,
    crops_array,
    global_view,
    probs_by_type,
    types_for,
    views,
)
from restoregraph.perception.files import (
    DEFAULT_WEIGHTS,
    FEATURE_WEIGHTS,
    WEIGHTS_DIR,
    load_thresholds,
    thresholds_path,
    uses_global_view,
    weights_missing,
)
from restoregraph.perception.stats import N_STATS

DEFAULT_WIDTHS: tuple[int, ...] = (32, 48, 64, 80, 96)
HEAD_HIDDEN = 128

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
        return self.head(self.head_input(x, mask, stats)).view(-1, self.n_types, N_LEVELS)

    def head_input(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        stats: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The head's input (B, 2 * widths[-1] + N_STATS): average and max pooled CNN features
        and the batch-normalised image statistics (what the embedded planner reads)."""
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
        return torch.cat([avg, mx, self.stats_norm(stats)], dim=1)


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
        raise weights_missing(p)
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


def image_to_batch(image: np.ndarray, crop: int = INFER_CROP) -> torch.Tensor:
    """(H, W, 3) image -> (n_crops, 3, ch, cw) tensor of native-resolution crops."""
    return torch.from_numpy(crops_array(image, crop))


def probs_from_logits(logits: torch.Tensor) -> dict[str, list[float]]:
    """(n_crops, n_types, 4) logits -> {type: [p0, p1, p2, p3]} (logits averaged over crops).
    A type the net does not report (an older net) is absent: [1, 0, 0, 0]."""
    mean = logits.float().mean(dim=0)
    return probs_by_type(torch.softmax(mean.double(), dim=-1).numpy())


class CNNPerceiver(CropPerceiver):
    """The learnt perceiver (Perceiver protocol) in PyTorch: per perception type, p(absent,
    level 1..3).

    ``thresholds``: P(present) each type needs to count as present; by default the calibrated
    ones stored next to the weights (``*.thresholds.json``), else 0.5.
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        crop: int = INFER_CROP,
        thresholds: dict[str, float] | None = None,
        global_view_: bool | None = None,
    ) -> None:
        super().__init__(weights_path, crop, thresholds, global_view_)
        self.net = _cached_net(str(self.weights_path), self.weights_path.stat().st_mtime_ns)

    def logits(self, image: np.ndarray) -> torch.Tensor:
        """Logits of the native-resolution crops, plus the downscaled whole image when the
        weights were calibrated with it (``global_view`` in the thresholds file)."""
        with torch.inference_mode():
            outs = [
                self.net(torch.from_numpy(b)) for b in views(image, self.crop, self.global_view)
            ]
            return outs[0] if len(outs) == 1 else torch.cat(outs)

    def perceive(self, image: np.ndarray) -> PerceptionResult:
        return self.result(probs_from_logits(self.logits(image)))


__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_WEIGHTS",
    "INFER_CROP",
    "N_LEVELS",
    "N_STATS",
    "WEIGHTS_DIR",
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
