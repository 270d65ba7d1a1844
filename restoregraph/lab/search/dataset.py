"""Reading pipeline-search data back: samples, node features, the held-out split, value targets.

The held-out split is by *source image* (crc32 of the source path), so no crop of a held-out
photo is ever trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.lab.common import HELDOUT_PERCENT, is_heldout


def read_manifest(data: str | Path) -> dict[str, Any]:
    path = Path(data) / "manifest.json"
    if not path.is_file():
        raise InputError(
            f"{data}: not a search-data directory (no manifest.json; build one with "
            "`restoregraph data build`)"
        )
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    if not isinstance(out, dict):
        raise InputError(f"{path}: not a JSON object")
    return out


def iter_samples(data: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete sample of ``data/samples.jsonl`` (a torn last line is skipped)."""
    path = Path(data) / "samples.jsonl"
    if not path.is_file():
        raise InputError(
            f"{data}: no samples.jsonl (build the data with `restoregraph data build`)"
        )
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                yield json.loads(line)
            except ValueError:
                break


def load_samples(
    data: str | Path, split: str = "all", percent: int = HELDOUT_PERCENT
) -> list[dict[str, Any]]:
    """Samples of ``split``: ``all``, ``train`` or ``heldout`` (by source image)."""
    if split not in ("all", "train", "heldout"):
        raise InputError(f"split must be all, train or heldout, got {split!r}")
    out = []
    for s in iter_samples(data):
        held = is_heldout(str(s["source"]), percent)
        if split == "all" or (split == "heldout") == held:
            out.append(s)
    return out


def load_many(
    datas: Sequence[str | Path], split: str = "all", percent: int = HELDOUT_PERCENT
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first directory's manifest and the samples of ``split`` from every directory of
    ``datas`` (search data built with one toolbox, objective and metrics). Each sample keeps
    its directory under ``"_data"`` (read by :func:`node_features` and the image readers)."""
    if not datas:
        raise InputError("no search-data directory given")
    manifests = [read_manifest(d) for d in datas]
    first = manifests[0]
    for d, m in zip(datas[1:], manifests[1:], strict=True):
        diff = [k for k in ("toolbox", "objective", "metrics") if m.get(k) != first.get(k)]
        if diff:
            raise InputError(f"{d}: built with another {', '.join(diff)} than {datas[0]}")
    out = []
    for d in datas:
        for s in load_samples(d, split, percent):
            s["_data"] = str(d)
            out.append(s)
    return first, out


def node_features(data: str | Path, sample: dict[str, Any]) -> dict[tuple[str, ...], np.ndarray]:
    """Tree path -> feature vector (float32) of every node of ``sample`` (read from the
    sample's own directory when :func:`load_many` recorded one, else from ``data``)."""
    rel = sample.get("features")
    if not rel:
        raise InputError(f"sample {sample.get('id')}: no node features (built with --no-features?)")
    with np.load(Path(sample.get("_data") or data) / rel) as npz:
        paths = [str(p) for p in npz["paths"]]
        feats = npz["features"].astype(np.float32)
    return {tuple(p.split("|")) if p else (): f for p, f in zip(paths, feats, strict=True)}


def node_sizes(
    data: str | Path, sample: dict[str, Any], scales: dict[str, int]
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Tree path -> (height, width) of every node of ``sample``: the degraded image's size
    times the ``scales`` (tool id -> output/input size ratio) of the tools on the path."""
    from PIL import Image

    path = Path(sample.get("_data") or data) / str(sample["degraded"])
    try:
        with Image.open(path) as im:
            width, height = im.size
    except OSError as exc:
        raise InputError(f"sample {sample.get('id')}: unreadable degraded image ({exc})") from None
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    for nd in sample["nodes"]:
        k = 1
        for tool in nd["path"]:
            k *= int(scales.get(tool, 1))
        out[tuple(nd["path"])] = (height * k, width * k)
    return out


def best_reachable(sample: dict[str, Any]) -> dict[tuple[str, ...], float]:
    """Prefix -> best score among the sample's pipelines that start with it (failed = -inf)."""
    best: dict[tuple[str, ...], float] = {}
    for p in sample["pipelines"]:
        steps = tuple(p["steps"])
        score = p["score"]
        s = float(score) if score is not None and math.isfinite(float(score)) else -math.inf
        for i in range(len(steps) + 1):
            best[steps[:i]] = max(best.get(steps[:i], -math.inf), s)
    return best


def percentile_of(sample: dict[str, Any], steps: Sequence[str]) -> float | None:
    """The percentile (0 = best) of pipeline ``steps`` in ``sample``; None if not enumerated."""
    key = list(steps)
    for p in sample["pipelines"]:
        if p["steps"] == key:
            return float(p["percentile"])
    return None


__all__ = [
    "HELDOUT_PERCENT",
    "best_reachable",
    "is_heldout",
    "node_sizes",
    "iter_samples",
    "load_many",
    "load_samples",
    "node_features",
    "percentile_of",
    "read_manifest",
]
