"""The one table of metrics: name -> (function, kind, higher_is_better, needs_weights).

``kind`` is ``'fr'`` (full reference: ``fn(img, ref)``) or ``'nr'`` (no reference: ``fn(img)``).
``needs_weights`` marks metrics whose weights RestoreGraph does not ship (LPIPS, DISTS, the
optional pyiqa ones): they raise ``MetricUnavailable`` until the files are provided.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple

import numpy as np

from restoregraph.core.errors import InputError, MetricUnavailable
from restoregraph.metrics import fullref, learned, noref, pyiqa_backend
from restoregraph.metrics._common import to_image


class MetricSpec(NamedTuple):
    fn: Callable[..., float]
    kind: Literal["fr", "nr"]
    higher_is_better: bool
    needs_weights: bool


METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec(fullref.psnr, "fr", True, False),
    "ssim": MetricSpec(fullref.ssim, "fr", True, False),
    "ms_ssim": MetricSpec(fullref.ms_ssim, "fr", True, False),
    "gmsd": MetricSpec(fullref.gmsd, "fr", False, False),
    "haarpsi": MetricSpec(fullref.haarpsi, "fr", True, False),
    "lpips": MetricSpec(learned.lpips, "fr", False, True),
    "dists": MetricSpec(learned.dists, "fr", False, True),
    "niqe": MetricSpec(noref.niqe, "nr", False, False),
    "brisque": MetricSpec(noref.brisque, "nr", False, False),
    "piqe": MetricSpec(noref.piqe, "nr", False, False),
}
for _name, _higher in pyiqa_backend.PYIQA_METRICS.items():
    METRICS[_name] = MetricSpec(
        functools.partial(pyiqa_backend.pyiqa_metric, _name), "nr", _higher, True
    )


def spec(name: str) -> MetricSpec:
    """The table entry for ``name``, or ``InputError`` listing the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise InputError(
            f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}"
        ) from None


def compute(
    names: str | Iterable[str],
    img: np.ndarray,
    ref: np.ndarray | None = None,
    *,
    skip_unavailable: bool = False,
) -> dict[str, float]:
    """Compute several metrics of ``img`` (against ``ref`` for full-reference ones).

    Unknown names, or full-reference metrics without ``ref``, raise ``InputError`` before
    anything is computed. A metric whose weights/package are missing raises
    ``MetricUnavailable`` unless ``skip_unavailable=True``, in which case it is left out of
    the result (never replaced by another metric).
    """
    wanted = [names] if isinstance(names, str) else list(names)
    specs = {name: spec(name) for name in wanted}
    missing_ref = [n for n, s in specs.items() if s.kind == "fr" and ref is None]
    if missing_ref:
        raise InputError(
            f"full-reference metric(s) {', '.join(missing_ref)} need a reference image"
        )
    a = to_image(img, "image")
    b = to_image(ref, "reference") if ref is not None else None
    out: dict[str, float] = {}
    for name, s in specs.items():
        try:
            value = s.fn(a, b) if s.kind == "fr" else s.fn(a)
        except MetricUnavailable:
            if skip_unavailable:
                continue
            raise
        out[name] = float(value)
    return out


def _probe(name: str) -> None:
    """Raise ``MetricUnavailable`` if ``name`` cannot run now (loads and caches what it needs)."""
    if name in ("gmsd", "haarpsi") and importlib.util.find_spec("piq") is None:
        raise MetricUnavailable(f"{name} needs the piq package")
    if name == "niqe":
        noref.niqe_params()
    elif name == "brisque":
        noref._brisque_model()
    elif name == "piqe":
        noref._piqe_fn()
    elif name == "lpips":
        learned._lpips_model(None, "alex")
    elif name == "dists":
        learned._dists_model(None)
    elif name in pyiqa_backend.PYIQA_METRICS:
        pyiqa_backend._get_metric(name)


def available_metrics(kind: Literal["fr", "nr"] | None = None) -> dict[str, dict[str, Any]]:
    """The metrics usable right now (package and weights present), optionally of one kind.

    Returns ``{name: {"kind": 'fr'|'nr', "higher_is_better": bool, "needs_weights": bool}}`` in
    table order (iterate it for the names). LPIPS and DISTS count as available when their
    default weights resolve (``$RESTOREGRAPH_LPIPS_WEIGHTS`` / ``$RESTOREGRAPH_DISTS_WEIGHTS``
    or the torch hub cache); probing loads and caches the networks.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, s in METRICS.items():
        if kind is not None and s.kind != kind:
            continue
        try:
            _probe(name)
        except MetricUnavailable:
            continue
        out[name] = {
            "kind": s.kind,
            "higher_is_better": s.higher_is_better,
            "needs_weights": s.needs_weights,
        }
    return out
