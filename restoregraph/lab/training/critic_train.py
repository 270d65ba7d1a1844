"""Train (and evaluate) the plan critic on pipeline-search data built with ``--leaf-features``.

    restoregraph data build -o data/search_critic --crop 192 --mixtures bench --leaf-features
    python -m restoregraph.lab.training.critic_train --data data/search_critic \\
        --out restoregraph/weights/plan_critic.pt --seed 0

Examples (train split only; the held-out split is by source image, as for the embedded
planner): every training image with its pipelines' final images -- the critic's inputs
(:func:`restoregraph.planners.critic.critic_inputs`) and their scores under the data's objective,
z-scored per image. Loss: listwise cross-entropy between the softmax of the critic's scores over
an image's finals and the softmax of the targets (temperature ``--tau``), plus a small squared
error on the centred scores.

Evaluation (held-out split), as the ranking percentile (0 = best) of the chosen pipeline among
all of the image's pipelines: the critic alone over every final image (a ceiling for
verification: it needs every pipeline run), the embedded planner alone, and the embedded planner
verifying its K best plans with the critic (``EmbeddedPlanner(verify=K)``), per mixture kind.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.lab.search.dataset import load_many, node_features, node_sizes
from restoregraph.lab.training.embedded_train import (
    _z_targets,
    feature_index,
    objective_percentiles,
    tool_scales,
)
from restoregraph.planners.critic import ARCH, build_critic, critic_inputs
from restoregraph.weightfiles import atomic_torch_save

MANIFEST_ID = "planner.critic"


def sample_finals(
    data: str | Path, sample: dict[str, Any]
) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray] | None:
    """(input features (D,), the pipelines with final features, their features (K, D)) of a
    sample built with leaf features; None without them."""
    feats = node_features(data, sample)
    pipes = [tuple(p["steps"]) for p in sample["pipelines"] if p.get("score") is not None]
    have = [p for p in pipes if p in feats and len(p) > 0]
    if () not in feats or len(have) < 2:
        return None
    return feats[()], have, np.stack([feats[p] for p in have])


def build_examples(
    data: str | Path, samples: Sequence[dict[str, Any]], index: list[int] | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per usable sample: (raw critic inputs (K, 2F), z-scored targets (K,))."""
    out = []
    for sample in samples:
        got = sample_finals(data, sample)
        z = _z_targets(sample, None)
        if got is None or z is None:
            continue
        source, pipes, finals = got
        out.append(
            (critic_inputs(finals, source, index), np.array([z[p] for p in pipes], np.float32))
        )
    return out


def train(
    examples: Sequence[tuple[np.ndarray, np.ndarray]],
    steps: int,
    seed: int,
    hidden: int = 32,
    batch: int = 16,
    lr: float = 3e-3,
    tau: float = 0.5,
    mse_weight: float = 0.1,
    weight_decay: float = 1e-3,
    norm: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Fit one critic; returns (state dict, input mean, input std)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    allx = np.concatenate([x for x, _ in examples])
    mean, std = norm if norm is not None else (allx.mean(0), allx.std(0) + 1e-3)
    xs = [torch.from_numpy(((x - mean) / std).astype(np.float32)) for x, _ in examples]
    ys = [torch.from_numpy(y) for _, y in examples]
    net = build_critic(allx.shape[1], hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    net.train()
    for _ in range(steps):
        loss = torch.zeros(())
        for i in rng.integers(0, len(xs), size=batch):
            q = net(xs[int(i)])[:, 0]
            y = ys[int(i)]
            ce = -(torch.softmax(y / tau, 0) * torch.log_softmax(q, 0)).sum()
            mse = (((q - q.mean()) - (y - y.mean())) ** 2).mean()
            loss = loss + (ce + mse_weight * mse) / batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return state, mean.astype(np.float32), std.astype(np.float32)


def col_name(k: int, prior: float) -> str:
    return f"verify{k}" + (f"_prior{prior:g}" if prior else "")


def evaluate(
    critic_path: Path,
    planner_weights: str | None,
    data: str | Path,
    samples: Sequence[dict[str, Any]],
    ks: Sequence[int],
    priors: Sequence[float] = (0.0,),
) -> dict[str, Any]:
    """Held-out percentiles: critic alone, embedded alone, embedded verifying its top K (with
    each weight of the planner's own values: :func:`.critic.combine_pick`)."""
    from restoregraph.planners.critic import combine_pick, load_critic
    from restoregraph.planners.embedded import load_model, ranked_completions

    critic = load_critic(critic_path)
    model = load_model(planner_weights)
    rows: list[dict[str, Any]] = []
    for sample in samples:
        got = sample_finals(data, sample)
        tasks = list(sample["tasks"])
        if got is None or not tasks:
            continue
        source, pipes, finals = got
        pct = objective_percentiles(sample, None)
        scores = critic.score(finals, source)
        by_pipe = dict(zip(pipes, scores, strict=True))
        row: dict[str, Any] = {"kind": sample["kind"], "n": len(pipes)}
        row["critic_all"] = pct[pipes[int(np.argmax(scores))]]
        tools = {t for p in pipes for t in p}

        def allowed(task: str, pos: int, tools: set[str] = tools) -> list[str]:
            return sorted(t for t in tools if t.split(".", 1)[0] == task)

        size = None
        if model.size_input:
            size = node_sizes(data, sample, tool_scales(model.vocab))[()]
        x = model.inputs(source, sample["perception"], size)
        scored = ranked_completions(model, x, tasks, allowed)
        ranked = [c for c, _ in scored]
        if not ranked or ranked[0] not in pct:
            continue
        row["embedded"] = pct[ranked[0]]
        for k in ks:
            top = [(c, v) for c, v in scored[:k] if c in by_pipe]
            for lam in priors:
                pick = (
                    combine_pick([by_pipe[c] for c, _ in top], [v for _, v in top], lam)
                    if top
                    else 0
                )
                row[col_name(k, lam)] = pct[top[pick][0] if top else ranked[0]]
        rows.append(row)
    cols = ["critic_all", "embedded", *(col_name(k, lam) for k in ks for lam in priors)]
    kinds: dict[str, dict[str, Any]] = {}
    for r in rows:
        kinds.setdefault(r["kind"], {"n": 0, **{c: [] for c in cols}})
        kinds[r["kind"]]["n"] += 1
        for c in cols:
            kinds[r["kind"]][c].append(r[c])
    return {
        "n": len(rows),
        "overall": {c: float(np.mean([r[c] for r in rows])) if rows else None for c in cols},
        "kinds": {
            k: {"n": v["n"], **{c: float(np.mean(v[c])) for c in cols}}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["n"])
        },
    }


def update_manifest(manifest: Path, weights: Path, meta: dict[str, Any]) -> dict[str, Any]:
    from restoregraph.weightfiles import sha256_of
    from restoregraph.weightfiles import update_manifest as update_manifest_entry

    entry = {
        "id": MANIFEST_ID,
        "file": weights.name,
        "architecture": f"restoregraph.planners.critic ({ARCH}): final-image features and their "
        f"change from the input ({meta.get('feature_set')} set) -> MLP ({meta.get('hidden')}) "
        f"-> score; {meta.get('ensemble')} member(s) averaged",
        "command": meta.get("command"),
        "data": f"{meta.get('data', '')} built by `{meta.get('data_command', '')}`",
        "seed": meta.get("seed"),
        "steps": meta.get("steps"),
        "train_samples": meta.get("train_samples"),
        "sha256": sha256_of(weights),
        "bytes": weights.stat().st_size,
        "trained": time.strftime("%Y-%m-%d"),
        "train_time": f"{meta.get('train_seconds')} s wall on a shared 2-core CPU, torch 1 thread",
        "evaluation": "docs/embedded_planner.md (verification)",
    }
    update_manifest_entry(manifest, entry)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from restoregraph.lab.search.dataset import read_manifest

    ap = argparse.ArgumentParser(prog="python -m restoregraph.lab.training.critic_train")
    ap.add_argument("--data", required=True, action="append", help="search data (repeatable)")
    ap.add_argument("--out", default="restoregraph/weights/plan_critic.pt")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16, help="images per step")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--tau", type=float, default=0.5)
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--features", choices=["all", "compact", "probs"], default="compact")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heldout-percent", type=int, default=20)
    ap.add_argument(
        "--eval-split", choices=["heldout", "all"], default="heldout", help="samples to evaluate"
    )
    ap.add_argument("--eval-only", action="store_true", help="evaluate --out on the held-out split")
    ap.add_argument("--planner", default=None, help="embedded planner weights to verify")
    ap.add_argument("--verify-k", default="2,3,4", help="K values evaluated")
    ap.add_argument(
        "--priors", default="0", help="weights of the planner's values next to the critic's"
    )
    ap.add_argument("--json", default="", help="write the evaluation summary here")
    ap.add_argument("--manifest", default="", help="set the 'planner.critic' entry here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    manifest, train_s = load_many(args.data, "train", args.heldout_percent)
    _, held = load_many(args.data, args.eval_split, args.heldout_percent)
    t0 = time.perf_counter()
    out = Path(args.out)
    if not args.eval_only:
        first = next((s for s in train_s if sample_finals(args.data[0], s) is not None), None)
        if first is None:
            raise SystemExit(
                f"{', '.join(args.data)}: no training sample with final-image features "
                "(build the data with `restoregraph data build --leaf-features`)"
            )
        dim = len(node_features(args.data[0], first)[()])
        index = feature_index(args.features, dim)
        examples = build_examples(args.data[0], train_s, index)
        print(f"{len(examples)} training images", file=sys.stderr)
        members, norm = [], None
        for k in range(args.ensemble):
            state, mean, std = train(
                examples,
                args.steps,
                args.seed + k,
                hidden=args.hidden,
                batch=args.batch,
                lr=args.lr,
                tau=args.tau,
                norm=norm,
            )
            norm = (mean, std)
            members.append(state)
        assert norm is not None
        command = shlex.join(
            [
                "python",
                "-m",
                "restoregraph.lab.training.critic_train",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
        meta = {
            "arch": ARCH,
            "hidden": args.hidden,
            "objective": str(manifest.get("objective", "balanced")),
            "feat_index": index,
            "feature_set": args.features,
            "ensemble": args.ensemble,
            "command": command,
            "data": ", ".join(args.data),
            "data_command": "; ".join(str(read_manifest(d).get("command", "")) for d in args.data),
            "seed": args.seed,
            "steps": args.steps,
            "train_samples": len(examples),
            "features": manifest.get("features"),
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
        blob = {
            "members": members,
            "mean": torch.from_numpy(norm[0]),
            "std": torch.from_numpy(norm[1]),
            "meta": meta,
        }
        atomic_torch_save(blob, out)
        print(f"wrote {out} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        if args.manifest:
            update_manifest(Path(args.manifest), out, meta)
    ks = [int(k) for k in args.verify_k.split(",") if k.strip()]
    priors = [float(v) for v in args.priors.split(",") if v.strip()]
    summary = evaluate(out, args.planner, args.data[0], held, ks, priors)
    print(json.dumps(summary["overall"], indent=1))
    for kind, v in summary["kinds"].items():
        cells = " ".join(f"{c}={v[c]:.1f}" for c in v if c != "n")
        print(f"{kind:40s} n={v['n']:3d} {cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
