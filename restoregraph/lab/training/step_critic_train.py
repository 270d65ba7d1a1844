"""Train the step critic on ``step_critic_data`` and compare it with the reflection rule on the
held-out photos (docs/step_critic.md).

The model: an ensemble of small MLPs (one hidden ReLU layer) regressing a step's PSNR gain in dB
(clipped to +-``CLIP`` dB, Huber loss) from its standardised features; trained on the training
photos only, with early stopping on a validation split of them (by photo again), and saved as
JSON (``restoregraph/weights/step_critic.json``, read with numpy at run time) with its manifest
entry. Then, on the held-out photos, against the true gain:

- keep / roll back accuracy: the rule (``nodes.reflection.judge``, default settings) against the
  critic (keep when the predicted gain is above the threshold), on every step and on clear ones
  (|gain| >= 0.1 dB); for explicit requests, the safety checks alone against safety + the
  critic's veto;
- ranking: Spearman's rho of each score with the gain, and the share of pairs of steps on the
  same image (|gain difference| >= 0.1 dB) put in the right order;
- harmful steps (gain < -0.3 dB): the share rolled back; helpful ones (> 0.3 dB): the share kept.

::

    python -m restoregraph.lab.training.step_critic_train --data data/step_critic --seed 0
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import RestoreGraphError
from restoregraph.lab.training.step_critic_data import load_steps

CLIP = 5.0  # dB: the regression target is clipped (dehazing gains of +8 dB would dominate)
HARM = -0.3  # dB: a harmful step
CLEAR = 0.1  # dB: a step whose sign is clear
MEMBERS = 3
HIDDEN = 32
MANIFEST = Path(__file__).resolve().parents[2] / "weights" / "MANIFEST.json"
# Tasks the critic never decides: an x2/x4 super-resolution of a photo at full resolution is
# scored after resizing back to the clean size (as the benchmarks do), which credits it with the
# resize's smoothing (a denoiser), while the user gets a photo of another size.
NEVER_DECIDE = ("sr",)


def rule_score(rec: dict[str, Any]) -> tuple[bool, float]:
    """The reflection rule's decision and its continuous gain for a recorded step."""
    from restoregraph.core.settings import RunContext
    from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE
    from restoregraph.nodes.reflection import judge

    ctx = RunContext()
    sb, sa = rec["severity_before"], rec["severity_after"]
    qb, qa = rec["quality_before"], rec["quality_after"]
    keep, _ = judge(rec["task"], sb, sa, qb, qa, ctx)
    targets = [t for t, tk in TASK_FOR_PERCEPTION_TYPE.items() if tk == rec["task"]]
    drop = sum(sb.get(t, 0.0) - sa.get(t, 0.0) for t in targets)
    side = sum(max(0.0, sa.get(t, 0.0) - sb.get(t, 0.0)) for t in sa if t not in targets)
    return keep, drop - side + ctx.quality_weight * (qa - qb)


def _is_val(source: str) -> bool:
    return zlib.crc32(("val/" + source).encode()) % 100 < 20


def fit_member(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, seed: int, epochs: int = 1500
) -> tuple[list[dict[str, list[Any]]], int, float]:
    """One MLP (full-batch Adam, Huber loss), early-stopped on (xv, yv): its layers as lists,
    the best epoch and its validation loss."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.HuberLoss(delta=1.0)
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    vx, vy = torch.from_numpy(xv).float(), torch.from_numpy(yv).float()
    best = (float("inf"), 0, [p.detach().clone() for p in net.parameters()])
    for epoch in range(epochs):
        net.train()
        opt.zero_grad()
        loss = loss_fn(net(tx)[:, 0], ty)
        loss.backward()
        opt.step()
        if epoch % 10 == 9:
            net.eval()
            with torch.no_grad():
                v = float(loss_fn(net(vx)[:, 0], vy))
            if v < best[0]:
                best = (v, epoch + 1, [p.detach().clone() for p in net.parameters()])
    w1, b1, w2, b2 = (p.numpy() for p in best[2])
    layers = [
        {"W": w1.T.round(6).tolist(), "b": b1.round(6).tolist()},
        {"W": w2.T.round(6).tolist(), "b": b2.round(6).tolist()},
    ]
    return layers, best[1], best[0]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def pairwise(groups: np.ndarray, score: np.ndarray, gain: np.ndarray) -> tuple[float, int]:
    """Share of same-image step pairs (|gain difference| >= CLEAR) the score orders rightly."""
    right = total = 0
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        for i_, i in enumerate(idx):
            for j in idx[i_ + 1 :]:
                d = gain[i] - gain[j]
                if abs(d) < CLEAR:
                    continue
                total += 1
                right += int(np.sign(score[i] - score[j]) == np.sign(d))
    return (right / total if total else float("nan")), total


def _share(flags: np.ndarray) -> float:
    """Mean of a boolean array (NaN when empty)."""
    return float(flags.mean()) if flags.size else float("nan")


def evaluate(
    recs: list[dict[str, Any]],
    pred: np.ndarray,
    threshold: float,
    decide_tasks: Sequence[str] = (),
    veto_threshold: float | None = None,
) -> dict[str, Any]:
    gain = np.array([r["gain"] for r in recs])
    rule = [rule_score(r) for r in recs]
    rule_keep = np.array([k for k, _ in rule])
    rule_s = np.array([s for _, s in rule])
    crit_keep = pred > threshold
    tasks = np.array([r["task"] for r in recs])
    decided = np.isin(tasks, list(decide_tasks))
    chosen_keep = np.where(decided, crit_keep, rule_keep)
    safe_keep = np.array([not r["safety_problem"] for r in recs])
    veto = threshold if veto_threshold is None else veto_threshold
    veto_keep = safe_keep & (pred > veto)
    truth = gain > 0
    clear = np.abs(gain) >= CLEAR
    harm, good = gain < HARM, gain > -HARM
    groups = np.array([f"{r['sample']}/{r['round']}" for r in recs])
    out: dict[str, Any] = {
        "steps": len(recs),
        "harmful": int(harm.sum()),
        "helpful": int(good.sum()),
    }
    for name, keep, score in (
        ("rule", rule_keep, rule_s),
        ("critic", crit_keep, pred),
        ("critic on decide_tasks, rule elsewhere", chosen_keep, None),
        ("rule and critic", rule_keep & crit_keep, None),
        ("safety", safe_keep, None),
        ("safety+critic veto", veto_keep, None),
    ):
        row: dict[str, Any] = {
            "accuracy": float((keep == truth).mean()),
            "accuracy_clear": float((keep[clear] == truth[clear]).mean()),
            "harm_rolled_back": float((~keep[harm]).mean()) if harm.any() else float("nan"),
            "helpful_kept": float(keep[good].mean()) if good.any() else float("nan"),
            "kept": float(keep.mean()),
        }
        if score is not None:
            row["spearman"] = spearman(score, gain)
            row["pairwise"], row["pairs"] = pairwise(groups, score, gain)
        out[name] = row
    out["per_task"] = {
        t: {
            "steps": int((tasks == t).sum()),
            "rule_accuracy": float((rule_keep == truth)[tasks == t].mean()),
            "critic_accuracy": float((crit_keep == truth)[tasks == t].mean()),
            "rule_spearman": spearman(rule_s[tasks == t], gain[tasks == t]),
            "critic_spearman": spearman(pred[tasks == t], gain[tasks == t]),
        }
        for t in sorted(set(tasks.tolist()))
    }
    # explicit requests are mostly for degradations perception did not see
    unseen = np.array([not r["seen"] for r in recs])
    out["unseen"] = {
        "steps": int(unseen.sum()),
        "harmful": int((harm & unseen).sum()),
        "safety_harm_rolled_back": _share(~safe_keep[harm & unseen]),
        "veto_harm_rolled_back": _share(~veto_keep[harm & unseen]),
        "safety_helpful_kept": _share(safe_keep[good & unseen]),
        "veto_helpful_kept": _share(veto_keep[good & unseen]),
        "safety_accuracy": _share(safe_keep[unseen] == truth[unseen]),
        "veto_accuracy": _share(veto_keep[unseen] == truth[unseen]),
    }
    return out


def _predict(
    members: list[list[dict[str, Any]]], mean: np.ndarray, std: np.ndarray, x: np.ndarray
) -> np.ndarray:
    from restoregraph.metrics.step_critic import ARCH, FEATURE_NAMES, StepCritic

    blob = {
        "arch": ARCH,
        "features": list(FEATURE_NAMES),
        "mean": mean,
        "std": std,
        "members": members,
    }
    return np.asarray(StepCritic(blob).predict(x))


def load_many(folders: Sequence[Path]) -> list[dict[str, Any]]:
    """The steps of several data folders (sample ids made distinct per folder)."""
    recs = []
    for i, folder in enumerate(folders):
        for r in load_steps(folder):
            recs.append({**r, "sample": f"{i}:{r['sample']}"})
    return recs


def train(
    data: Path | Sequence[Path], out: Path, seed: int, write_manifest: bool = True
) -> dict[str, Any]:
    import torch

    from restoregraph.metrics.step_critic import ARCH, FEATURE_NAMES
    from restoregraph.weightfiles import sha256_of, update_manifest

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    folders = [data] if isinstance(data, Path) else list(data)
    names = " ".join(str(f) for f in folders)
    recs = load_many(folders)
    width = len(FEATURE_NAMES)
    if any(len(r["features"]) != width for r in recs):
        raise RestoreGraphError(f"{names}: features of another version (expected {width}); rebuild")
    train_r = [r for r in recs if not r["heldout"]]
    held_r = [r for r in recs if r["heldout"]]
    fit_r = [r for r in train_r if not _is_val(r["source"])]
    val_r = [r for r in train_r if _is_val(r["source"])]
    if len(fit_r) < 50 or len(val_r) < 10 or len(held_r) < 10:
        raise RestoreGraphError(f"{names}: too few steps ({len(recs)}) to train and evaluate")

    def xy(rs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([r["features"] for r in rs], np.float64)
        y = np.clip(np.array([r["gain"] for r in rs], np.float64), -CLIP, CLIP)
        return x, y

    xf, yf = xy(fit_r)
    xv, yv = xy(val_r)
    mean = xf.mean(0)
    std = np.where(xf.std(0) > 1e-6, xf.std(0), 1.0)
    zf, zv = (xf - mean) / std, (xv - mean) / std
    members, info = [], []
    for k in range(MEMBERS):
        layers, epoch, vloss = fit_member(zf, yf, zv, yv, seed * 100 + k)
        members.append(layers)
        info.append({"epoch": epoch, "val_huber": round(vloss, 4)})
    # the keep threshold: the best validation decision accuracy (0 dB unless clearly better)
    pv = _predict(members, mean, std, xv)
    gv = np.array([r["gain"] for r in val_r])
    grid = np.round(np.arange(-0.3, 0.31, 0.05), 2)
    accs = [float(((pv > t) == (gv > 0)).mean()) for t in grid]
    threshold = float(grid[int(np.argmax(accs))]) if max(accs) > accs[6] + 0.005 else 0.0
    # where the critic decides: the tasks whose validation steps it keeps / rolls back more
    # accurately than the rule (ties stay with the rule), never NEVER_DECIDE
    val_eval = evaluate(val_r, pv, threshold)
    decide_tasks = [
        t
        for t, row in val_eval["per_task"].items()
        if row["critic_accuracy"] > row["rule_accuracy"] and t not in NEVER_DECIDE
    ]
    # the veto of requested steps: the most lenient threshold (a clear predicted loss) whose
    # validation accuracy (safety + veto) is within 0.005 of the best
    safe_v = np.array([not r["safety_problem"] for r in val_r])
    vgrid = [0.0, -0.1, -0.2, -0.3, -0.5, -1.0]
    vacc = [float(((safe_v & (pv > t)) == (gv > 0)).mean()) for t in vgrid]
    veto_threshold = min(t for t, a in zip(vgrid, vacc, strict=True) if a >= max(vacc) - 0.005)
    blob = {
        "arch": ARCH,
        "features": list(FEATURE_NAMES),
        "target": f"PSNR gain in dB, clipped to +-{CLIP}",
        "threshold": threshold,
        "decide_tasks": decide_tasks,
        "veto_threshold": veto_threshold,
        "mean": mean.round(6).tolist(),
        "std": std.round(6).tolist(),
        "members": members,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(blob, separators=(",", ":")) + "\n", encoding="utf-8")
    xh, _ = xy(held_r)
    ph = _predict(members, mean, std, xh)
    report = {
        "fit_steps": len(fit_r),
        "val_steps": len(val_r),
        "heldout_steps": len(held_r),
        "threshold": threshold,
        "decide_tasks": decide_tasks,
        "veto_threshold": veto_threshold,
        "validation_per_task": val_eval["per_task"],
        "validation_veto_accuracy": dict(zip(map(str, vgrid), vacc, strict=True)),
        "members": info,
        "heldout": evaluate(held_r, ph, threshold, decide_tasks, veto_threshold),
        "reference_gbm": _gbm_reference(xf, yf, xh, held_r, seed),
    }
    train_s = time.perf_counter() - t0
    builds = []
    for folder in folders:
        path = folder / "manifest.json"
        b = json.loads(path.read_text()) if path.is_file() else {}
        builds.append(
            f"{folder}/steps.jsonl built by `{b.get('command', '?')}` ({b.get('steps', '?')} "
            f"steps on {b.get('samples', '?')} degraded crops)"
        )
    if write_manifest:
        update_manifest(
            MANIFEST,
            {
                "id": "reflection.step_critic",
                "file": out.name,
                "kind": "step_critic",
                "architecture": f"{ARCH}: {MEMBERS} x MLP {width} -> {HIDDEN} (ReLU) -> 1, "
                "standardised inputs, predicted PSNR gain (dB) of one tool step; JSON, numpy",
                "command": f"python -m restoregraph.lab.training.step_critic_train --data {names} "
                f"--seed {seed}",
                "data": "; ".join(builds) + " (crops of ../shared/data/train CBSD432 + "
                "ImageNetSample; held-out 20 % of the photos by "
                "restoregraph.lab.common.is_heldout, not trained on)",
                "seed": seed,
                "params": MEMBERS * (width * HIDDEN + HIDDEN + HIDDEN + 1),
                "threshold": threshold,
                "decide_tasks": decide_tasks,
                "veto_threshold": veto_threshold,
                "sha256": sha256_of(out),
                "bytes": out.stat().st_size,
                "trained": datetime.date.today().isoformat(),
                "train_time": f"{train_s:.0f} s wall on a shared 2-core CPU, torch 1 thread",
            },
        )
    return report


def _gbm_reference(
    xf: np.ndarray, yf: np.ndarray, xh: np.ndarray, held: list[dict[str, Any]], seed: int
) -> dict[str, Any]:
    """A gradient-boosted reference model (scikit-learn, not shipped): is the MLP enough?"""
    from sklearn.ensemble import HistGradientBoostingRegressor

    gbm = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
    gbm.fit(xf, yf)
    row = evaluate(held, gbm.predict(xh), 0.0)["critic"]
    return {
        k: row[k]
        for k in (
            "accuracy",
            "accuracy_clear",
            "spearman",
            "pairwise",
            "harm_rolled_back",
            "helpful_kept",
        )
    }


def evaluate_file(weights: Path, data: Sequence[Path]) -> dict[str, Any]:
    """The comparison on the held-out steps of another data set (e.g. larger crops)."""
    from restoregraph.metrics.step_critic import load_step_critic

    critic = load_step_critic(weights)
    held = [r for r in load_many(data) if r["heldout"]]
    if not held:
        raise RestoreGraphError(f"{' '.join(map(str, data))}: holds no held-out steps")
    pred = np.asarray(critic.predict(np.array([r["features"] for r in held], np.float64)))
    return {
        "data": [str(d) for d in data],
        "heldout": evaluate(
            held, pred, critic.threshold, critic.decide_tasks, critic.veto_threshold
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", default=["data/step_critic"], help="step data folders")
    ap.add_argument("--out", default=str(MANIFEST.parent / "step_critic.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", default="", help="also write the report (JSON) here")
    ap.add_argument("--no-manifest", action="store_true", help="do not touch MANIFEST.json")
    ap.add_argument(
        "--evaluate-only",
        action="store_true",
        help="compare the weights --out on --data's held-out",
    )
    args = ap.parse_args(argv)
    try:
        if args.evaluate_only:
            report = evaluate_file(Path(args.out), [Path(d) for d in args.data])
        else:
            report = train(
                [Path(d) for d in args.data], Path(args.out), args.seed, not args.no_manifest
            )
    except RestoreGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
