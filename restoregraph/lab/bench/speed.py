"""``restoregraph bench speed``: what a whole ``restoregraph restore`` process costs.

Each run is the CLI in a subprocess of its own (a fresh home, so no stored image is reused),
measured from outside: wall seconds, CPU seconds and peak RSS from ``os.wait4``'s rusage. The
process writes where its time went (``restoregraph.core.timing``, ``RESTOREGRAPH_TIMINGS``):
start-up (imports, models built before the first node, resources built on first use),
perception, planning, the tools' own time, reflection, checkpoint I/O (reading the input,
storing and reading back images), output (the result and the HTML report) and the rest
(graph, SQLite checkpoints, exit). Also: tool calls per true degradation, the whole run over
the sum of its tool times, and each tool's seconds per megapixel.

Test photos: ``skimage.data.astronaut`` resized to each size (bicubic), then degraded at that
size with ``restoregraph.degrade.apply_mixture`` (default: motion blur + noise + JPEG).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.timing import ENV as TIMINGS_ENV
from restoregraph.core.util import md_table
from restoregraph.lab.report import fmt

SPLIT = ("startup", "perception", "planning", "tools", "reflection", "checkpoint_io", "output")
SPLIT_LABELS = {
    "startup": "start-up",
    "perception": "perception",
    "planning": "planning",
    "tools": "tools",
    "reflection": "reflection",
    "checkpoint_io": "checkpoint I/O",
    "output": "output",
}
TARGET_WALL_S = 3.0  # the bounds
TARGET_OVERHEAD_S = 1.0
TARGET_RSS_GB = 3.0
TARGET_LIST_S = 0.5


def parse_size(text: str) -> tuple[int, int]:
    """``"512x512"`` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise InputError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 512x512") from None
    if w < 16 or h < 16:
        raise InputError(f"size {text!r}: at least 16x16 pixels")
    return w, h


@dataclass
class SpeedConfig:
    sizes: list[tuple[int, int]]  # every planner, ``repeats`` times
    large_sizes: list[tuple[int, int]]  # the default planner, once
    planners: list[str]
    default_planner: str = "embedded"
    repeats: int = 3
    mixture: str = "motion_blur:2+noise:2+jpeg:2"
    seed: int = 0
    max_steps: int | None = None
    timeout_s: float = 3600.0
    work: Path | None = None  # where test photos are kept (default: a temporary folder)


@dataclass
class RunMeasure:
    size: tuple[int, int]
    planner: str
    wall: float
    cpu: float
    rss_mb: float
    split: dict[str, float]
    tools: list[dict[str, Any]]
    error: str = ""

    @property
    def tool_seconds(self) -> float:
        return float(sum(t["seconds"] for t in self.tools))


@dataclass
class SpeedResult:
    config: SpeedConfig
    n_degradations: int
    runs: list[RunMeasure] = field(default_factory=list)
    list_seconds: list[float] = field(default_factory=list)


def speed_photo(size: tuple[int, int], mixture: str, seed: int, work: Path) -> Path:
    """The degraded test photo of ``size`` (made once per work folder)."""
    w, h = size
    path = work / f"astronaut-{w}x{h}-{mixture.replace(':', '').replace('+', '-')}-{seed}.png"
    if path.is_file():
        return path
    import cv2
    import skimage.data

    from restoregraph.degrade import apply_mixture
    from restoregraph.imageio import save_image

    clean = skimage.data.astronaut().astype(np.float32) / 255.0
    if (h, w) != clean.shape[:2]:
        clean = cv2.resize(clean, (w, h), interpolation=cv2.INTER_CUBIC)
    degraded, _ = apply_mixture(np.clip(clean, 0.0, 1.0), mixture, seed=seed)
    del clean
    save_image(degraded, path, overwrite=True)
    return path


def _cli() -> list[str]:
    return [sys.executable, "-m", "restoregraph"]


def run_once(
    photo: Path, planner: str, cfg: SpeedConfig, size: tuple[int, int], tmp: Path
) -> RunMeasure:
    """One ``restoregraph restore`` process on ``photo`` with a fresh home."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=tmp))
    timings = home / "timings.json"
    env = {**os.environ, TIMINGS_ENV: str(timings), "RESTOREGRAPH_HOME": str(home)}
    args = [*_cli(), "restore", str(photo), "-o", str(home / "out.png"), "--planner", planner]
    args += ["--home", str(home), "--seed", str(cfg.seed)]
    if cfg.max_steps is not None:
        args += ["--max-steps", str(cfg.max_steps)]
    try:
        spawned = time.time()
        wall, cpu, rss_mb, error = _wait_measured(args, env, cfg.timeout_s)
        data: dict[str, Any] = {}
        if timings.is_file():
            data = json.loads(timings.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    wall_of = dict(data.get("wall", {}))
    split = {k: float(wall_of.get(k, 0.0)) for k in SPLIT}
    if data.get("first_phase"):  # imports and set-up before the first node
        split["startup"] += max(0.0, float(data["first_phase"]) - spawned)
    split["other"] = max(0.0, wall - sum(split.values()))
    return RunMeasure(size, planner, wall, cpu, rss_mb, split, list(data.get("tools", [])), error)


def _wait_measured(
    args: Sequence[str], env: dict[str, str], timeout_s: float
) -> tuple[float, float, float, str]:
    """Run ``args``; (wall s, CPU s, peak RSS MB, error) of that one process (``os.wait4``)."""
    with tempfile.TemporaryFile(mode="w+") as errfile:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(args), env=env, stdout=subprocess.DEVNULL, stderr=errfile)
        deadline = t0 + timeout_s
        error = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                error = f"timed out after {timeout_s:g} s"
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.perf_counter() - t0
        cpu = usage.ru_utime + usage.ru_stime
        rss_mb = usage.ru_maxrss / 1024.0  # kilobytes on Linux
        if proc.returncode and not error:
            errfile.seek(0)
            lines = [ln for ln in errfile.read().strip().splitlines() if ln.strip()]
            error = f"exit {proc.returncode}: {lines[-1] if lines else 'no message'}"
    return wall, cpu, rss_mb, error


def time_tools_list(repeats: int, timeout_s: float = 60.0) -> list[float]:
    return [
        _wait_measured([*_cli(), "tools", "list"], dict(os.environ), timeout_s)[0]
        for _ in range(repeats)
    ]


def run_speed_bench(cfg: SpeedConfig, say: Callable[[str], None] = lambda _: None) -> SpeedResult:
    from restoregraph.degrade import parse_mixture

    n_deg = len(parse_mixture(cfg.mixture))
    result = SpeedResult(cfg, n_deg)
    own_work = cfg.work is None
    work = Path(tempfile.mkdtemp(prefix="rg-speed-")) if cfg.work is None else Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        result.list_seconds = time_tools_list(max(1, cfg.repeats))
        jobs = [(s, p, cfg.repeats) for s in cfg.sizes for p in cfg.planners]
        jobs += [(s, cfg.default_planner, 1) for s in cfg.large_sizes]
        for size, planner, repeats in jobs:
            photo = speed_photo(size, cfg.mixture, cfg.seed, work)
            for i in range(repeats):
                say(f"{size[0]}x{size[1]} {planner} run {i + 1}/{repeats}")
                m = run_once(photo, planner, cfg, size, work)
                result.runs.append(m)
                say(
                    f"  {m.wall:.1f} s wall, {m.cpu:.1f} s CPU, {m.rss_mb:.0f} MB"
                    + (f" ({m.error})" if m.error else "")
                )
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _groups(result: SpeedResult) -> list[tuple[tuple[int, int], str, list[RunMeasure]]]:
    out: dict[tuple[tuple[int, int], str], list[RunMeasure]] = {}
    for m in result.runs:
        out.setdefault((m.size, m.planner), []).append(m)
    return [(s, p, ms) for (s, p), ms in out.items()]


def _size_cell(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]} ({size[0] * size[1] / 1e6:.2f} MP)"


def speed_markdown(result: SpeedResult) -> str:
    cfg = result.config
    lines = [
        "",
        f"Test photos: `skimage.data.astronaut` resized (bicubic) and degraded with "
        f"`{cfg.mixture}` (seed {cfg.seed}; {result.n_degradations} true degradations). "
        f"Each run is `restoregraph restore` in a process of its own with a fresh home; "
        f"median of {cfg.repeats} runs for the small sizes (every planner), one run for the "
        f"large ones ({cfg.default_planner} planner). Seconds are wall seconds; the split comes "
        "from the process itself (`restoregraph.core.timing`): start-up = imports and set-up "
        "before the first node plus resources built on first use (perceiver, planner, toolbox); "
        "tools = the tools' own time (a learned tool's first call loads its weights); "
        "checkpoint I/O = reading the input, storing and re-reading images (16-bit PNG, hashed); "
        "output = the result file and the HTML report; other = the graph, SQLite checkpoints "
        "and exit.",
        "",
    ]
    head = ["size", "planner", "runs", "wall s", "CPU s", "peak RSS MB"]
    head += [SPLIT_LABELS[k] for k in SPLIT] + ["other", "tool calls / degradation"]
    head += ["run / tool time"]
    rows = []
    failures = []
    for size, planner, ms in _groups(result):
        ok = [m for m in ms if not m.error]
        failures += [f"{_size_cell(size)} {planner}: {m.error}" for m in ms if m.error]
        if not ok:
            rows.append([_size_cell(size), planner, f"0/{len(ms)}", *["failed"] * (len(head) - 3)])
            continue
        row = [_size_cell(size), planner, f"{len(ok)}"]
        row += [fmt(_median([m.wall for m in ok]), 2), fmt(_median([m.cpu for m in ok]), 2)]
        row += [f"{_median([m.rss_mb for m in ok]):.0f}"]
        row += [fmt(_median([m.split[k] for m in ok]), 2) for k in (*SPLIT, "other")]
        row += [fmt(_median([len(m.tools) / max(1, result.n_degradations) for m in ok]), 2)]
        ratios = [m.wall / m.tool_seconds for m in ok if m.tool_seconds > 0]
        row += [fmt(_median(ratios), 2) if ratios else "no tool ran"]
        rows.append(row)
    lines += [md_table(head, rows), ""]
    if failures:
        lines += ["Failed runs: " + "; ".join(failures), ""]

    per_tool: dict[str, list[dict[str, Any]]] = {}
    for m in result.runs:
        for t in m.tools:
            if t.get("megapixels"):
                per_tool.setdefault(str(t["tool"]), []).append(t)
    if per_tool:
        trows = []
        for tool, calls in sorted(per_tool.items()):
            mps = sorted({round(float(c["megapixels"]), 2) for c in calls})
            trows.append(
                [
                    f"`{tool}`",
                    str(len(calls)),
                    ", ".join(f"{v:g}" for v in mps),
                    fmt(_median([c["seconds"] / c["megapixels"] for c in calls]), 2),
                    fmt(_median([c["cpu"] / c["megapixels"] for c in calls]), 2),
                ]
            )
        lines += [
            "Time per megapixel of each tool that ran (median over its calls; its first call in "
            "a process includes loading its weights):",
            "",
            md_table(["tool", "calls", "input MP", "wall s / MP", "CPU s / MP"], trows),
            "",
        ]
    lines += ["Checks (issue #22's bounds):", ""]
    lines += [f"* {c}" for c in checks(result)]
    return "\n".join(lines) + "\n"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def checks(result: SpeedResult) -> list[str]:
    cfg = result.config
    out = []
    if result.list_seconds:
        t = _median(result.list_seconds)
        out.append(
            f"`restoregraph tools list`: {t:.2f} s (median of {len(result.list_seconds)}; "
            f"< {TARGET_LIST_S} s: {_verdict(t < TARGET_LIST_S)})"
        )
    groups = _groups(result)
    small = [
        (s, ms) for s, p, ms in groups if p == cfg.default_planner and s == min(cfg.sizes or [s])
    ]
    for size, ms in small[:1]:
        ok = [m for m in ms if not m.error]
        if not ok:
            continue
        wall = _median([m.wall for m in ok])
        beyond = _median([m.wall - m.tool_seconds for m in ok])
        out.append(
            f"{_size_cell(size)}, {cfg.default_planner}: whole-process wall {wall:.2f} s "
            f"(≤ {TARGET_WALL_S:g} s: {_verdict(wall <= TARGET_WALL_S)}); beyond the tools' own "
            f"time {beyond:.2f} s (≤ {TARGET_OVERHEAD_S:g} s: "
            f"{_verdict(beyond <= TARGET_OVERHEAD_S)})"
        )
    done = [m for m in result.runs if not m.error]
    if done:
        big = max(done, key=lambda m: m.size[0] * m.size[1])
        gb = big.rss_mb / 1024.0
        out.append(
            f"largest photo restored, {_size_cell(big.size)}: peak RSS {gb:.2f} GB "
            f"(≤ {TARGET_RSS_GB:g} GB: {_verdict(gb <= TARGET_RSS_GB)})"
        )
    return out


__all__ = [
    "SpeedConfig",
    "SpeedResult",
    "RunMeasure",
    "checks",
    "parse_size",
    "run_speed_bench",
    "speed_markdown",
    "speed_photo",
]
