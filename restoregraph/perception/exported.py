"""The perception CNN on the ONNX backends (``$RESTOREGRAPH_BACKEND`` = onnxruntime, openvino,
openvino-bf16, or ``auto`` with the ``[fast]`` extra): an ONNX export derived from the shipped
weights, so perceiving (and the embedded planner's image features) needs no torch.

The export (``<stem>-<sha12>.onnx`` and its ``.json`` manifest, in the learned tools' export
cache, made once by ``restoregraph tools export`` or on first use, verified like theirs:
:mod:`restoregraph.tools.backends.export`) takes the images ``x`` (N, 3, H, W; dynamic) and
their statistics ``stats`` (N, N_STATS; :mod:`restoregraph.perception.stats`, numpy) and gives
the ``logits`` (N, types, 4) and the head's input ``feats`` (N, D). Its output check runs the
whole numpy + ONNX path against PyTorch eager on fixed images (``CHECK_SHAPES``).
"""

from __future__ import annotations

import functools
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import ToolError
from restoregraph.perception.crops import INFER_CROP, CropPerceiver, probs_of_mean, views
from restoregraph.perception.files import DEFAULT_WEIGHTS, weights_missing
from restoregraph.perception.stats import image_stats

# (batch, height, width) of the output check's images: the crops, a small image, a global view
CHECK_SHAPES: tuple[tuple[int, int, int], ...] = ((2, 160, 160), (1, 37, 50), (1, 120, 160))
FORMAT = 1


def check_images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """(n, 3, h, w) float32 test images: smooth colour fields with noise and 8 px blocks (the
    statistics see gradients, noise and blockiness), clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, 3, h, w), np.float32)
    for i in range(n):
        for c in range(3):
            a, b, p = rng.random(3, dtype=np.float32)
            base = 0.5 + 0.3 * np.sin(xx * (a * 0.2) + yy * (b * 0.15) + 6 * p)
            blocks = 0.04 * rng.standard_normal((h // 8 + 1, w // 8 + 1)).astype(np.float32)
            base += np.kron(blocks, np.ones((8, 8), np.float32))[:h, :w]
            out[i, c] = base + 0.05 * rng.standard_normal((h, w)).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def export_perception(
    source: Path, sha256: str, folder: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Export perception weights ``source`` (sha256 ``sha256``) to ONNX with both outputs,
    check numpy statistics + ONNX against PyTorch eager, and publish the file and manifest."""
    import torch
    from torch import nn

    from restoregraph.perception.cnn import load_net
    from restoregraph.tools.backends.export import (
        CHECK_TOLERANCE,
        OPSET,
        check_runner,
        checked_difference,
        export_paths,
        publish,
        run_export,
    )
    from restoregraph.weightfiles import sha256_of

    net = load_net(source)

    class WithFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, stats: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feats = self.net.head_input(x, None, stats)
            logits = self.net.head(feats).view(-1, self.net.n_types, 4)
            return logits, feats

    onnx_path, meta_path = export_paths(source, sha256, folder)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(f".{onnx_path.name}.tmp{os.getpid()}")
    x = torch.from_numpy(check_images(*CHECK_SHAPES[0], seed=0))
    t0 = time.perf_counter()

    def export() -> None:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                WithFeatures().eval(),
                (x, torch.from_numpy(image_stats(x.numpy()))),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=["x", "stats"],
                output_names=["logits", "feats"],
                dynamic_axes={
                    "x": {0: "n", 2: "h", 3: "w"},
                    "stats": {0: "n"},
                    "logits": {0: "n"},
                    "feats": {0: "n"},
                },
            )

    run_export(tmp, source, export)
    seconds = time.perf_counter() - t0
    engine_name = ""

    def check() -> float:
        nonlocal engine_name
        engine_name, run = check_runner(tmp)
        max_diff = 0.0
        for seed, shape in enumerate(CHECK_SHAPES):
            xs = check_images(*shape, seed=seed)
            with torch.inference_mode():
                t = torch.from_numpy(xs)
                want_feats = net.head_input(t)
                want = [net(t).numpy(), want_feats.numpy()]
            got = run(xs, image_stats(xs))
            for g, r in zip(got, want, strict=True):
                if g.shape != r.shape:
                    raise ToolError(f"{source.name}: ONNX export gives {g.shape}, not {r.shape}")
                max_diff = max(max_diff, float(np.abs(g - r).max()))
        return max_diff

    max_diff = checked_difference(tmp, source, check)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "kind": "perception",
        "source": source.name,
        "source_sha256": sha256,
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_of(tmp),
        "bytes": tmp.stat().st_size,
        "n_types": int(net.n_types),
        "exporter": {
            "torch": torch.__version__,
            "opset": OPSET,
            "method": "torch.onnx.export(dynamo=False), dynamic n/h/w; stats in numpy",
        },
        "check": {
            "engine": engine_name,
            "inputs": [list(s) for s in CHECK_SHAPES],
            "what": "logits and head input of numpy stats + ONNX vs PyTorch eager",
            "max_abs_diff": max_diff,
            "tolerance": CHECK_TOLERANCE,
        },
        "export_seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    publish(tmp, onnx_path, meta_path, meta)
    return onnx_path, meta


def ensure_perception_export(
    source: Path | None = None, folder: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """A verified export of perception weights ``source`` (default: the shipped ones): the
    cached one, or a new one (which imports torch, once)."""
    from restoregraph.tools.backends.export import ensure_cached, export_paths, verify_export
    from restoregraph.weightfiles import sha256_of

    source = DEFAULT_WEIGHTS if source is None else Path(source)
    if not source.is_file():
        raise weights_missing(source)
    sha = sha256_of(source)
    onnx_path, meta_path = export_paths(source, sha, folder)
    return ensure_cached(
        onnx_path,
        lambda: verify_export(onnx_path, meta_path, sha, geometry_fields=()),
        lambda: export_perception(source, sha, folder),
        f"{source.name} to ONNX",
    )


class ExportedNet:
    """The exported perception CNN in one ONNX engine: ``run(x)`` -> (logits, head input)."""

    def __init__(self, source: Path, backend: str) -> None:
        from restoregraph.tools.backends.onnx_engines import make_runner

        onnx_path, meta = ensure_perception_export(source)
        self.backend = backend
        self.meta = meta
        self.runner = make_runner(onnx_path, backend)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, H, W) float32 images in [0, 1] -> logits (N, types, 4), feats (N, D)."""
        x = np.ascontiguousarray(x, np.float32)
        logits, feats = self.runner.run(x, image_stats(x))
        return logits, feats


_NETS: dict[tuple[str, str, int], ExportedNet | None] = {}
_NETS_LOCK = threading.Lock()


def exported_net(weights: str | Path | None, backend: str) -> ExportedNet | None:
    """The exported perception net of ``weights`` (default: the shipped ones) on ``backend``,
    once per process; ``None`` (after one warning) when it cannot run there."""
    from restoregraph.tools.backends import onnx_or_none

    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise weights_missing(path)
    path = path.resolve()
    key = (backend, str(path), path.stat().st_mtime_ns)
    with _NETS_LOCK:
        if key not in _NETS:
            _NETS[key] = onnx_or_none(path.name, backend, lambda: ExportedNet(path, backend))
        return _NETS[key]


def clear_cache() -> None:
    """Forget loaded nets and perceivers (tests)."""
    with _NETS_LOCK:
        _NETS.clear()
    exported_perceiver.cache_clear()


class ExportedPerceiver(CropPerceiver):
    """The perceiver (same crops, thresholds and global view as
    :class:`restoregraph.perception.cnn.CNNPerceiver`) on an exported net."""

    def __init__(
        self,
        net: ExportedNet,
        weights_path: str | Path | None = None,
        crop: int = INFER_CROP,
        thresholds: dict[str, float] | None = None,
        global_view_: bool | None = None,
    ) -> None:
        super().__init__(weights_path, crop, thresholds, global_view_)
        self.net = net

    def logits(self, image: np.ndarray) -> np.ndarray:
        """(n_views, types, 4) logits of the crops (and the global view)."""
        outs = [self.net.run(b)[0] for b in views(image, self.crop, self.global_view)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def perceive(self, image: np.ndarray) -> Any:
        return self.result(probs_of_mean(self.logits(image).mean(axis=0)))


@functools.lru_cache(maxsize=4)
def exported_perceiver(backend: str) -> ExportedPerceiver | None:
    """The default perceiver on ONNX backend ``backend``, or ``None`` (warned) to use torch."""
    net = exported_net(None, backend)
    return None if net is None else ExportedPerceiver(net)


__all__ = [
    "CHECK_SHAPES",
    "ExportedNet",
    "ExportedPerceiver",
    "clear_cache",
    "ensure_perception_export",
    "export_perception",
    "exported_net",
    "exported_perceiver",
]
