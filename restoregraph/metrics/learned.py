"""Learned full-reference metrics: LPIPS and DISTS (lower is better, 0 for identical images).

Both need ImageNet-trained weights that RestoreGraph does not ship, and nothing here ever
downloads them: the networks are built from torchvision's architectures with ``weights=None``
and filled only from local files. When the files are missing the functions raise
``MetricUnavailable`` with a one-line message naming the file and where to put it; there is no
silent fallback to another metric.

LPIPS (Zhang et al., CVPR 2018, v0.1), ``net='alex'`` (default, the paper's recommended
forward metric) or ``'vgg'``. Weights are looked up, first match wins:

1. ``weights=`` argument, else ``$RESTOREGRAPH_LPIPS_WEIGHTS``: a file, or a directory holding
   ``lpips_<net>.pth`` or ``<net>.pth``;
2. ``<torch hub dir>/checkpoints/lpips_<net>.pth`` (``torch.hub.get_dir()``, i.e.
   ``$TORCH_HOME/hub`` or ``~/.cache/torch/hub``).

That file is either a complete LPIPS state dict (as ``lpips.LPIPS(net=...).state_dict()`` from
the ``lpips`` package: ``net.slice*`` and ``lin*`` keys) or only the linear layers (the
``lpips`` package's ``lpips/weights/v0.1/<net>.pth``: ``lin0.model.1.weight`` ...). In the
second case the torchvision backbone checkpoint (``alexnet-owt-7be5be79.pth`` /
``vgg16-397923af.pth``, ``features.*`` keys) is read from the same directory, else from the torch
hub checkpoints directory where torchvision itself caches it.

DISTS (Ding et al., TPAMI 2020): VGG16 with L2 pooling plus the learned ``alpha``/``beta``
(1, 1475, 1, 1). Lookup as above with ``$RESTOREGRAPH_DISTS_WEIGHTS``, directory names
``dists_weights.pt`` / ``weights.pt``, default ``<torch hub dir>/checkpoints/dists_weights.pt``
(the name piq uses). The file holds either the whole DISTS state dict (``stage*``, ``alpha``,
``beta``) or only ``alpha``/``beta`` (the DISTS_pytorch ``weights.pt``), then with
``vgg16-397923af.pth`` found as for LPIPS. As in the reference implementation, images larger
than 256 px on the short side are first resized (bilinear, antialiased) to 256 px.

Loaded networks are cached per weight files; inputs need at least 32x32 pixels.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restoregraph.core.errors import InputError, MetricUnavailable
from restoregraph.metrics._common import to_pair, to_tensor

if TYPE_CHECKING:
    import torch

LPIPS_ENV = "RESTOREGRAPH_LPIPS_WEIGHTS"
DISTS_ENV = "RESTOREGRAPH_DISTS_WEIGHTS"
LPIPS_NETS = ("alex", "vgg")
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
MIN_SIDE = 32

# LPIPS slices: (first, last) indices into torchvision's ``features`` (lpips' pretrained_networks).
_LPIPS_SLICES = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
}
_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# DISTS stages over VGG16 ``features``; the max-pools at 4, 9, 16, 23 become L2 pooling.
_DISTS_STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
_DISTS_POOLS = {4: 64, 9: 128, 16: 256, 23: 512}
_DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CACHE_SIZE = 4


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint directory (where torchvision caches backbone weights)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


# ------------------------------------------------------------------------------- file lookup


def _find_main(
    explicit: str | os.PathLike[str] | None,
    env: str,
    names: tuple[str, ...],
    default: Path,
    label: str,
    need: str,
) -> Path:
    if explicit is not None:
        source, origin = str(explicit), "weights="
    else:
        source, origin = os.environ.get(env, ""), f"${env}"
    if source:
        p = Path(source).expanduser()
        if p.is_dir():
            for name in names:
                if (p / name).is_file():
                    return p / name
            raise MetricUnavailable(
                f"{label}: {p} ({origin}) holds none of {', '.join(names)}; {need}"
            )
        if p.is_file():
            return p
        raise MetricUnavailable(f"{label}: {p} ({origin}) does not exist; {need}")
    if default.is_file():
        return default
    raise MetricUnavailable(need)


def _backbone_candidates(main: Path, filename: str) -> list[Path]:
    return [main.parent / filename, hub_checkpoints_dir() / filename]


def _signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    sig = []
    for p in paths:
        if p.is_file():
            st = p.stat()
            sig.append((str(p.resolve()), st.st_mtime_ns, st.st_size))
    return tuple(sig)


def _load_state(path: Path, label: str) -> dict[str, torch.Tensor]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MetricUnavailable(f"{label}: cannot read weights file {path} ({msg})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MetricUnavailable(f"{label}: {path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _cached(key: tuple[Any, ...]) -> Any | None:
    with _lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
        return model


def _store(key: tuple[Any, ...], model: Any) -> None:
    with _lock:
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def clear_cache() -> None:
    """Forget the loaded LPIPS/DISTS networks."""
    with _lock:
        _cache.clear()


# ------------------------------------------------------------------------------- networks


def _torchvision_features(arch: str) -> Any:
    """torchvision's ``features`` for ``arch``, built with weights=None and no parameter memory.

    Built on the meta device (nothing is allocated or randomly initialised, nothing can be
    downloaded), then materialised empty on the CPU: every parameter is then overwritten by
    ``load_state_dict(strict=True)``.
    """
    import torch
    import torchvision

    with torch.device("meta"):
        if arch == "alex":
            net = torchvision.models.alexnet(weights=None)
        else:
            net = torchvision.models.vgg16(weights=None)
    return net.features.to_empty(device="cpu")


def _build_lpips(net: str) -> Any:
    import torch
    from torch import nn

    class _Lin(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    class _Backbone(nn.Module):
        def __init__(self, features: nn.Sequential, slices: tuple[tuple[int, int], ...]) -> None:
            super().__init__()
            for s, (lo, hi) in enumerate(slices, start=1):
                seq = nn.Sequential()
                for i in range(lo, hi):
                    seq.add_module(str(i), features[i])
                setattr(self, f"slice{s}", seq)
            self.n = len(slices)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            outs = []
            for s in range(1, self.n + 1):
                x = getattr(self, f"slice{s}")(x)
                outs.append(x)
            return outs

    class LPIPSNet(nn.Module):
        shift: torch.Tensor
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
            scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
            self.register_buffer("shift", shift, persistent=False)
            self.register_buffer("scale", scale, persistent=False)
            self.net = _Backbone(_torchvision_features(net), _LPIPS_SLICES[net])
            for k, ch in enumerate(_LPIPS_CHANNELS[net]):
                setattr(self, f"lin{k}", _Lin(ch))

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            fx = self.net((2 * x - 1 - self.shift) / self.scale)
            fy = self.net((2 * y - 1 - self.shift) / self.scale)
            total = torch.zeros(x.shape[0], device=x.device)
            for k, (a, b) in enumerate(zip(fx, fy, strict=True)):
                a = a / (torch.sqrt(torch.sum(a * a, dim=1, keepdim=True)) + 1e-10)
                b = b / (torch.sqrt(torch.sum(b * b, dim=1, keepdim=True)) + 1e-10)
                total = total + getattr(self, f"lin{k}")((a - b) ** 2).mean(dim=(1, 2, 3))
            return total

    return LPIPSNet()


def _build_dists() -> Any:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    class L2Pooling(nn.Module):
        filter: torch.Tensor

        def __init__(self, channels: int) -> None:
            super().__init__()
            a = np.hanning(5)[1:-1]
            g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
            g = g / g.sum()
            self.register_buffer(
                "filter", g[None, None].repeat(channels, 1, 1, 1), persistent=False
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.conv2d(x * x, self.filter, stride=2, padding=1, groups=x.shape[1])
            return torch.sqrt(out + 1e-12)

    class DISTSNet(nn.Module):
        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            features = _torchvision_features("vgg")
            for s, (lo, hi) in enumerate(_DISTS_STAGES, start=1):
                seq = nn.Sequential()
                for i in range(lo, hi):
                    layer = L2Pooling(_DISTS_POOLS[i]) if i in _DISTS_POOLS else features[i]
                    seq.add_module(str(i), layer)
                setattr(self, f"stage{s}", seq)
            mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
            self.register_buffer("mean", mean, persistent=False)
            self.register_buffer("std", std, persistent=False)
            n = sum(_DISTS_CHANNELS)
            self.alpha = nn.Parameter(torch.empty(1, n, 1, 1))
            self.beta = nn.Parameter(torch.empty(1, n, 1, 1))

        def features(self, x: torch.Tensor) -> list[torch.Tensor]:
            h = (x - self.mean) / self.std
            feats = [x]
            for s in range(1, 6):
                h = getattr(self, f"stage{s}")(h)
                feats.append(h)
            return feats

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            fx, fy = self.features(x), self.features(y)
            c1 = c2 = 1e-6
            w_sum = self.alpha.sum() + self.beta.sum()
            alphas = torch.split(self.alpha / w_sum, list(_DISTS_CHANNELS), dim=1)
            betas = torch.split(self.beta / w_sum, list(_DISTS_CHANNELS), dim=1)
            dist1 = torch.zeros(x.shape[0], 1, 1, 1)
            dist2 = torch.zeros(x.shape[0], 1, 1, 1)
            for k in range(len(_DISTS_CHANNELS)):
                xm = fx[k].mean([2, 3], keepdim=True)
                ym = fy[k].mean([2, 3], keepdim=True)
                s1 = (2 * xm * ym + c1) / (xm**2 + ym**2 + c1)
                dist1 = dist1 + (alphas[k] * s1).sum(1, keepdim=True)
                xv = ((fx[k] - xm) ** 2).mean([2, 3], keepdim=True)
                yv = ((fy[k] - ym) ** 2).mean([2, 3], keepdim=True)
                cov = (fx[k] * fy[k]).mean([2, 3], keepdim=True) - xm * ym
                s2 = (2 * cov + c2) / (xv + yv + c2)
                dist2 = dist2 + (betas[k] * s2).sum(1, keepdim=True)
            return (1 - (dist1 + dist2)).flatten()

    return DISTSNet()


def _map_backbone(tv_state: dict[str, torch.Tensor], prefix: str, ranges: Any) -> dict[str, Any]:
    """torchvision ``features.<i>.*`` keys -> ``<prefix><slice>.<i>.*`` keys."""
    out: dict[str, Any] = {}
    for key, value in tv_state.items():
        if not key.startswith("features."):
            continue
        idx = int(key.split(".")[1])
        for s, (lo, hi) in enumerate(ranges, start=1):
            if lo <= idx < hi:
                out[f"{prefix}{s}.{key.removeprefix('features.')}"] = value
    return out


def _fill(model: Any, state: dict[str, Any], label: str, files: list[Path]) -> Any:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        names = ", ".join(str(f) for f in files)
        raise MetricUnavailable(f"{label}: weights in {names} do not fit ({detail})") from None
    model.eval()
    model.requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------- LPIPS


def _lpips_model(weights: str | os.PathLike[str] | None, net: str) -> Any:
    if net not in LPIPS_NETS:
        raise InputError(f"lpips: net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
    hub = hub_checkpoints_dir()
    backbone = BACKBONE_FILES[net]
    label = f"lpips ({net})"
    need = (
        f"LPIPS-{net} needs weights: put the LPIPS linear layers ({net}.pth from the lpips "
        f"package, lpips/weights/v0.1/) at ${LPIPS_ENV} or {hub / f'lpips_{net}.pth'}, and "
        f"torchvision's {backbone} beside that file or in {hub}/"
    )
    main = _find_main(
        weights,
        LPIPS_ENV,
        (f"lpips_{net}.pth", f"{net}.pth"),
        hub / f"lpips_{net}.pth",
        label,
        need,
    )
    candidates = _backbone_candidates(main, backbone)
    key = ("lpips", net, _signature([main, *candidates]))
    model = _cached(key)
    if model is not None:
        return model
    state = _load_state(main, label)
    files = [main]
    wanted = {k: v for k, v in state.items() if k.startswith(("net.slice", "lin"))}
    wanted = {k: v for k, v in wanted.items() if not k.startswith("lins.")}
    if not any(k.startswith("net.slice") for k in wanted):
        if any(k.startswith("features.") for k in state):
            raise MetricUnavailable(
                f"{label}: {main} is a bare torchvision backbone; point ${LPIPS_ENV} at the "
                f"LPIPS linear-layer file ({net}.pth) and keep {backbone} beside it"
            )
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise MetricUnavailable(
                f"{label}: {main} holds only the linear layers; put torchvision's {backbone} "
                f"beside it or in {hub}/"
            )
        files.append(found)
        wanted.update(_map_backbone(_load_state(found, label), "net.slice", _LPIPS_SLICES[net]))
    model = _fill(_build_lpips(net), wanted, label, files)
    _store(key, model)
    return model


def _check_size(a: np.ndarray, name: str) -> None:
    if min(a.shape[:2]) < MIN_SIDE:
        raise InputError(
            f"{name} needs at least {MIN_SIDE}x{MIN_SIDE} pixels, got {a.shape[1]}x{a.shape[0]}"
        )


def lpips(
    img: np.ndarray,
    ref: np.ndarray,
    weights: str | os.PathLike[str] | None = None,
    net: str = "alex",
) -> float:
    """LPIPS distance (v0.1); 0 for identical images, lower is better.

    Raises ``MetricUnavailable`` when the weights are not found (see the module docstring).
    """
    import torch

    a, b = to_pair(img, ref)
    model = _lpips_model(weights, net)
    _check_size(a, "lpips")
    with torch.inference_mode():
        return float(model(to_tensor(a), to_tensor(b))[0])


# ---------------------------------------------------------------------------------- DISTS


def _dists_model(weights: str | os.PathLike[str] | None) -> Any:
    hub = hub_checkpoints_dir()
    backbone = BACKBONE_FILES["vgg"]
    label = "dists"
    need = (
        "DISTS needs weights: put its alpha/beta file (weights.pt from DISTS_pytorch, or piq's "
        f"dists_weights.pt) at ${DISTS_ENV} or {hub / 'dists_weights.pt'}, and torchvision's "
        f"{backbone} beside that file or in {hub}/"
    )
    main = _find_main(
        weights,
        DISTS_ENV,
        ("dists_weights.pt", "weights.pt"),
        hub / "dists_weights.pt",
        label,
        need,
    )
    candidates = _backbone_candidates(main, backbone)
    key = ("dists", _signature([main, *candidates]))
    model = _cached(key)
    if model is not None:
        return model
    state = _load_state(main, label)
    files = [main]
    if "alpha" not in state or "beta" not in state:
        raise MetricUnavailable(f"{label}: {main} has no 'alpha'/'beta' entries; {need}")
    wanted = {k: v for k, v in state.items() if k in ("alpha", "beta") or k.startswith("stage")}
    wanted = {k: v for k, v in wanted.items() if not k.endswith(".filter")}  # L2-pool buffers
    wanted["alpha"] = wanted["alpha"].reshape(1, -1, 1, 1)
    wanted["beta"] = wanted["beta"].reshape(1, -1, 1, 1)
    if not any(k.startswith("stage") for k in wanted):
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise MetricUnavailable(
                f"{label}: {main} holds only alpha/beta; put torchvision's {backbone} beside it "
                f"or in {hub}/"
            )
        files.append(found)
        tv = _map_backbone(_load_state(found, label), "stage", _DISTS_STAGES)
        wanted.update({k: v for k, v in tv.items() if int(k.split(".")[1]) not in _DISTS_POOLS})
    model = _fill(_build_dists(), wanted, label, files)
    _store(key, model)
    return model


def dists(img: np.ndarray, ref: np.ndarray, weights: str | os.PathLike[str] | None = None) -> float:
    """DISTS distance; 0 for identical images, lower is better.

    Raises ``MetricUnavailable`` when the weights are not found (see the module docstring).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    a, b = to_pair(img, ref)
    model = _dists_model(weights)
    _check_size(a, "dists")
    x, y = to_tensor(a), to_tensor(b)
    side = min(a.shape[:2])
    with torch.inference_mode():
        if side > 256:
            size = (round(a.shape[0] * 256 / side), round(a.shape[1] * 256 / side))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
        value = float(model(x, y)[0])
    return max(value, 0.0)  # >= 0 in exact arithmetic; float32 can give -1e-7
