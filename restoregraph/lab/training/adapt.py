"""``restoregraph adapt --add-tool ID``: grow the search data and the embedded planner for a new tool.

RestoreAgent adapts to a new tool (its example: a desnowing model, 30 min) by extending its
pipeline-search data and fine-tuning the planner. Here:

1. **Data.** The tool's task already in the search toolbox: every sample whose tasks include
   it gets the pipelines that contain the new tool -- only those are run, as one prefix tree
   per sample (:func:`restoregraph.planners.tree.walk_tree`), so a prefix shared by several new
   pipelines is computed once and the old pipelines are not re-run. New nodes are measured and
   get planner features; every pipeline of the sample (old and new) is re-scored with the
   data's objective (scores are z-scores over the image's pipelines, so adding pipelines moves
   them all) and re-ranked; the images of the new best and worst paths are saved.
   A tool of a task the toolbox does not have yet: no existing sample needs that task, so
   ``new_samples`` fresh samples are built with the extended toolbox (the builder's
   :func:`restoregraph.lab.search.build.build_sample`), until that many need the task.
   ``samples.jsonl`` is rewritten atomically at the end; the manifest's toolbox gets the tool
   and an ``adapted`` entry.
2. **Planner.** The embedded planner's pairwise scorer is fine-tuned from its current weights
   (:mod:`restoregraph.lab.training.embedded_train`'s ``build_nodes_for`` and ``train``): the new
   tool's unary and pairwise values start as the mean of its task's other tools, every other
   weight is copied, and training goes on for ``steps`` steps at a lower learning rate on the
   extended data.

The wall time of each part is returned (and printed by the command).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError, OutputError


@dataclass
class AdaptSummary:
    tool: str
    task: str
    samples: int = 0  # samples in the data
    extended: int = 0  # existing samples that got new pipelines
    new_samples: int = 0  # samples built for a new task
    new_pipelines: int = 0
    tool_calls: int = 0
    skipped_pipelines: int = 0  # new pipelines left out: they name a tool not installed here
    missing: list[str] = field(default_factory=list)
    data_seconds: float = 0.0
    train_seconds: float = 0.0
    weights: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    # held-out planned-pipeline percentile on the extended data, old and fine-tuned weights
    eval_before: dict[str, float] = field(default_factory=dict)
    eval_after: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return self.data_seconds + self.train_seconds


# -- the data ---------------------------------------------------------------------------------
def _load_lines(data: Path) -> list[dict[str, Any]]:
    from restoregraph.lab.search.dataset import iter_samples

    return list(iter_samples(data))


def extend_sample(
    data: Path,
    record: dict[str, Any],
    tool_id: str,
    toolbox: Mapping[str, Sequence[str]],
    registry: Any,
    objective: str,
    metric_names: Sequence[str],
) -> tuple[dict[str, Any], dict[str, bytes], int, int, int]:
    """``record`` with the pipelines that contain ``tool_id``: (record, files, new pipelines,
    tool calls, pipelines left out because they name a tool this install lacks)."""
    from restoregraph.imageio import load_image
    from restoregraph.lab.search.build import _png, _round
    from restoregraph.metrics import OBJECTIVES, compute, match_size, objective_scores
    from restoregraph.planners.tree import (
        enumerate_pipelines,
        percentile_of_rank,
        pipeline_total,
        rank_scores,
        walk_tree,
    )

    tasks = list(record["tasks"])
    models = {t: list(toolbox[t]) for t in tasks if t in toolbox}
    have = {tuple(p["steps"]) for p in record["pipelines"]}
    todo = [
        p
        for p in enumerate_pipelines(models, max_pipelines=max(1, pipeline_total(models)))
        if tool_id in p and p not in have
    ]
    runnable = [p for p in todo if all(t in registry for t in p)]
    skipped = len(todo) - len(runnable)
    todo = runnable
    if not todo:
        return record, {}, 0, 0, skipped
    clean = load_image(data / record["clean"])
    degraded = load_image(data / record["degraded"])
    nodes: list[dict[str, Any]] = [dict(n) for n in record["nodes"]]
    node_index = {tuple(n["path"]): i for i, n in enumerate(nodes)}
    feats_old: dict[str, np.ndarray] = {}
    with_features = bool(record.get("features"))
    if with_features:
        with np.load(data / record["features"]) as npz:
            feats_old = {str(p): f for p, f in zip(npz["paths"], npz["features"], strict=True)}
        from restoregraph.planners.features import image_features
    images: dict[tuple[str, ...], np.ndarray] = {(): degraded}
    new_feats: dict[str, np.ndarray] = {}
    finals: dict[tuple[str, ...], tuple[dict[str, float], str]] = {}

    def on_node(prefix: tuple[str, ...], image: np.ndarray | None, error: str) -> None:
        if image is not None:
            images[prefix] = image
        if prefix in node_index:
            return
        node: dict[str, Any] = {"path": list(prefix), "metrics": {}, "image": None}
        if image is None:
            node["error"] = error
        else:
            node["metrics"] = _round(dict(compute(metric_names, match_size(image, clean), clean)))
        if with_features and image is not None and len(prefix) < len(tasks):
            # as the builder: features of decision points only (a leaf is never one)
            new_feats["|".join(prefix)] = image_features(image).astype(np.float16)
        node_index[prefix] = len(nodes)
        nodes.append(node)

    def on_final(p: tuple[str, ...], image: np.ndarray | None, error: str) -> None:
        finals[p] = (nodes[node_index[p]]["metrics"], error)

    stats = walk_tree(degraded, todo, registry, on_final=on_final, on_node=on_node)

    # every pipeline, old and new, re-scored and re-ranked
    entries: dict[tuple[str, ...], dict[str, Any]] = {
        tuple(p["steps"]): {"metrics": p.get("metrics", {}), "error": p.get("error", "")}
        for p in record["pipelines"]
    }
    for p, (m, err) in finals.items():
        entries[p] = {"metrics": _round(dict(m)), "error": err}
    ordered = sorted(entries)
    obj_metrics = OBJECTIVES[objective]
    ok = [
        p
        for p in ordered
        if not entries[p]["error"] and all(k in entries[p]["metrics"] for k in obj_metrics)
    ]
    scores = {p: math.nan for p in ordered}
    if ok:
        measured = [{k: entries[p]["metrics"][k] for k in obj_metrics} for p in ok]
        for p, s in zip(ok, objective_scores(measured, objective), strict=True):
            scores[p] = float(s)
    ranks = dict(zip(ordered, rank_scores([scores[p] for p in ordered]), strict=True))
    n = len(ordered)
    by_rank = sorted(ordered, key=lambda p: (ranks[p], p))
    best = by_rank[0]
    worst = max(ok, key=lambda p: (ranks[p], p)) if ok else by_rank[-1]

    files: dict[str, bytes] = {}
    folder = str(Path(record["degraded"]).parent)

    def image_of(prefix: tuple[str, ...]) -> np.ndarray | None:
        if prefix in images:
            return images[prefix]
        parent = image_of(prefix[:-1])
        if parent is None:
            return None
        from restoregraph.core.errors import RestoreGraphError
        from restoregraph.tools.run import run_tool

        try:
            images[prefix] = run_tool(registry.get(prefix[-1]), parent)
        except RestoreGraphError:
            return None
        return images[prefix]

    for p in (best, worst):
        for i in range(1, len(p) + 1):
            k = node_index.get(p[:i])
            if k is None or nodes[k].get("image"):
                continue
            img = image_of(p[:i])
            if img is not None:
                nodes[k]["image"] = f"{folder}/n{k}.png"
                files[nodes[k]["image"]] = _png(img)
    out = dict(record)
    out["nodes"] = nodes
    out["pipelines"] = [
        {
            "steps": list(p),
            "metrics": entries[p]["metrics"],
            "score": None if not math.isfinite(scores[p]) else round(scores[p], 6),
            "rank": ranks[p],
            "percentile": round(percentile_of_rank(ranks[p], n), 4),
            **({"error": entries[p]["error"]} if entries[p]["error"] else {}),
        }
        for p in by_rank
    ]
    out["tool_calls"] = int(record.get("tool_calls", 0)) + stats.tool_calls
    out["adapted"] = [*record.get("adapted", []), tool_id]
    if with_features and new_feats:
        paths = [*feats_old, *(p for p in new_feats if p not in feats_old)]
        rows = [feats_old[p] if p in feats_old else new_feats[p] for p in paths]
        stacked = np.stack(rows).astype(np.float16)
        buf = io.BytesIO()
        np.savez_compressed(buf, paths=np.array(paths), features=stacked)
        files[str(record["features"])] = buf.getvalue()
    return out, files, len(todo), stats.tool_calls, skipped


def _bar(items: Sequence[Any], desc: str, show: bool) -> Iterator[Any]:
    if not show:
        yield from items
        return
    from restoregraph.core.util import progress

    yield from progress(items, len(items), desc)


def extend_data(
    data: Path,
    tool_id: str,
    new_samples: int = 8,
    registry: Any = None,
    show_progress: bool = True,
    summary: AdaptSummary | None = None,
) -> AdaptSummary:
    """Add ``tool_id`` to the search data in ``data`` (see the module docstring)."""
    from restoregraph.core.util import atomic_write
    from restoregraph.lab.search.build import (
        MANIFEST,
        SAMPLES,
        BuildConfig,
        build_sample,
        list_sources,
        metric_names,
    )
    from restoregraph.lab.search.dataset import read_manifest

    t0 = time.perf_counter()
    data = Path(data)
    if registry is None:
        from restoregraph.tools import default_registry

        registry = default_registry()
    if tool_id not in registry:
        raise InputError(
            f"unknown tool {tool_id!r}: add it first with `restoregraph tools add` "
            "(see `restoregraph tools list`)"
        )
    task = registry.get(tool_id).task
    manifest = read_manifest(data)
    toolbox = {t: list(v) for t, v in (manifest.get("toolbox") or {}).items()}
    if tool_id in toolbox.get(task, []):
        raise InputError(f"{data} already holds pipelines with {tool_id!r}; nothing to adapt")
    # the new pipelines hold the new tool and tools of the OTHER tasks; those of them that
    # name a tool this install lacks cannot be run: they are left out, and counted
    s = summary or AdaptSummary(tool=tool_id, task=task)
    s.missing = sorted(
        i for t, ids in toolbox.items() if t != task for i in ids if i not in registry
    )
    new_task = task not in toolbox
    if new_task and s.missing:
        raise InputError(
            f"new samples for task {task} need every search tool; this install lacks: "
            f"{', '.join(s.missing)}"
        )
    toolbox.setdefault(task, []).append(tool_id)
    objective = str(manifest.get("objective", "balanced"))
    names = list(manifest.get("metrics") or metric_names(objective))
    records = _load_lines(data)
    s.samples = len(records)
    out_records: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for rec in _bar(records, f"adapt: pipelines with {tool_id}", show_progress):
        if task in rec.get("tasks", []):
            new_rec, f, n_new, calls, n_skip = extend_sample(
                data, rec, tool_id, toolbox, registry, objective, names
            )
            s.skipped_pipelines += n_skip
            if n_new:
                s.extended += 1
                s.new_pipelines += n_new
                s.tool_calls += calls
                files.update(f)
            out_records.append(new_rec)
        else:
            out_records.append(rec)
    if new_task and new_samples > 0:
        source = str(manifest.get("source", ""))
        if not source or not Path(source).is_dir():
            raise InputError(
                f"{tool_id!r} serves a task the data has no samples for ({task}); new samples "
                f"need the data's source folder, which is not here: {source or '(none)'}"
            )
        cfg = BuildConfig(
            source=source,
            out=str(data),
            n=int(manifest.get("n_images", len(records))),
            toolbox=toolbox,
            seed=int(manifest.get("seed", 0)),
            crop=int(manifest.get("crop", 128)),
            objective=objective,
            features=bool(manifest.get("features")),
        )
        sources = list_sources(source)
        ids = [int(r["id"]) for r in records if str(r.get("id", "")).isdigit()]
        index = max(ids, default=-1) + 1
        with_task = 0
        for _ in _bar(range(new_samples * 6), f"adapt: new {task} samples", show_progress):
            if with_task >= new_samples:
                break
            res = build_sample(cfg, sources, index)
            index += 1
            files.update(res.files)
            out_records.append(res.record)
            s.new_samples += 1
            s.new_pipelines += res.pipelines
            s.tool_calls += res.tool_calls
            with_task += task in res.record["tasks"]
        manifest["n_images"] = index
    for rel, blob in files.items():
        atomic_write(data / rel, blob)
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in out_records)
    atomic_write(data / SAMPLES, text.encode())
    s.data_seconds = time.perf_counter() - t0
    manifest["toolbox"] = toolbox
    manifest.setdefault("adapted", []).append(
        {
            "tool": tool_id,
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "extended_samples": s.extended,
            "new_samples": s.new_samples,
            "new_pipelines": s.new_pipelines,
            "skipped_pipelines": s.skipped_pipelines,
            "tool_calls": s.tool_calls,
            "seconds": round(s.data_seconds, 1),
        }
    )
    atomic_write(data / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return s


# -- the planner ------------------------------------------------------------------------------
def warm_start(old: Mapping[str, Any], new_vocab: Sequence[str]) -> dict[str, Any]:
    """A state dict of the embedded planner's pairwise scorer over ``new_vocab`` from ``old``
    (a weights blob): the feature projection is copied, and so is every unary and pairwise
    value of the old tools; a new tool's values start as the mean of its task's other tools
    (in both pair slots), so before fine-tuning it is ranked like an average tool of its task."""
    import torch

    state = {k: v.clone() for k, v in old["state"].items()}
    if not {"proj.weight", "unary.weight", "pair.weight"} <= set(state):
        raise InputError(
            f"embedded planner weights of architecture {old['meta'].get('arch')!r}: adapt "
            "knows the pairwise scorer (proj / unary / pair)"
        )
    old_vocab = list(old["meta"]["vocab"])
    at = {t: i for i, t in enumerate(old_vocab)}
    n_old, n_new = len(old_vocab), len(new_vocab)

    def mates(tool: str) -> list[int]:
        """Old indices standing in for ``tool``: itself, else its task's other tools."""
        if tool in at:
            return [at[tool]]
        task = tool.split(".", 1)[0]
        return [at[t] for t in old_vocab if t.split(".", 1)[0] == task]

    uw, ub = state["unary.weight"], state["unary.bias"]
    new_uw = torch.zeros(n_new, uw.shape[1], dtype=uw.dtype)
    new_ub = torch.zeros(n_new, dtype=ub.dtype)
    for j, tool in enumerate(new_vocab):
        m = mates(tool)
        if m:
            new_uw[j], new_ub[j] = uw[m].mean(0), ub[m].mean()
    pw, pb = state["pair.weight"], state["pair.bias"]
    new_pw = torch.zeros(n_new * n_new, pw.shape[1], dtype=pw.dtype)
    new_pb = torch.zeros(n_new * n_new, dtype=pb.dtype)
    for a, ta in enumerate(new_vocab):
        for b, tb in enumerate(new_vocab):
            rows = [i * n_old + k for i in mates(ta) for k in mates(tb) if i != k]
            if rows:
                new_pw[a * n_new + b], new_pb[a * n_new + b] = pw[rows].mean(0), pb[rows].mean()
    state["unary.weight"], state["unary.bias"] = new_uw, new_ub
    state["pair.weight"], state["pair.bias"] = new_pw, new_pb
    from restoregraph.planners.embedded import build_net, task_names, vocab_tasks

    if "task_pair.weight" in state:  # task-level order values
        old_tasks, new_tasks = task_names(old_vocab), task_names(new_vocab)
        tw, tb = state["task_pair.weight"], state["task_pair.bias"]
        n_t, o_t = len(new_tasks), len(old_tasks)
        new_tw = torch.zeros(n_t * n_t, tw.shape[1], dtype=tw.dtype)
        new_tb = torch.zeros(n_t * n_t, dtype=tb.dtype)
        for a, ta in enumerate(new_tasks):
            for b, tb_name in enumerate(new_tasks):
                if ta in old_tasks and tb_name in old_tasks:
                    k = old_tasks.index(ta) * o_t + old_tasks.index(tb_name)
                    new_tw[a * n_t + b], new_tb[a * n_t + b] = tw[k], tb[k]
        state["task_pair.weight"], state["task_pair.bias"] = new_tw, new_tb
    # buffers (index tables) are the new vocabulary's: take them from a freshly built net
    hidden, n_feats = state["proj.weight"].shape
    fresh = build_net(n_feats, n_new, hidden, vocab_tasks(new_vocab))
    for name, buf in fresh.named_buffers():
        state[name] = buf.clone()
    return state


def finetune_embedded(
    data: Path,
    weights_in: Path,
    weights_out: Path,
    steps: int = 600,
    seed: int = 0,
    lr: float = 1e-3,
    command: str = "",
) -> dict[str, Any]:
    """Fine-tune the embedded planner at ``weights_in`` on ``data``; write ``weights_out``."""
    import torch

    from restoregraph.lab.search.dataset import load_samples, read_manifest
    from restoregraph.lab.training.embedded_train import build_nodes_for, train

    if not Path(weights_in).is_file():
        raise InputError(
            f"embedded planner weights not found: {weights_in} (train them first with "
            "`python -m restoregraph.lab.training.embedded_train`, or pass --weights)"
        )
    t0 = time.perf_counter()
    old = torch.load(weights_in, map_location="cpu", weights_only=True)
    manifest = read_manifest(data)
    toolbox = {t: list(v) for t, v in manifest["toolbox"].items()}
    vocab = [i for v in toolbox.values() for i in v]
    samples = load_samples(data, "train")
    meta = old["meta"]
    feat_index = meta.get("feat_index")
    perception_input = bool(meta.get("perception_input", False))
    size_input = bool(meta.get("size_input", False))
    data_objective = str(manifest.get("objective", "balanced"))
    default = str(meta.get("objective", data_objective))
    by_objective = dict(old.get("objectives") or {default: [old["state"]]})
    norm = (old["feat_mean"].numpy(), old["feat_std"].numpy())
    blob: dict[str, Any] = {}
    states: dict[str, list[Any]] = {}
    nodesets = build_nodes_for(
        data,
        samples,
        vocab,
        seed,
        perception_input=perception_input,
        objectives=[None if o == data_objective else o for o in by_objective],
        size_input=size_input,
    )
    n_nodes = len(nodesets[0].weight)
    n_feats = len(feat_index) if feat_index is not None else nodesets[0].feats.shape[1]
    if n_feats != len(old["feat_mean"]):
        raise InputError("the search data's features differ from those the planner was trained on")
    for (objective, members), nodes in zip(by_objective.items(), nodesets, strict=True):
        out = train(
            nodes,
            vocab,
            steps,
            seed,
            hidden=int(meta.get("hidden", 8)),
            lr=lr,
            feat_index=feat_index,
            log_every=0,
            init_state=warm_start({"state": members[0], "meta": meta}, vocab),
            norm=norm,
            perception_input=perception_input,
            size_input=size_input,
        )
        states[str(objective)] = [out["state"]]
        if not blob or objective == default:
            blob = {**out, "objectives": states}
    blob["members"] = states[default]
    blob["state"] = states[default][0]
    blob["meta"]["objective"] = default
    blob["meta"]["objectives"] = list(states)
    blob["meta"].update(
        {
            "command": command,
            "data": str(data),
            "data_command": manifest.get("command", ""),
            "seed": seed,
            "steps": steps,
            "finetuned_from": str(weights_in),
            "train_samples": len(samples),
            "nodes": int(n_nodes),
            "features": manifest.get("features"),
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
    )
    from restoregraph.weightfiles import atomic_torch_save

    atomic_torch_save(blob, Path(weights_out))
    return dict(blob["meta"])


def heldout_percentiles(data: Path, weights: Path, tool_id: str) -> dict[str, float]:
    """The embedded planner at ``weights`` on the held-out samples of ``data`` (plan mode, from
    the degraded image's features): mean percentile of its chosen pipeline among the sample's
    pipelines (0 = best), and the share of plans of the tool's task that use ``tool_id``."""
    import torch

    from restoregraph.lab.search.dataset import (
        load_samples,
        node_features,
        node_sizes,
        percentile_of,
    )
    from restoregraph.lab.training.embedded_train import tool_scales
    from restoregraph.planners.embedded import Scorer, best_completion

    model = Scorer(torch.load(weights, map_location="cpu", weights_only=True))
    task = tool_id.split(".", 1)[0]
    vocab = set(model.vocab)
    scales = tool_scales(model.vocab) if model.size_input else {}
    pcts: list[float] = []
    uses: list[bool] = []
    for sample in load_samples(data, "heldout"):
        tasks = list(sample["tasks"])
        feats = node_features(data, sample)
        if not tasks or () not in feats:
            continue
        tools = {t for p in sample["pipelines"] for t in p["steps"]}

        def allowed(t: str, pos: int, tools: set[str] = tools) -> list[str]:
            return sorted(i for i in tools if i.split(".", 1)[0] == t and i in vocab)

        size = node_sizes(data, sample, scales)[()] if model.size_input else None
        x = model.inputs(feats[()], sample["perception"], size)
        chosen = best_completion(model, x, tasks, allowed)
        pct = percentile_of(sample, chosen)
        if pct is None:
            continue
        pcts.append(pct)
        if task in tasks:
            uses.append(tool_id in chosen)
    return {
        "samples": float(len(pcts)),
        "mean_pct": float(np.mean(pcts)) if pcts else math.nan,
        "uses_new_tool": float(np.mean(uses)) if uses else math.nan,
    }


def adapt(
    tool_id: str,
    data: Path,
    weights_in: Path | None,
    weights_out: Path,
    steps: int = 600,
    new_samples: int = 8,
    train: bool = True,
    overwrite: bool = False,
    command: str = "",
    show_progress: bool = True,
) -> AdaptSummary:
    """Extend ``data`` for ``tool_id``, then fine-tune the embedded planner (timed)."""
    import torch

    from restoregraph.planners.embedded import DEFAULT_WEIGHTS

    weights_out = Path(weights_out)
    if train and weights_out.exists() and not overwrite:
        raise OutputError(f"{weights_out} exists; pass --overwrite to replace it")
    weights_in = Path(weights_in) if weights_in is not None else DEFAULT_WEIGHTS
    if train and not weights_in.is_file():
        raise InputError(
            f"embedded planner weights not found: {weights_in} (pass --weights, or --no-train)"
        )
    torch.set_num_threads(1)
    summary = extend_data(data, tool_id, new_samples=new_samples, show_progress=show_progress)
    if train:
        t0 = time.perf_counter()
        summary.train = finetune_embedded(
            data, weights_in, weights_out, steps=steps, command=command
        )
        summary.train_seconds = time.perf_counter() - t0
        summary.weights = str(weights_out)
        summary.eval_before = heldout_percentiles(data, weights_in, tool_id)
        summary.eval_after = heldout_percentiles(data, weights_out, tool_id)
    return summary


__all__ = [
    "AdaptSummary",
    "adapt",
    "extend_data",
    "extend_sample",
    "finetune_embedded",
    "warm_start",
]
