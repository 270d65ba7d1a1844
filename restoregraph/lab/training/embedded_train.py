"""Train (and evaluate) the embedded planner's Q-network on pipeline-search data (CPU).

    python -m restoregraph.lab.training.embedded_train --data data/search \\
        --out restoregraph/weights/embedded_planner.pt --steps 3000 --seed 0

Training examples come from every search tree (:mod:`restoregraph.lab.search.dataset`), train
split only (the held-out split is by source image): for the root and for a sample of the other
decision nodes ``n`` of each tree (an image that really went through ``path(n)``), the
candidates are the completions of ``path(n)`` (the rest of every pipeline below ``n``) and their
targets the final scores (z-scored per image). The loss is listwise: cross-entropy between the
softmax of the scorer's values over a node's completions and the softmax of the targets
(temperature ``--tau``), plus a small squared error on the centred values. Each image weighs
the same; its root (the plan mode's decision) half of it.

Evaluation (held-out split): the ranking percentile (0 = best) of the pipeline each planner
chooses among all pipelines of the image, per mixture kind: the embedded planner in plan mode
(features of the degraded image only) and in stepwise mode (features of each intermediate
image), the fixed expert rules, and random (the expected percentile of a uniformly random
pipeline). Every planner gets the true degradation levels as perception and the search
toolbox as its toolbox.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.lab.search.dataset import (
    load_many,
    node_features,
    node_sizes,
    read_manifest,
)
from restoregraph.planners.embedded import (
    ARCH,
    Scorer,
    best_completion,
    build_net,
    encode_completion,
    vocab_tasks,
)
from restoregraph.weightfiles import atomic_torch_save

MAX_NODES_PER_SAMPLE = 40  # decision nodes besides the root used per image


@dataclass
class NodeSet:
    feat_idx: np.ndarray  # (N,) row of feats for each node
    offsets: np.ndarray  # (N + 1,) candidate rows of node i: offsets[i]:offsets[i + 1]
    unary: np.ndarray  # (C, V)
    pairs: np.ndarray  # (C, V*V)
    targets: np.ndarray  # (C,) z-scored final score of each completion
    weight: np.ndarray  # (N,) each sample sums to 1
    feats: np.ndarray  # (F, D) raw node features


def _tasks_of(tools: Sequence[str]) -> set[str]:
    return {t.split(".", 1)[0] for t in tools}


def pipeline_scores(sample: dict[str, Any], objective: str | None = None) -> list[float | None]:
    """Each pipeline's score under ``objective`` (None: the stored score, the data's objective),
    recomputed from the stored metrics over the sample's pipelines; None for a failed one."""
    pipes = sample["pipelines"]
    if objective is None:
        return [p["score"] for p in pipes]
    from restoregraph.metrics import objective_scores

    ok = [i for i, p in enumerate(pipes) if p["score"] is not None and p.get("metrics")]
    out: list[float | None] = [None] * len(pipes)
    if ok:
        values = objective_scores([pipes[i]["metrics"] for i in ok], objective)
        for i, v in zip(ok, values, strict=True):
            out[i] = v
    return out


def objective_percentiles(
    sample: dict[str, Any], objective: str | None = None
) -> dict[tuple[str, ...], float]:
    """Pipeline -> percentile (0 = best, 100 = worst; failed pipelines last) under
    ``objective``, with the data's definition ((rank - 1) / (n - 1) x 100)."""
    pipes = sample["pipelines"]
    if objective is None:
        return {tuple(p["steps"]): float(p["percentile"]) for p in pipes}
    scores = pipeline_scores(sample, objective)
    keyed = [(-math.inf if v is None else v) for v in scores]
    order = sorted(range(len(pipes)), key=lambda i: -keyed[i])
    n = max(1, len(pipes) - 1)
    return {tuple(pipes[i]["steps"]): 100.0 * r / n for r, i in enumerate(order)}


def _z_targets(
    sample: dict[str, Any], objective: str | None
) -> dict[tuple[str, ...], float] | None:
    """Pipeline -> its score under ``objective`` z-scored over the sample's pipelines (a failed
    one one standard deviation below the worst); None when fewer than two scored."""
    values = pipeline_scores(sample, objective)
    scores = [v for v in values if v is not None]
    if len(scores) < 2:
        return None
    mean, std = float(np.mean(scores)), float(np.std(scores)) or 1.0
    floor = min(scores) - std
    return {
        tuple(p["steps"]): ((v if v is not None else floor) - mean) / std
        for p, v in zip(sample["pipelines"], values, strict=True)
    }


def sample_nodes(
    sample: dict[str, Any],
    feats: dict[tuple[str, ...], np.ndarray],
    rng: np.random.Generator,
    cap: int = MAX_NODES_PER_SAMPLE,
    objectives: Sequence[str | None] = (None,),
) -> list[tuple[tuple[str, ...], list[tuple[str, ...]], np.ndarray, float]]:
    """(node path, completions, z-scored targets, weight) for the decision nodes of a sample;
    the targets are (len(objectives), completions), one row per objective (None: the data's
    own scores). Which nodes are drawn does not depend on the objectives."""
    k = len(sample["tasks"])
    found = [_z_targets(sample, o) for o in objectives]
    zs = [z for z in found if z is not None]
    if k == 0 or not zs or len(zs) < len(found):
        return []
    z = zs[0]
    others = [
        tuple(nd["path"])
        for nd in sample["nodes"]
        if 0 < len(nd["path"]) < k - 1 and not nd.get("error") and tuple(nd["path"]) in feats
    ]  # nodes with one task left have a single order: only the model choice, still useful
    others += [
        tuple(nd["path"])
        for nd in sample["nodes"]
        if len(nd["path"]) == k - 1 and k > 1 and not nd.get("error") and tuple(nd["path"]) in feats
    ]
    if len(others) > cap:
        pick = rng.choice(len(others), size=cap, replace=False)
        others = [others[int(i)] for i in sorted(pick)]
    out = []
    for n in [(), *others]:
        comps = [p[len(n) :] for p in z if p[: len(n)] == n]
        if len(comps) < 2:
            continue
        targets = np.array([[zo[(*n, *c)] for c in comps] for zo in zs], np.float32)
        weight = 0.5 if n == () else 0.5 / max(1, len(others))
        out.append((n, comps, targets, weight))
    return out


def tool_scales(tool_ids: Sequence[str]) -> dict[str, int]:
    """Tool id -> output/input size ratio (the registry's ``scale``; 1 for unknown tools)."""
    from restoregraph.tools import default_registry

    registry = default_registry()
    return {t: int(registry.get(t).scale) if t in registry else 1 for t in tool_ids}


def remaining_perception(sample: dict[str, Any], path: Sequence[str]) -> dict[str, int]:
    """The sample's true perception (type -> level) without the types ``path`` has undone."""
    from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE

    done = _tasks_of(path)
    return {
        ptype: int(level)
        for ptype, level in sample["perception"].items()
        if TASK_FOR_PERCEPTION_TYPE.get(ptype) not in done
    }


def build_nodes(
    data: str | Path,
    samples: Sequence[dict[str, Any]],
    vocab: Sequence[str],
    seed: int,
    perception_input: bool = False,
    objective: str | None = None,
) -> NodeSet:
    """Decision nodes of ``samples`` with their completions and targets under ``objective``
    (None: the data's own scores); see :func:`build_nodes_for`."""
    return build_nodes_for(data, samples, vocab, seed, perception_input, [objective])[0]


def build_nodes_for(
    data: str | Path,
    samples: Sequence[dict[str, Any]],
    vocab: Sequence[str],
    seed: int,
    perception_input: bool = False,
    objectives: Sequence[str | None] = (None,),
    size_input: bool = False,
) -> list[NodeSet]:
    """One :class:`NodeSet` per objective (None: the data's own scores), read and encoded
    once: the same decision nodes, completions and inputs, each objective's targets. With
    ``perception_input`` each node's input vector also carries the encoded true perception of
    what is left to undo there, and with ``size_input`` the node image's size last."""
    import dataclasses

    from restoregraph.planners.features import perception_features, size_features

    scales = tool_scales(vocab) if size_input else {}

    rng = np.random.default_rng(seed)
    vocab_index = {t: i for i, t in enumerate(vocab)}
    feat_rows: list[np.ndarray] = []
    fidx, offsets, unary, pairs, targets, weights = [], [0], [], [], [], []
    for sample in samples:
        feats = node_features(data, sample)
        sizes = node_sizes(data, sample, scales) if size_input else {}
        nodes = sample_nodes(sample, feats, rng, objectives=objectives)
        total = sum(w for *_, w in nodes) or 1.0
        for path, comps, tgt, w in nodes:
            fidx.append(len(feat_rows))
            row = feats[path]
            if perception_input:
                row = np.concatenate([row, perception_features(remaining_perception(sample, path))])
            if size_input:
                row = np.concatenate([row, size_features(*sizes[path])])
            feat_rows.append(row)
            for c in comps:
                u, pr = encode_completion(vocab_index, path, c)
                unary.append(u)
                pairs.append(pr)
            targets.append(tgt)
            offsets.append(offsets[-1] + len(comps))
            weights.append(w / total)
    all_targets = np.concatenate(targets, axis=1).astype(np.float32)
    shared = NodeSet(
        feat_idx=np.asarray(fidx, np.int64),
        offsets=np.asarray(offsets, np.int64),
        unary=np.stack(unary).astype(np.float32),
        pairs=np.stack(pairs).astype(np.float32),
        targets=all_targets[0],
        weight=np.asarray(weights, np.float32),
        feats=np.stack(feat_rows).astype(np.float32),
    )
    return [dataclasses.replace(shared, targets=t) for t in all_targets]


def _batch_rows(nodes: NodeSet, counts: np.ndarray, b: np.ndarray) -> tuple[Any, Any]:
    """The completion rows of decision nodes ``b`` (padded to the widest) and their mask."""
    import torch

    width = int(counts[b].max())
    rows = np.zeros((len(b), width), np.int64)
    mask = np.zeros((len(b), width), bool)
    for r, i in enumerate(b):
        c = int(counts[i])
        rows[r, :c] = np.arange(nodes.offsets[i], nodes.offsets[i] + c)
        mask[r, :c] = True
    return torch.from_numpy(rows), torch.from_numpy(mask)


def _listwise_losses(q: Any, y: Any, mt: Any, tau: float) -> tuple[Any, Any]:
    """Cross-entropy of the predicted values ``q`` against the targets ``y`` (softmax at
    temperature ``tau``), and the MSE of both centred per node (masked by ``mt``)."""
    import torch

    neg = torch.tensor(-1e9)
    logq = torch.log_softmax(torch.where(mt, q, neg), dim=1)
    py = torch.softmax(torch.where(mt, y / tau, neg), dim=1)
    ce = -(py * torch.where(mt, logq, torch.zeros_like(logq))).sum(1).mean()
    n = mt.sum(1, keepdim=True).clamp_min(1)
    qc = q - (q * mt).sum(1, keepdim=True) / n
    yc = y - (y * mt).sum(1, keepdim=True) / n
    mse = (((qc - yc) ** 2) * mt).sum() / mt.sum()
    return ce, mse


def train(
    nodes: NodeSet,
    vocab: Sequence[str],
    steps: int,
    seed: int,
    hidden: int = 8,
    batch: int = 32,
    lr: float = 3e-3,
    tau: float = 0.5,
    mse_weight: float = 0.1,
    weight_decay: float = 1e-3,
    feat_index: Sequence[int] | None = None,
    log_every: int = 500,
    init_state: Mapping[str, Any] | None = None,
    norm: tuple[np.ndarray, np.ndarray] | None = None,
    perception_input: bool = False,
    size_input: bool = False,
) -> dict[str, Any]:
    """Fit the scorer; returns the weights blob (state dict, normalisation, meta).

    ``init_state`` starts from existing weights over the same ``vocab`` (fine-tuning; with
    ``norm`` = their (feat_mean, feat_std) so the features are normalised as before)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    raw = nodes.feats if feat_index is None else nodes.feats[:, list(feat_index)]
    if norm is not None:
        mean, std = np.asarray(norm[0], np.float32), np.asarray(norm[1], np.float32)
    else:
        mean = raw.mean(0)
        std = raw.std(0) + 1e-3
    feats = torch.from_numpy(((raw - mean) / std).astype(np.float32))
    unary = torch.from_numpy(nodes.unary)
    pairs = torch.from_numpy(nodes.pairs)
    tg = torch.from_numpy(nodes.targets)
    counts = np.diff(nodes.offsets)
    p = nodes.weight / nodes.weight.sum()
    net = build_net(feats.shape[1], len(vocab), hidden, vocab_tasks(vocab))
    if init_state is not None:
        net.load_state_dict(dict(init_state))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    net.train()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        b = rng.choice(len(p), size=batch, p=p)
        rt, mt = _batch_rows(nodes, counts, b)
        x = feats[torch.from_numpy(nodes.feat_idx[b])]
        q = net(x, unary[rt], pairs[rt])
        ce, mse = _listwise_losses(q, tg[rt], mt, tau)
        loss = ce + mse_weight * mse
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps):
            print(
                f"step {step}/{steps} loss {loss.item():.4f} (ce {ce.item():.4f} "
                f"mse {mse.item():.4f}) {time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
            )
    net.eval()
    meta: dict[str, Any] = {
        "arch": ARCH,
        "vocab": list(vocab),
        "hidden": hidden,
        "perception_input": bool(perception_input),
        "size_input": bool(size_input),
    }
    if feat_index is not None:
        meta["feat_index"] = [int(i) for i in feat_index]
    return {
        "state": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "feat_mean": torch.from_numpy(mean.astype(np.float32)),
        "feat_std": torch.from_numpy(std.astype(np.float32)),
        "meta": meta,
    }


# -- evaluation -------------------------------------------------------------------------------
def perceived_levels(sample: dict[str, Any], root_features: np.ndarray) -> dict[str, int]:
    """The sample's true degradation types with the levels the perception CNN gives the
    degraded image (the level probabilities at the end of the root's features): what the fixed
    rules would see in the agent when perception finds the right types."""
    # the feature net is the nine-type perception CNN (planners.features)
    from restoregraph.core.tasks import LEGACY_PERCEPTION_TYPES as TYPES

    n = len(TYPES)
    probs = np.asarray(root_features, np.float32)[-4 * n :].reshape(n, 4)
    return {
        ptype: int(np.argmax(probs[TYPES.index(ptype), 1:])) + 1
        for ptype in sample["perception"]
        if ptype in TYPES
    }


def plan_percentiles(
    model: Scorer | None,
    data: str | Path,
    samples: Sequence[dict[str, Any]],
    toolbox: dict[str, list[str]],
    objective: str | None = None,
) -> list[dict[str, Any]]:
    """Per sample: the percentile of the pipeline chosen by each planner (see module doc),
    under ``objective`` (None: the data's own; the embedded planner is asked for it too)."""
    from restoregraph.planners.base import PlanRequest
    from restoregraph.planners.fixed import FixedPlanner
    from restoregraph.tools import default_registry

    registry = default_registry()
    ids = [i for v in toolbox.values() for i in v]
    missing = [i for i in ids if i not in registry]
    if missing:
        raise SystemExit(
            f"the data's search toolbox names tools this installation lacks: {', '.join(missing)}"
        )
    subset = registry.subset(ids)
    scales = {t: int(registry.get(t).scale) for t in ids}
    rows = []
    for sample in samples:
        tasks = list(sample["tasks"])
        if not tasks:
            continue
        pct = objective_percentiles(sample, objective)
        row: dict[str, Any] = {"id": sample["id"], "kind": sample["kind"], "n": len(tasks)}
        row["random"] = float(np.mean(list(pct.values())))
        fixed = FixedPlanner().plan(PlanRequest(perception=sample["perception"], toolbox=subset))
        row["fixed"] = pct.get(tuple(s["tool"] for s in fixed.steps))
        feats = node_features(data, sample)
        sizes = node_sizes(data, sample, scales) if model is not None and model.size_input else {}
        perceived = perceived_levels(sample, feats[()])
        fixed = FixedPlanner().plan(PlanRequest(perception=perceived, toolbox=subset))
        row["fixed_perceived"] = pct.get(tuple(s["tool"] for s in fixed.steps))
        if model is not None:

            def allowed(task: str, pos: int) -> list[str]:
                return list(toolbox.get(task, []))

            x = model.inputs(feats[()], sample["perception"], sizes.get(()))
            chosen = best_completion(model, x, tasks, allowed, objective=objective)
            row["embedded"] = pct.get(tuple(chosen))
            path: tuple[str, ...] = ()
            while len(path) < len(tasks):
                todo = [t for t in tasks if t not in _tasks_of(path)]
                x = model.inputs(feats[path], remaining_perception(sample, path), sizes.get(path))
                nxt = best_completion(model, x, todo, allowed, path, len(path), objective=objective)
                path = (*path, nxt[0])
            row["embedded_stepwise"] = pct.get(path)
        rows.append(row)
    return rows


def summarise(rows: Sequence[dict[str, Any]], planners: Sequence[str]) -> dict[str, Any]:
    """Mean percentile per mixture kind and overall, and top-1 (percentile 0) rates."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    out: dict[str, Any] = {"kinds": {}, "overall": {}, "n": len(rows)}
    for kind, rs in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        out["kinds"][kind] = {
            "n": len(rs),
            **{p: float(np.mean([r[p] for r in rs if r.get(p) is not None])) for p in planners},
        }
    for p in planners:
        vals = [r[p] for r in rows if r.get(p) is not None]
        out["overall"][p] = float(np.mean(vals)) if vals else math.nan
        out["overall"][f"{p}_top1"] = float(np.mean([v == 0.0 for v in vals])) if vals else 0.0
    return out


def _bench_kinds(summary: dict[str, Any]) -> dict[str, Any]:
    from restoregraph.lab.search.mixtures import BENCH_MIXTURES, mixture_kind

    wanted = {mixture_kind([(t, 1) for t in m]) for m in BENCH_MIXTURES}
    return {k: v for k, v in summary["kinds"].items() if k in wanted}


MANIFEST_ID = "planner.embedded"


def update_manifest(manifest: Path, weights: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Set this planner's entry of the shared weights MANIFEST.json (a JSON list of entries),
    re-read right before writing; other entries are left as they are."""
    from restoregraph.weightfiles import sha256_of
    from restoregraph.weightfiles import update_manifest as update_manifest_entry

    entry = {
        "id": MANIFEST_ID,
        "file": weights.name,
        "architecture": (
            f"restoregraph.planners.embedded pairwise plan scorer ({ARCH}): image features "
            f"({meta.get('feature_set', 'all')} set of the perception CNN's head input + level "
            "probabilities)"
            + (
                " + the perception still to undo (level one-hot per type)"
                if meta.get("perception_input")
                else ""
            )
            + f" -> tanh projection ({meta['hidden']}) -> unary tool values "
            f"({len(meta['vocab'])}) + pairwise 'a before b' values "
            f"({len(meta['vocab'])}x{len(meta['vocab'])}); values averaged over "
            f"{meta.get('ensemble', 1)} member(s) trained with consecutive seeds, one ensemble "
            f"per objective ({', '.join(meta.get('objectives') or [meta.get('objective', '')])})"
        ),
        "command": meta.get("command", ""),
        "data": f"{meta.get('data', '')} built by `{meta.get('data_command', '')}`",
        "seed": meta.get("seed"),
        "steps": meta.get("steps"),
        "train_samples": meta.get("train_samples"),
        "vocab": meta["vocab"],
        "sha256": sha256_of(weights),
        "bytes": weights.stat().st_size,
        "trained": time.strftime("%Y-%m-%d"),
        "train_time": f"{meta.get('train_seconds')} s wall on a shared 2-core CPU, torch 1 thread",
        "evaluation": "docs/BENCHMARKS.md (section embedded-planner)",
    }
    update_manifest_entry(manifest, entry)
    return entry


def feature_index(name: str, dim: int) -> list[int] | None:
    """Which entries of the image feature vector a feature set reads (None: all). The vector
    is [CNN average pool (96), CNN max pool (96), image statistics (21), level probabilities
    (36)] for the shipped perception network; the last 57 are the compact set."""
    if name == "all":
        return None
    n_probs = 36
    n_stats = 21
    start = dim - n_probs - (n_stats if name == "compact" else 0)
    return list(range(max(0, start), dim))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m restoregraph.lab.training.embedded_train")
    ap.add_argument(
        "--data",
        required=True,
        action="append",
        help="search-data directory (restoregraph data build); repeat to train on several "
        "built with the same toolbox and objective",
    )
    ap.add_argument("--out", default="restoregraph/weights/embedded_planner.pt")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=8, help="image projection width")
    ap.add_argument("--batch", type=int, default=32, help="decision nodes per step")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--tau", type=float, default=0.5, help="target softmax temperature")
    ap.add_argument(
        "--ensemble", type=int, default=1, help="members (seeds seed..seed+K-1), values averaged"
    )
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument(
        "--features",
        choices=["all", "compact", "probs"],
        default="all",
        help="image features read: all, compact (statistics + probabilities), probabilities",
    )
    ap.add_argument(
        "--objectives",
        default="",
        help="comma-separated objectives to train values for (the first is the default one); "
        "empty: the data's own objective",
    )
    ap.add_argument(
        "--no-perception-input",
        action="store_true",
        help="read the image features only (not the perception result's types and levels)",
    )
    ap.add_argument(
        "--size-input",
        action="store_true",
        help="also read the image size (search.features.size_features; no gain measured: "
        "docs/embedded_planner.md)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-only", action="store_true", help="evaluate --out on the held-out split")
    ap.add_argument("--json", default="", help="write the evaluation summary here")
    ap.add_argument(
        "--manifest",
        default="",
        help="after training, set the 'planner.embedded' entry of this MANIFEST.json",
    )
    ap.add_argument(
        "--report", default="", help="write the 'embedded-planner' section of this markdown file"
    )
    ap.add_argument(
        "--heldout-percent", type=int, default=20, help="share of source images held out"
    )
    ap.add_argument(
        "--eval-split", choices=["heldout", "all"], default="heldout", help="samples to evaluate"
    )
    return ap


def _command(argv: Sequence[str] | None) -> str:
    """The command line that reproduces this run."""
    return shlex.join(
        [
            "python",
            "-m",
            "restoregraph.lab.training.embedded_train",
            *(argv if argv is not None else sys.argv[1:]),
        ]
    )


def _train_objective(
    args: argparse.Namespace, nodes: Any, vocab: list[str], extra: int, norm_from: dict[str, Any]
) -> list[dict[str, Any]]:
    """The ensemble's members for one objective's decision nodes (``extra``: the perception
    and size inputs after the image features); normalised like ``norm_from`` when given."""
    image_dim = nodes.feats.shape[1] - extra
    index = feature_index(args.features, image_dim)
    if index is not None:
        index += list(range(image_dim, nodes.feats.shape[1]))
    norm = (norm_from["feat_mean"].numpy(), norm_from["feat_std"].numpy()) if norm_from else None
    return [
        train(
            nodes,
            vocab,
            args.steps,
            args.seed + k,
            hidden=args.hidden,
            batch=args.batch,
            lr=args.lr,
            tau=args.tau,
            weight_decay=args.weight_decay,
            feat_index=index,
            norm=norm,
            perception_input=not args.no_perception_input,
            size_input=args.size_input,
        )
        for k in range(args.ensemble)
    ]


def _train_blob(
    args: argparse.Namespace,
    train_s: list[dict[str, Any]],
    vocab: list[str],
    objectives: list[str],
    data_objective: str,
) -> tuple[dict[str, Any], int, int]:
    """The weights blob (one ensemble per objective; the first objective's is the default)
    with the numbers of decision nodes and completions (of the last objective)."""
    from restoregraph.planners.features import perception_features, size_features

    perception_input = not args.no_perception_input
    size_input = args.size_input
    states: dict[str, list[Any]] = {}
    blob: dict[str, Any] = {}
    n_nodes = n_cands = 0
    nodesets = build_nodes_for(
        args.data[0],
        train_s,
        vocab,
        args.seed,
        perception_input=perception_input,
        objectives=[None if o == data_objective else o for o in objectives],
        size_input=size_input,
    )
    extra = (len(perception_features({})) if perception_input else 0) + (
        len(size_features(1, 1)) if size_input else 0
    )
    for obj, nodes in zip(objectives, nodesets, strict=True):
        n_nodes, n_cands = len(nodes.weight), len(nodes.targets)
        print(f"{obj}: {n_nodes} decision nodes, {n_cands} completions", file=sys.stderr)
        blobs = _train_objective(args, nodes, vocab, extra, blob)
        if not blob:
            blob = blobs[0]
            blob["members"] = [b["state"] for b in blobs]
        states[obj] = [b["state"] for b in blobs]
    blob["objectives"] = states
    blob["meta"]["objective"] = objectives[0]
    blob["meta"]["objectives"] = objectives
    return blob, n_nodes, n_cands


def _train_and_save(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    manifest: dict[str, Any],
    train_s: list[dict[str, Any]],
    vocab: list[str],
    objectives: list[str],
    t0: float,
) -> None:
    """Train, record how (meta), and write ``--out``."""
    data_objective = str(manifest.get("objective", "balanced"))
    blob, n_nodes, n_cands = _train_blob(args, train_s, vocab, objectives, data_objective)
    blob["meta"].update(
        {
            "command": _command(argv),
            "data": ", ".join(args.data),
            "data_command": "; ".join(str(read_manifest(d).get("command", "")) for d in args.data),
            "seed": args.seed,
            "steps": args.steps,
            "train_samples": len(train_s),
            "decision_nodes": int(n_nodes),
            "completions": n_cands,
            "feature_set": args.features,
            "ensemble": args.ensemble,
            "features": manifest.get("features"),
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
    )
    atomic_torch_save(blob, Path(args.out))
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)


EVAL_PLANNERS = ["embedded", "embedded_stepwise", "fixed", "fixed_perceived", "random"]


def _evaluate(
    model: Scorer,
    data: str,
    held: list[dict[str, Any]],
    toolbox: dict[str, list[str]],
    data_objective: str,
) -> dict[str, Any]:
    """The planners' percentiles on ``held``, per objective the model has values for; printed.
    Returns the summary of the model's default objective (with every objective's overall)."""
    planners = EVAL_PLANNERS
    by_objective: dict[str, Any] = {}
    for obj in model.objectives:
        rows = plan_percentiles(model, data, held, toolbox, None if obj == data_objective else obj)
        by_objective[obj] = summarise(rows, planners)
        print(f"objective {obj}: " + json.dumps(by_objective[obj]["overall"]), file=sys.stderr)
    summary = by_objective[model.objective]
    summary["bench_kinds"] = _bench_kinds(summary)
    summary["objectives"] = {o: v["overall"] for o, v in by_objective.items()}
    print(json.dumps(summary["overall"], indent=1))
    for kind, v in summary["kinds"].items():
        cells = " ".join(f"{p}={v[p]:.1f}" for p in planners)
        print(f"{kind:40s} n={v['n']:3d} {cells}")
    return summary


def _write_report(
    args: argparse.Namespace, argv: Sequence[str] | None, summary: dict[str, Any], model: Scorer
) -> None:
    """The 'embedded-planner' section of ``--report`` (with the planner's latency)."""
    from restoregraph.lab.report import write_section
    from restoregraph.lab.search.report import measure_latency, planner_section
    from restoregraph.planners.embedded import EmbeddedPlanner

    latency = measure_latency(EmbeddedPlanner(weights=args.out))
    for size, v in latency.items():
        print(f"latency {size}px: median {v['median'] * 1000:.1f} ms", file=sys.stderr)
    write_section(
        args.report,
        "embedded-planner",
        planner_section(summary, latency, model.meta, _command(argv)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    manifest, train_s = load_many(args.data, "train", args.heldout_percent)
    _, held = load_many(args.data, args.eval_split, args.heldout_percent)
    toolbox = {t: list(v) for t, v in manifest["toolbox"].items()}
    vocab = [i for v in toolbox.values() for i in v]
    print(f"{len(train_s)} training samples, {len(held)} evaluated", file=sys.stderr)
    if not train_s and not args.eval_only:
        raise SystemExit(f"{', '.join(args.data)}: no training samples")
    t0 = time.perf_counter()
    data_objective = str(manifest.get("objective", "balanced"))
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()] or [data_objective]
    if not args.eval_only:
        _train_and_save(args, argv, manifest, train_s, vocab, objectives, t0)
    from restoregraph.planners.embedded import load_model

    model = load_model(args.out)
    if args.manifest and not args.eval_only:
        update_manifest(Path(args.manifest), Path(args.out), model.meta)
        print(f"updated {args.manifest} ({MANIFEST_ID})", file=sys.stderr)
    summary = _evaluate(model, args.data[0], held, toolbox, data_objective)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if args.report:
        _write_report(args, argv, summary, model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
