"""Optional backend: learned no-reference metrics (MUSIQ, CLIP-IQA, MANIQA...) through ``pyiqa``.

``pyiqa`` (IQA-PyTorch) is not a dependency of RestoreGraph and is not installed by it. Its
code is under a NON-COMMERCIAL licence (Creative Commons BY-NC-SA 4.0 in the releases checked;
check the one you install), and several of its pretrained weights carry their own research-only
terms: do not use these metrics in anything commercial without checking both.

When ``pyiqa`` is importable, ``pyiqa_metric(name, img)`` creates ``pyiqa.create_metric(name)``
on the CPU, with every download path pyiqa uses blocked for the duration (torch hub's
downloader, pyiqa's own ``download_url_to_file``, ``urllib.request``, and the Hugging Face hub
through ``HF_HUB_OFFLINE``). So the metric works only if its weights are already in pyiqa's
cache (``<torch hub dir>/pyiqa/`` and, for backbones, the usual torch / CLIP / Hugging Face
caches); otherwise it raises ``MetricUnavailable``, as it does when ``pyiqa`` is missing.
Created metrics are cached per name.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from restoregraph.core.errors import MetricUnavailable
from restoregraph.metrics._common import to_image, to_pair, to_tensor

# The pyiqa metrics the registry exposes: name -> higher_is_better.
PYIQA_METRICS = {"musiq": True, "clipiqa": True, "maniqa": True}

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


class _DownloadBlocked(RuntimeError):
    pass


def _blocked(*_args: Any, **_kwargs: Any) -> Any:
    raise _DownloadBlocked("RestoreGraph does not download weights")


_TARGETS = (
    ("torch.hub", "download_url_to_file"),
    ("torch.hub", "load_state_dict_from_url"),
    ("pyiqa.utils.download_util", "download_url_to_file"),
    ("urllib.request", "urlopen"),
    ("urllib.request", "urlretrieve"),
)
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextlib.contextmanager
def downloads_blocked() -> Iterator[None]:
    """Make the download functions used by pyiqa and its backbones raise, temporarily."""
    saved: list[tuple[Any, str, Any]] = []
    saved_env = {k: os.environ.get(k) for k in _OFFLINE_ENV}
    hf = sys.modules.get("huggingface_hub.constants")
    hf_saved = getattr(hf, "HF_HUB_OFFLINE", None) if hf is not None else None
    try:
        for modname, attr in _TARGETS:
            try:
                mod = importlib.import_module(modname)
            except Exception:
                continue
            if hasattr(mod, attr):
                saved.append((mod, attr, getattr(mod, attr)))
                setattr(mod, attr, _blocked)
        for k in _OFFLINE_ENV:
            os.environ[k] = "1"
        if hf is not None:
            setattr(hf, "HF_HUB_OFFLINE", True)  # noqa: B010
        yield
    finally:
        for mod, attr, value in reversed(saved):
            setattr(mod, attr, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hf is not None:
            setattr(hf, "HF_HUB_OFFLINE", hf_saved)  # noqa: B010


def pyiqa_available() -> bool:
    """Whether ``pyiqa`` can be imported (its weights may still be missing)."""
    try:
        importlib.import_module("pyiqa")
    except Exception:
        return False
    return True


def _get_metric(name: str) -> Any:
    with _lock:
        if name in _metrics:
            return _metrics[name]
        try:
            pyiqa = importlib.import_module("pyiqa")
        except Exception as exc:
            raise MetricUnavailable(
                f"{name} needs the optional pyiqa package (non-commercial licence), which is "
                f"not importable ({type(exc).__name__}); pip install pyiqa and its weights"
            ) from None
        try:
            with downloads_blocked():
                metric = pyiqa.create_metric(name, device="cpu", as_loss=False)
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MetricUnavailable(
                f"pyiqa metric {name!r} is unavailable: its weights are not in pyiqa's cache "
                f"(<torch hub dir>/pyiqa) and are never downloaded here ({msg})"
            ) from None
        if hasattr(metric, "eval"):
            metric.eval()
        _metrics[name] = metric
        return metric


def pyiqa_metric(name: str, img: np.ndarray, ref: np.ndarray | None = None) -> float:
    """Score ``img`` (and ``ref`` for full-reference pyiqa metrics) with pyiqa's ``name``."""
    import torch

    metric = _get_metric(name)
    with torch.inference_mode():
        if ref is None:
            out = metric(to_tensor(to_image(img)))
        else:
            a, b = to_pair(img, ref)
            out = metric(to_tensor(a), to_tensor(b))
    return float(torch.as_tensor(out).reshape(-1)[0])


def clear_cache() -> None:
    with _lock:
        _metrics.clear()
