"""Inference backends of the learned tools: one small interface, several engines.

A backend turns a weights file into an :class:`Engine`: ``raw(x)`` maps a float32 NCHW batch to
the network's *raw* (unclamped) output, and the engine tells the tile geometry the model needs
(``scale``, ``multiple``, ``minimum``, ``input_channels``). :class:`~restoregraph.tools.learned.
model.LearnedModel` does the tiling, clamping and tone protection around it, so those stay the
same whatever runs the network.

Backends (``BACKENDS``):

- ``torch``: PyTorch eager through spandrel, exactly the historical path (always available);
- ``torch-compile``: the same module through ``torch.compile`` (compiled per input shape);
- ``onnxruntime``: the ONNX export (:mod:`.export`) in ONNX Runtime (``pip install
  restoregraph[fast]``);
- ``openvino``: the ONNX export in OpenVINO, fp32 inference precision (``[fast]``);
- ``openvino-bf16``: OpenVINO with bf16 inference precision (on CPUs with bf16 units).

Which one runs is a process-wide choice (models load once per process and the toolbox is
shared by every run in it), so it is an environment variable, not a ``RunContext`` setting:
``RESTOREGRAPH_BACKEND`` = ``auto`` (the default) or one of the names above. ``auto`` is the
first installed backend of ``AUTO_ORDER``, the measured fastest first (docs/BENCHMARKS.md,
"Inference backends"). When the chosen backend's package is missing, or its export cannot be
made or verified, the tool runs on ``torch`` and one warning says why. User-added tools
(``restoregraph tools add``) always run on ``torch``: their architectures are whatever spandrel
reads, and not every one of them exports.

The same choice runs the perception CNN (:mod:`restoregraph.perception.exported`) and the
embedded planner's scorer (:mod:`restoregraph.planners.scorer_arrays`) without torch on the ONNX
backends (:func:`onnx_backend`, :func:`onnx_or_none`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from restoregraph.core.errors import RestoreGraphError

log = logging.getLogger(__name__)

ENV = "RESTOREGRAPH_BACKEND"
BACKENDS: tuple[str, ...] = ("torch", "torch-compile", "onnxruntime", "openvino", "openvino-bf16")
# The order ``auto`` tries, fastest first as measured by ``restoregraph bench backends``.
AUTO_ORDER: tuple[str, ...] = ("openvino", "onnxruntime", "torch")
# The Python package each backend needs beyond the base install.
PACKAGES: dict[str, str] = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "openvino-bf16": "openvino",
}


class Engine(Protocol):
    """A loaded network: raw output of a float32 NCHW batch, and its tile geometry."""

    backend: str
    scale: int
    multiple: int
    minimum: int
    input_channels: int

    def raw(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` float32 -> ``(N, C, H*scale, W*scale)`` float32, not clamped."""
        ...


def installed(name: str) -> bool:
    """Whether backend ``name``'s optional package can be imported."""
    pkg = PACKAGES.get(name)
    return pkg is None or importlib.util.find_spec(pkg) is not None


def check_name(name: str) -> str:
    name = name.strip().lower()
    if name != "auto" and name not in BACKENDS:
        raise RestoreGraphError(
            f"unknown inference backend {name!r} (${ENV}); use auto or one of: "
            + ", ".join(BACKENDS)
        )
    return name


def requested() -> str:
    """The backend ``$RESTOREGRAPH_BACKEND`` asks for (``auto`` when unset)."""
    return check_name(os.environ.get(ENV, "") or "auto")


def resolve(name: str | None = None) -> str:
    """The backend that runs for ``name`` (default: ``$RESTOREGRAPH_BACKEND``): ``auto`` becomes
    the first installed of ``AUTO_ORDER``; a named one whose package is missing becomes
    ``torch`` with a warning."""
    name = requested() if name is None else check_name(name)
    if name == "auto":
        return next(b for b in AUTO_ORDER if installed(b))
    if not installed(name):
        warn_once(
            f"inference backend {name!r} needs the {PACKAGES[name]!r} package, which is not "
            "installed (pip install 'restoregraph[fast]'); running the learned tools on torch"
        )
        return "torch"
    return name


_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()


def warn_once(message: str) -> None:
    """Log ``message`` as a warning, once per process."""
    with _WARN_LOCK:
        if message in _WARNED:
            return
        _WARNED.add(message)
    log.warning(message)


# One engine per (backend, weights file, sha256) and process: models load once per process
# even when several registries (runs, web sessions) hold their own LearnedModel.
_ENGINES: dict[tuple[str, str, str | None], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def load_engine(path: str | os.PathLike[str], sha256: str | None, backend: str) -> Engine:
    """The engine of weights ``path`` on ``backend`` (a resolved name, not ``auto``), cached per
    process. A non-torch backend that fails to load falls back to torch with a warning."""
    key = (backend, str(Path(path).resolve()), sha256)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _load(Path(path), sha256, backend)
            _ENGINES[key] = engine
        return engine


def _load(path: Path, sha256: str | None, backend: str) -> Engine:
    from restoregraph.tools.backends.torch_eager import TorchEngine

    if backend in ("torch", "torch-compile"):
        return TorchEngine(path, sha256, compiled=backend == "torch-compile")
    engine = onnx_or_none(path.name, backend, lambda: _onnx_engine(path, sha256, backend))
    return engine if engine is not None else TorchEngine(path, sha256)


def _onnx_engine(path: Path, sha256: str | None, backend: str) -> Engine:
    from restoregraph.tools.backends.export import ensure_export
    from restoregraph.tools.backends.onnx_engines import OpenVinoEngine, OrtEngine

    onnx_path, meta = ensure_export(path, sha256)
    if backend == "onnxruntime":
        return OrtEngine(onnx_path, meta)
    return OpenVinoEngine(onnx_path, meta, bf16=backend == "openvino-bf16")


T = TypeVar("T")


def onnx_or_none(name: str, backend: str, load: Callable[[], T]) -> T | None:
    """``load()``: what runs ``name`` on the ONNX backend ``backend`` (making and verifying its
    export when needed), or ``None`` after one warning saying why ``name`` runs on torch
    instead. Shipped weights that fail their own sha256 check raise: torch would refuse them
    too. Used by the learned tools, the perception CNN and the embedded planner."""
    from restoregraph.core.errors import ToolError

    try:
        return load()
    except ToolError as exc:
        if "sha256 does not match its manifest" in str(exc) or "not found" in str(exc):
            raise  # the shipped weights themselves are wrong: torch would refuse them too
        warn_once(f"{name}: {backend} unavailable ({exc}); running it on torch")
    except Exception as exc:  # an engine's own failure (unsupported op, bad install ...)
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        warn_once(f"{name}: {backend} failed to load ({text}); running it on torch")
    return None


def onnx_backend(name: str | None = None) -> str | None:
    """The ONNX backend that runs for ``name`` (default: ``$RESTOREGRAPH_BACKEND``), or
    ``None`` when it resolves to a torch one."""
    from restoregraph.tools.backends.onnx_engines import ONNX_BACKENDS

    backend = resolve(name)
    return backend if backend in ONNX_BACKENDS else None


def clear_cache() -> None:
    """Forget loaded engines and warnings (tests)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()
    with _WARN_LOCK:
        _WARNED.clear()


def describe() -> list[dict[str, Any]]:
    """One row per backend: name, installed, and whether ``auto`` picks it now."""
    auto = resolve("auto")
    return [
        {"backend": b, "installed": installed(b), "auto": b == auto, "package": PACKAGES.get(b)}
        for b in BACKENDS
    ]


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "ENV",
    "Engine",
    "check_name",
    "clear_cache",
    "describe",
    "installed",
    "load_engine",
    "onnx_backend",
    "onnx_or_none",
    "requested",
    "resolve",
    "warn_once",
]
