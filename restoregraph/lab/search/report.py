"""Benchmark sections for the pipeline search and the embedded planner (docs/BENCHMARKS.md).

    python -m restoregraph.lab.search.report --data data/search [--doc docs/BENCHMARKS.md]

writes the ``search`` section (data build size and pipelines/second, from the data's
``build_log.jsonl``); ``python -m restoregraph.lab.training.embedded_train ... --report DOC`` writes
the ``embedded-planner`` section (held-out ranking percentiles and decision latency).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.util import md_table
from restoregraph.lab.report import DEFAULT_DOC, fmt, machine, write_section
from restoregraph.lab.search.dataset import read_manifest


def read_build_log(data: str | Path) -> list[dict[str, Any]]:
    path = Path(data) / "build_log.jsonl"
    if not path.is_file():
        raise InputError(
            f"{data}: no build_log.jsonl (build the data with `restoregraph data build`)"
        )
    rows = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row["id"] not in seen:  # a resumed build may log an id twice; keep the first
            seen.add(row["id"])
            rows.append(row)
    return rows


def _workers_text(manifest: dict[str, Any]) -> str:
    """How many worker processes the build's command asked for (``--workers N``)."""
    words = str(manifest.get("command", "")).split()
    n = 1
    for i, w in enumerate(words[:-1]):
        if w == "--workers" and words[i + 1].isdigit():
            n = int(words[i + 1])
    return "one worker process" if n == 1 else f"{n} worker processes"


def search_section(data: str | Path, heading: bool = True) -> str:
    """Markdown: what the build made and how fast (pipelines per worker-second)."""
    manifest = read_manifest(data)
    rows = read_build_log(data)
    if not rows:
        raise InputError(f"{data}: the build log is empty")
    secs = sum(r["seconds"] for r in rows)
    pipes = sum(r["pipelines"] for r in rows)
    calls = sum(r["tool_calls"] for r in rows)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    table = []
    for kind, rs in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:12]:
        s = sum(r["seconds"] for r in rs)
        p = sum(r["pipelines"] for r in rs)
        table.append(
            [
                kind,
                str(len(rs)),
                str(rs[0]["pipelines"]),
                str(rs[0]["tool_calls"]),
                fmt(s / len(rs), 1),
                fmt(p / s if s else float("nan"), 1),
            ]
        )
    toolbox = "; ".join(f"{t}: {', '.join(ids)}" for t, ids in manifest["toolbox"].items())
    return "\n".join(
        [
            *(["## Pipeline search data (`restoregraph data build`)", ""] if heading else []),
            f"Command: `{manifest.get('command', '')}` (mixtures: "
            f"{manifest.get('mixtures', 'default')})",
            "",
            f"Machine: {machine()} (the load average is read when this section is written); "
            f"{_workers_text(manifest)}, torch 1 thread each, on a machine shared with other "
            "jobs: the timings come from the build log and are upper bounds.",
            "",
            f"Search toolbox: {toolbox}. Crop {manifest['crop']} px, objective "
            f"{manifest['objective']}.",
            "",
            (
                f"The build was stopped after {len(rows)} of the {manifest['n_images']} samples "
                "asked for (time); running the same command again resumes it.\n\n"
                if len(rows) < int(manifest.get("n_images", 0))
                else ""
            )
            + f"**{len(rows)} samples, {pipes} pipelines scored, {calls} tool calls, "
            f"{secs / 60:.1f} worker-minutes: {pipes / secs:.2f} pipelines/s, "
            f"{calls / secs:.2f} tool calls/s per worker** (each tool call also measures the "
            "node against the clean crop and, below the leaves, computes the planner's node "
            "features). The prefix tree runs "
            f"{calls} tools where running every pipeline from scratch would run "
            f"{sum(len(r['kind'].split('+')) * r['pipelines'] for r in rows)}.",
            "",
            md_table(
                [
                    "mixture kind (most frequent)",
                    "samples",
                    "pipelines",
                    "tool calls",
                    "s / sample",
                    "pipelines/s",
                ],
                table,
                "lrrrrr",
            ),
        ]
    )


def measure_latency(
    planner: Any, sizes: Sequence[int] = (128, 256, 512), repeats: int = 15
) -> dict[int, dict[str, float]]:
    """Median / p90 seconds of ``planner.plan`` for a noise+JPEG image of each size (a full
    plan: image features + one network pass per step)."""
    from skimage import data as skdata

    from restoregraph.degrade import apply_mixture
    from restoregraph.planners.base import PlanRequest
    from restoregraph.tools import default_registry

    base = skdata.astronaut().astype(np.float32) / 255
    out: dict[int, dict[str, float]] = {}
    for size in sizes:
        img, _ = apply_mixture(base[:size, :size], [("noise", 2), ("jpeg", 2)], seed=0)
        req = PlanRequest(
            perception={"noise": 2, "jpeg": 2},
            toolbox=default_registry(),
            load_image=lambda img=img: img,  # type: ignore[misc]
        )
        planner.plan(req)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            planner.plan(req)
            times.append(time.perf_counter() - t0)
        out[size] = {
            "median": statistics.median(times),
            "p90": float(np.percentile(times, 90)),
            "min": min(times),
        }
    return out


def objective_lines(
    by_objective: dict[str, dict[str, float]], planners: Sequence[str], names: dict[str, str]
) -> list[str]:
    """A table of the overall held-out percentiles under each objective the weights hold (the
    ranks recomputed under that objective; the embedded planner asked for it), or nothing."""
    if len(by_objective) < 2:
        return []
    rows = [
        [obj, *(fmt(ov.get(p, float("nan")), 1) for p in planners)]
        for obj, ov in by_objective.items()
    ]
    return [
        "Per objective (all held-out samples; each pipeline re-ranked under the objective, "
        "the embedded planner asked for it with `PlanRequest.objective`):",
        "",
        md_table(["objective", *(names[p] for p in planners)], rows, "lrrrrr"),
        "",
    ]


def planner_section(
    summary: dict[str, Any],
    latency: dict[int, dict[str, float]],
    meta: dict[str, Any],
    command: str,
) -> str:
    """Markdown: held-out ranking percentiles per mixture kind, and decision latency."""
    planners = ["embedded", "embedded_stepwise", "fixed", "fixed_perceived", "random"]
    names = {
        "embedded": "embedded (plan)",
        "embedded_stepwise": "embedded (stepwise)",
        "fixed": "fixed (true levels)",
        "fixed_perceived": "fixed (CNN levels)",
        "random": "random (expected)",
    }
    rows = []
    for kind, v in summary["kinds"].items():
        best = min(v[p] for p in planners)
        rows.append([kind, str(v["n"]), *(fmt(v[p], 1, bold=v[p] == best) for p in planners)])
    ov = summary["overall"]
    best = min(ov[p] for p in planners)
    rows.append(
        ["**all**", str(summary["n"]), *(fmt(ov[p], 1, bold=ov[p] == best) for p in planners)]
    )
    bench = summary.get("bench_kinds", {})

    def versus(ref: str) -> tuple[list[str], list[str], list[str]]:
        kinds = summary["kinds"].items()
        return (
            [k for k, v in kinds if v["embedded"] < v[ref]],
            [k for k, v in kinds if v["embedded"] == v[ref]],
            [k for k, v in kinds if v["embedded"] > v[ref]],
        )

    wins, ties, losses = versus("fixed")
    p_wins, p_ties, p_losses = versus("fixed_perceived")
    lat = [
        [f"{s} x {s}", fmt(v["median"] * 1000, 1), fmt(v["p90"] * 1000, 1), fmt(v["min"] * 1000, 1)]
        for s, v in latency.items()
    ]
    return "\n".join(
        [
            "## Embedded planner: held-out ranking percentile",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine()}; torch 1 thread, on a machine shared with other jobs.",
            "",
            f"Weights: `restoregraph/weights/embedded_planner.pt` (trained by "
            f"`{meta.get('command', '')}` on {meta.get('train_samples')} samples / "
            f"{meta.get('decision_nodes')} decision nodes of `{meta.get('data_command', '')}`).",
            "",
            "Held-out split: every sample whose *source image* hashes into the held-out 20 % "
            "(no crop of these photos was trained on). Per sample, the percentile (0 = best, "
            "100 = worst) of the chosen pipeline among ALL pipelines of that sample's search "
            "tree; every planner gets the true degradation types and levels as perception and "
            "the search toolbox as toolbox -- except `fixed (CNN levels)`, which gets the true "
            "types at the levels the perception CNN reads from the degraded image (what the "
            "fixed rules see in the agent; the embedded planner reads the same CNN). "
            "`embedded (plan)` writes the whole plan from the degraded image (the graph's "
            "`plan` mode); `embedded (stepwise)` sees each intermediate image (`stepwise` "
            "mode); random is the expected percentile of a uniformly drawn pipeline. Lower is "
            "better; best per row in bold.",
            "",
            md_table(["mixture kind", "n", *(names[p] for p in planners)], rows, "lrrrrrr"),
            "",
            f"Top-1 (chose the best pipeline): embedded {ov['embedded_top1'] * 100:.0f} %, "
            f"stepwise {ov['embedded_stepwise_top1'] * 100:.0f} %, fixed "
            f"{ov['fixed_top1'] * 100:.0f} % (true levels), "
            f"{ov['fixed_perceived_top1'] * 100:.0f} % (CNN levels). Embedded (plan) vs fixed "
            f"with true levels, per kind: better on {len(wins)}, equal on {len(ties)}, worse on "
            f"{len(losses)}"
            + (f" ({', '.join(losses)})" if losses else "")
            + f"; vs fixed with the CNN's levels: better on {len(p_wins)}, equal on "
            f"{len(p_ties)}, worse on {len(p_losses)}"
            + (f" ({', '.join(p_losses)})" if p_losses else "")
            + ". RestoreAgent's seven mixtures among the held-out kinds: "
            + (
                ", ".join(
                    f"{k} {v['embedded']:.1f} vs fixed {v['fixed']:.1f}" for k, v in bench.items()
                )
                or "none"
            )
            + ".",
            "",
            *objective_lines(summary.get("objectives", {}), planners, names),
            "Decision latency (`EmbeddedPlanner.plan`, a noise+JPEG image, whole 2-step plan: "
            "perception-CNN features of the centre 160 px crop, one scorer pass, every allowed "
            "completion scored):",
            "",
            md_table(["image", "median ms", "p90 ms", "min ms"], lat, "lrrr"),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restoregraph.lab.search.report")
    ap.add_argument("--data", required=True, action="append", help="repeat for several")
    ap.add_argument("--doc", default=DEFAULT_DOC)
    args = ap.parse_args(argv)
    body = "\n\n".join(search_section(d, heading=i == 0) for i, d in enumerate(args.data))
    body += (
        "\n\nSection written by `"
        + shlex.join(["python", "-m", "restoregraph.lab.search.report", *(argv or sys.argv[1:])])
        + "`."
    )
    write_section(args.doc, "search", body)
    print(f"wrote section 'search' of {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
