"""The embedded planner's scorer as numpy arrays, derived from the shipped ``.pt`` weights.

On the ONNX backends the planner scores without torch: its ensemble's parameters (every
objective's members, ``proj`` / ``unary`` / ``pair`` / ``task_pair`` and the ``pair_task``
index) and the feature normalisation are written once to ``<stem>-<sha12>.npz`` in the learned
tools' export cache, with a ``.json`` manifest verified like theirs
(:mod:`restoregraph.tools.backends.export`: source sha256, the ``.npz``'s sha256, and an output
check: the numpy tables against PyTorch's on ``CHECK_INPUTS`` fixed random inputs per
objective, within ``CHECK_TOLERANCE``). ``restoregraph tools export`` makes it too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHECK_INPUTS = 8
FORMAT = 1


def member_tables(
    members: Sequence[Mapping[str, np.ndarray]], z: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The pairwise scorer's ``tables`` (unary (V,), pairwise (V, V)) of normalised input
    ``z`` in numpy, averaged over the ensemble ``members`` (float32): ``h = tanh(proj z)``,
    ``u = unary h``, ``v = pair h + task_pair(h)[pair_task]``."""
    us, vs = [], []
    for p in members:
        h = np.tanh(p["proj.weight"] @ z + p["proj.bias"])
        us.append(p["unary.weight"] @ h + p["unary.bias"])
        task_pair = p["task_pair.weight"] @ h + p["task_pair.bias"]
        vs.append(p["pair.weight"] @ h + p["pair.bias"] + task_pair[p["pair_task"]])
    u = np.asarray(np.mean(us, axis=0, dtype=np.float32))
    v = np.asarray(np.mean(vs, axis=0, dtype=np.float32))
    return u, v.reshape(n, n)


def _check_inputs(scorer: Any, seed: int = 0) -> list[np.ndarray]:
    """Raw input vectors whose normalised values are standard normal (the scorer's scale)."""
    rng = np.random.default_rng(seed)
    index = scorer.feat_index
    n = len(scorer.feat_mean) if index is None else int(index.max()) + 1
    out = []
    for _ in range(CHECK_INPUTS):
        raw = np.zeros(n, np.float32)
        z = rng.standard_normal(len(scorer.feat_mean)).astype(np.float32)
        vals = scorer.feat_mean + scorer.feat_std * z
        if index is None:
            raw[:] = vals
        else:
            raw[index] = vals
        out.append(raw)
    return out


Members = dict[str, list[dict[str, np.ndarray]]]


def read_scorer_arrays(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, Members]:
    """(meta, feat_mean, feat_std, members by objective) of a scorer ``.npz`` (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        layout = json.loads(str(data["layout"]))
        members = {
            obj: [
                {k: np.asarray(data[f"{obj}/{i}/{k}"]) for k in layout["params"]}
                for i in range(count)
            ]
            for obj, count in layout["objectives"].items()
        }
        return dict(layout["meta"]), data["feat_mean"], data["feat_std"], members


def export_scorer_arrays(
    scorer: Any, source: Path, sha256: str, folder: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Write the numpy arrays of ``scorer`` (a PyTorch :class:`~restoregraph.planners.embedded.
    Scorer` of weights ``source``, sha256 ``sha256``), check their tables against PyTorch's,
    and publish the file and its manifest."""
    import torch

    from restoregraph.tools.backends.export import (
        CHECK_TOLERANCE,
        checked_difference,
        export_paths,
        publish,
    )
    from restoregraph.weightfiles import sha256_of

    path, meta_path = export_paths(source, sha256, folder, suffix=".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "feat_mean": scorer.feat_mean,
        "feat_std": scorer.feat_std,
    }
    params: list[str] = []
    counts: dict[str, int] = {}
    for obj, nets in scorer.nets_by_objective.items():
        counts[obj] = len(nets)
        for i, net in enumerate(nets):
            for k, v in net.state_dict().items():
                arrays[f"{obj}/{i}/{k}"] = v.detach().numpy()
                if k not in params:
                    params.append(k)
    layout = {"meta": scorer.meta, "objectives": counts, "params": params}
    arrays["layout"] = np.array(json.dumps(layout))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)

    def check() -> float:
        _, _, _, members = read_scorer_arrays(tmp)
        n = len(scorer.vocab)
        max_diff = 0.0
        for obj in counts:
            for x in _check_inputs(scorer):
                got = member_tables(members[obj], scorer.normalise(x), n)
                for want, have in zip(scorer.tables(x, obj), got, strict=True):
                    max_diff = max(max_diff, float(np.abs(want - have).max()))
        return max_diff

    max_diff = checked_difference(tmp, source, check, what="numpy scorer")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "kind": "planner-arrays",
        "source": source.name,
        "source_sha256": sha256,
        "npz": path.name,
        "npz_sha256": sha256_of(tmp),
        "bytes": tmp.stat().st_size,
        "exporter": {"torch": torch.__version__, "numpy": np.__version__},
        "check": {
            "engine": "numpy " + np.__version__,
            "inputs": CHECK_INPUTS,
            "what": "unary and pairwise tables of every objective vs PyTorch",
            "seed": 0,
            "max_abs_diff": max_diff,
            "tolerance": CHECK_TOLERANCE,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    publish(tmp, path, meta_path, meta)
    return path, meta


def ensure_scorer_arrays(
    source: Path, torch_scorer: Callable[[], Any], folder: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """A verified ``.npz`` of planner weights ``source``: the cached one, or a new one from
    ``torch_scorer()`` (the PyTorch scorer of ``source``: torch is imported only then)."""
    from restoregraph.tools.backends.export import ensure_cached, export_paths, verify_export
    from restoregraph.weightfiles import sha256_of

    sha = sha256_of(source)
    path, meta_path = export_paths(source, sha, folder, suffix=".npz")
    return ensure_cached(
        path,
        lambda: verify_export(path, meta_path, sha, geometry_fields=()),
        lambda: export_scorer_arrays(torch_scorer(), source, sha, folder),
        f"{source.name} to numpy arrays",
    )


__all__ = [
    "ensure_scorer_arrays",
    "export_scorer_arrays",
    "member_tables",
    "read_scorer_arrays",
]
