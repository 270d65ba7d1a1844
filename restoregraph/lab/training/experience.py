"""Distilling experience (AgenticIR) from pipeline-search data.

:func:`distil` reads a search-data directory (``restoregraph data build``) and, for every
objective (``balanced``, ``psnr``, ``ssim``, ``perceptual``; each image's pipelines are re-scored
from their stored metrics with ``metrics.balanced_scores``, over the objective's metrics that
the data holds), counts:

* **task order**, per pair of tasks ``a``, ``b`` needed together: on how many images the best
  pipeline running ``a`` before ``b`` beats the best running ``b`` before ``a`` (``win``), the
  *fail rate* of each order -- the share of its pipelines that end in the worse half of their
  image's pipelines (percentile above 50) -- and the PSNR difference of the two best pipelines;
* **first step**: how often each task starts the image's best pipeline;
* **models**, per task and severity level: how often each tool is in the image's best pipeline,
  and the mean rank percentile of the best pipeline that uses it.

:func:`distil_to_files` writes a readable markdown document (``docs/experience.md``) and the
JSON the planners read (``restoregraph/prompts/experience.json``, committed), which
:class:`restoregraph.planners.experience.Experience` answers questions from at run time.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError, OutputError
from restoregraph.planners.experience import forget

VERSION = 1
FAIL_PERCENTILE = 50.0
FAIL_DEFINITION = (
    "a pipeline fails when it ends in the worse half of its image's pipelines "
    f"(rank percentile above {FAIL_PERCENTILE:g})"
)


def _objective_metrics() -> dict[str, tuple[str, ...]]:
    from restoregraph.metrics import OBJECTIVES

    return dict(OBJECTIVES)


def _level_of(sample: Mapping[str, Any], task: str) -> int:
    from restoregraph.core.tasks import TASK_FOR_DEGRADATION

    levels = [
        int(lvl) for t, lvl in sample.get("mixture", []) if TASK_FOR_DEGRADATION.get(t) == task
    ]
    return max(levels) if levels else 0


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))


def rescore(pipelines: Sequence[Mapping[str, Any]], objective: str) -> list[float] | None:
    """The pipelines' scores under ``objective`` over the objective's metrics the data holds
    (NaN for a failed pipeline: no metrics); None when no metric of it is there."""
    from restoregraph.metrics import balanced_scores

    names = _objective_metrics()[objective]
    done = [i for i, p in enumerate(pipelines) if not p.get("error") and p.get("metrics")]
    ok = [m for m in names if done and all(_finite(pipelines[i]["metrics"].get(m)) for i in done)]
    if not ok:
        return None
    scores = [math.nan] * len(pipelines)
    for i, s in zip(
        done, balanced_scores([pipelines[i]["metrics"] for i in done], tuple(ok)), strict=True
    ):
        scores[i] = s
    return scores


def _percentiles(scores: Sequence[float]) -> list[float]:
    """Percentage of the other pipelines scoring strictly better (0 = best)."""
    n = len(scores)
    if n <= 1:
        return [0.0] * n
    return [100.0 * sum(1 for t in scores if t > s) / (n - 1) for s in scores]


class _Acc:
    """Counters of one objective."""

    def __init__(self) -> None:
        self.samples = 0
        # (a, b) with a before b
        self.pair_n: dict[tuple[str, str], int] = defaultdict(int)
        self.pair_win: dict[tuple[str, str], float] = defaultdict(float)
        self.pair_fail: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.pair_dpsnr: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.first_n: dict[str, int] = defaultdict(int)
        self.first_win: dict[str, int] = defaultdict(int)
        # (task, level) -> tool -> [wins, n, sum of pct]
        self.models: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(
            lambda: defaultdict(lambda: [0.0, 0.0, 0.0])
        )
        self.model_n: dict[tuple[str, int], int] = defaultdict(int)

    def add(self, sample: Mapping[str, Any], all_scores: list[float]) -> None:
        keep = [i for i, s in enumerate(all_scores) if math.isfinite(s)]
        if not keep:
            return
        scores = [all_scores[i] for i in keep]
        pipes = [tuple(sample["pipelines"][i]["steps"]) for i in keep]
        metrics = [sample["pipelines"][i].get("metrics", {}) for i in keep]
        pct = _percentiles(scores)
        best_i = max(range(len(pipes)), key=lambda i: (scores[i], pipes[i]))
        tasks_of = [[t.split(".")[0] for t in p] for p in pipes]
        tasks = sorted({t for ts in tasks_of for t in ts})
        self.samples += 1
        # order
        for i, a in enumerate(tasks):
            for b in tasks[i + 1 :]:
                ab = [
                    j
                    for j, ts in enumerate(tasks_of)
                    if a in ts and b in ts and ts.index(a) < ts.index(b)
                ]
                ba = [
                    j
                    for j, ts in enumerate(tasks_of)
                    if a in ts and b in ts and ts.index(b) < ts.index(a)
                ]
                if not ab or not ba:
                    continue
                best_ab = max(ab, key=lambda j: scores[j])
                best_ba = max(ba, key=lambda j: scores[j])
                for (x, y), js, win_j, lose_j in (
                    ((a, b), ab, best_ab, best_ba),
                    ((b, a), ba, best_ba, best_ab),
                ):
                    self.pair_n[(x, y)] += 1
                    diff = scores[win_j] - scores[lose_j]
                    self.pair_win[(x, y)] += 1.0 if diff > 0 else (0.5 if diff == 0 else 0.0)
                    fail = self.pair_fail[(x, y)]
                    fail[0] += sum(1 for j in js if pct[j] > FAIL_PERCENTILE)
                    fail[1] += len(js)
                    p1, p2 = metrics[win_j].get("psnr"), metrics[lose_j].get("psnr")
                    if isinstance(p1, int | float) and isinstance(p2, int | float):
                        self.pair_dpsnr[(x, y)].append(float(p1) - float(p2))
        # first step
        if len(tasks) >= 2:
            for t in tasks:
                self.first_n[t] += 1
            self.first_win[tasks_of[best_i][0]] += 1
        # models
        for task in tasks:
            level = _level_of(sample, task)
            key = (task, level)
            self.model_n[key] += 1
            tools = {tool for p in pipes for tool in p if tool.split(".")[0] == task}
            for tool in tools:
                js = [j for j, p in enumerate(pipes) if tool in p]
                best_j = min(js, key=lambda j: pct[j])
                row = self.models[key][tool]
                row[0] += 1.0 if tool in pipes[best_i] else 0.0
                row[1] += 1.0
                row[2] += pct[best_j]

    def to_json(self) -> dict[str, Any]:
        pairs = []
        before: dict[str, dict[str, float]] = defaultdict(dict)
        for (a, b), n in sorted(self.pair_n.items()):
            win = self.pair_win[(a, b)] / n
            fail = self.pair_fail[(a, b)]
            fail_ba = self.pair_fail[(b, a)]
            d = self.pair_dpsnr.get((a, b), [])
            before[a][b] = round(win, 4)
            if a < b:
                pairs.append(
                    {
                        "a": a,
                        "b": b,
                        "n": n,
                        "win_ab": round(win, 4),
                        "fail_ab": round(fail[0] / fail[1], 4) if fail[1] else None,
                        "fail_ba": round(fail_ba[0] / fail_ba[1], 4) if fail_ba[1] else None,
                        "dpsnr_ab": round(sum(d) / len(d), 3) if d else None,
                    }
                )
        first = {
            t: round(self.first_win.get(t, 0) / n, 4) for t, n in sorted(self.first_n.items()) if n
        }
        first_n = dict(sorted(self.first_n.items()))
        models: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
        for (task, level), tools in sorted(self.models.items()):
            rows: list[dict[str, Any]] = [
                {
                    "tool": tool,
                    "wins": int(w),
                    "n": int(n),
                    "win_rate": round(w / n, 4) if n else 0.0,
                    "mean_pct": round(s / n, 2) if n else None,
                }
                for tool, (w, n, s) in tools.items()
            ]
            rows.sort(
                key=lambda r: (-float(r["win_rate"]), float(r["mean_pct"] or 0), str(r["tool"]))
            )
            models[task][str(level)] = rows
        return {
            "samples": self.samples,
            "pairs": pairs,
            "before": {a: dict(sorted(v.items())) for a, v in sorted(before.items())},
            "first": first,
            "first_n": first_n,
            "models": dict(models),
        }


def distil(data: Path, objectives: Iterable[str] | None = None) -> dict[str, Any]:
    """The experience JSON (see the module docstring) of search-data directory ``data``."""
    from restoregraph.lab.search.export import iter_samples, read_manifest

    data = Path(data)
    manifest = read_manifest(data)
    objs = list(objectives or _objective_metrics())
    accs = {o: _Acc() for o in objs}
    n = 0
    for sample in iter_samples(data):
        if len(sample["pipelines"]) < 1:
            continue
        n += 1
        for o in objs:
            scores = rescore(sample["pipelines"], o)
            if scores is not None:
                accs[o].add(sample, scores)
    if n == 0:
        raise InputError(f"{data}: no finished samples in samples.jsonl")
    return {
        "version": VERSION,
        "samples": n,
        "data": {
            k: manifest.get(k)
            for k in ("command", "source", "objective", "crop", "seed", "toolbox")
        },
        "fail_definition": FAIL_DEFINITION,
        "objectives": {o: a.to_json() for o, a in accs.items() if a.samples},
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def markdown(exp: Mapping[str, Any], command: str = "") -> str:
    from restoregraph.core.util import md_table

    objs = exp.get("objectives", {})
    lines = [
        "# Experience: what the pipeline search says about order and models",
        "",
        "Distilled by `restoregraph data experience` from the pipeline-search data "
        "(`restoregraph data build`): every pipeline (every order x every tool of each needed "
        "task) was run on every training image and scored against the clean image. The "
        "`explore` planner orders its candidates with these statistics and the `openai` "
        "planner's prompt quotes them (`restoregraph/prompts/experience.json`).",
        "",
        f"- command: `{command or 'restoregraph data experience'}`",
        f"- data: {exp.get('samples')} images; built by `{(exp.get('data') or {}).get('command')}`",
        f"- date: {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- *fail rate*: {exp.get('fail_definition', FAIL_DEFINITION)}. *better order*: on how "
        "many images the best pipeline with that order beats the best with the other order. "
        "*ΔPSNR*: mean PSNR of the first order's best pipeline minus the other's.",
        "",
    ]
    for obj, sec in objs.items():
        lines += [f"## Objective: {obj} ({sec['samples']} images)", "", "### Task order", ""]
        rows = []
        for p in sorted(sec.get("pairs", []), key=lambda p: -abs(p["win_ab"] - 0.5)):
            first, then = (p["a"], p["b"]) if p["win_ab"] >= 0.5 else (p["b"], p["a"])
            win = p["win_ab"] if first == p["a"] else 1 - p["win_ab"]
            fa, fb = (
                (p["fail_ab"], p["fail_ba"]) if first == p["a"] else (p["fail_ba"], p["fail_ab"])
            )
            d = p.get("dpsnr_ab")
            if d is not None and first != p["a"]:
                d = -d
            rows.append(
                [
                    f"{first} before {then}",
                    f"{win:.0%} of {p['n']}",
                    f"{_pct(fa)} vs {_pct(fb)}",
                    "–" if d is None else f"{d:+.2f} dB",
                ]
            )
        lines += [
            md_table(["order", "better on", "fail rate (this vs other)", "ΔPSNR"], rows, "lrrr")
            if rows
            else "No image needed two tasks.",
            "",
            "### First step",
            "",
        ]
        first = sec.get("first", {})
        if first:
            rows = [
                [t, f"{v:.0%} of {sec.get('first_n', {}).get(t, '?')}"]
                for t, v in sorted(first.items(), key=lambda kv: -kv[1])
            ]
            lines += [md_table(["task", "starts the best pipeline"], rows, "lr"), ""]
        lines += ["### Models per task and severity", ""]
        rows = []
        for task, by_level in sec.get("models", {}).items():
            for level, stats in sorted(by_level.items()):
                cells = [
                    f"{r['tool']} {r['win_rate']:.0%} (pct {r['mean_pct']:.0f})" for r in stats[:4]
                ]
                rows.append([task, level, str(stats[0]["n"] if stats else 0), "; ".join(cells)])
        lines += [
            md_table(
                [
                    "task",
                    "level",
                    "images",
                    "tools: in the best pipeline (mean rank pct of its best)",
                ],
                rows,
                "lrrl",
            ),
            "",
        ]
    lines += [_disagreements(objs), ""]
    return "\n".join(lines)


def _disagreements(objs: Mapping[str, Any]) -> str:
    """Where the objectives pick a different model or a different order."""
    if len(objs) < 2:
        return ""
    out = ["## Where the objectives disagree", ""]
    winners: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    orders: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for obj, sec in objs.items():
        for task, by_level in sec.get("models", {}).items():
            for level, stats in by_level.items():
                if stats:
                    winners[(task, level)][obj] = stats[0]["tool"]
        for p in sec.get("pairs", []):
            orders[(p["a"], p["b"])][obj] = (
                f"{p['a']}→{p['b']}" if p["win_ab"] >= 0.5 else f"{p['b']}→{p['a']}"
            )
    for (task, level), by in sorted(winners.items()):
        if len(set(by.values())) > 1:
            out.append(f"- {task} level {level}: " + ", ".join(f"{o}: {t}" for o, t in by.items()))
    for (a, b), by in sorted(orders.items()):
        if len(set(by.values())) > 1:
            out.append(f"- order {a}/{b}: " + ", ".join(f"{o}: {t}" for o, t in by.items()))
    if len(out) == 2:
        out.append("- none: every objective picks the same model and order everywhere.")
    return "\n".join(out)


def distil_to_files(
    data: Path,
    doc: Path,
    json_path: Path,
    overwrite: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Distil ``data`` and write the document ``doc`` and the JSON ``json_path``."""
    from restoregraph.core.util import atomic_write

    doc, json_path = Path(doc), Path(json_path)
    for p in (doc, json_path):
        if p.exists() and not overwrite:
            raise OutputError(f"{p} exists; pass --overwrite to replace it")
    exp = distil(data)
    exp["command"] = command
    for p in (doc, json_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(json_path, json.dumps(exp, indent=1, sort_keys=False) + "\n")
    atomic_write(doc, markdown(exp, command))
    forget(json_path)
    return exp


__all__ = ["FAIL_DEFINITION", "VERSION", "distil", "distil_to_files", "markdown", "rescore"]
