"""``restoregraph bench tools``: every tool on its own task's degradation, PSNR / SSIM and speed.

For each task's degradation(s) at each level, on the first ``n`` images of each test set:
the clean image is degraded (seed = crc32 of ``set/image``, so levels 1-3 of one image share
their random draws and severity grows with the level), rounded to 8-bit levels (what a saved
PNG holds), and every tool of the task restores it. PSNR and SSIM
(``restoregraph.metrics``) of the degraded input and of each tool's output against the clean
image are averaged per (degradation, set, level). Super-resolution: the input column is the
low-resolution image bicubic-upscaled to the clean size, and a tool whose output size differs
from the clean size (x2 tool on a /3 or /4 image) is bicubic-resized to it before scoring.
Rain100L's rainy/norain pairs (rain rendered by its authors, not by us) add a row to derain.
Speed: seconds per 512x512 image per tool, the median of 3 runs after one warm-up run, on the
first image of the first set resized to 512x512 and degraded at level 2 (super-resolution
tools get the input that they upscale to 512x512).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError, RestoreGraphError
from restoregraph.core.util import md_table, progress
from restoregraph.lab.common import image_seed, quantize8, set_images
from restoregraph.lab.report import fmt, fmt_seconds
from restoregraph.tools.registry import ToolRegistry, ToolSpec

# task -> the degradation types it undoes, benchmarked separately (desnow: no tools yet)
TASK_DEGRADATIONS: dict[str, tuple[str, ...]] = {
    "denoise": ("noise",),
    "deblur": ("blur", "defocus", "motion_blur"),
    "dejpeg": ("jpeg",),
    "dehaze": ("haze",),
    "lowlight": ("low_light",),
    "derain": ("rain",),
    "sr": ("low_resolution",),
}
RAIN100L = "Rain100L"
INPUT = "input"


@dataclass
class ToolsConfig:
    data: Path
    sets: list[str]
    n: int = 10
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    tasks: list[str] = field(default_factory=lambda: list(TASK_DEGRADATIONS))
    timing_size: int = 512  # 0: no timing
    rain_pairs: int = 100  # Rain100L pairs for derain (0: none)


@dataclass
class ToolsResult:
    config: ToolsConfig
    tools: dict[str, list[str]]  # task -> tool ids
    records: list[dict[str, Any]]  # one per (image, degradation, level, candidate)
    timings: dict[str, float]  # tool id -> median seconds per 512x512 image
    rain_pairs_used: int = 0
    notes: list[str] = field(default_factory=list)


def _measure(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    from restoregraph.metrics import match_size, psnr, ssim

    if out.shape != clean.shape:
        out = match_size(out, clean)
    return float(psnr(out, clean)), float(ssim(out, clean))


def _evaluate(
    degraded: np.ndarray,
    clean: np.ndarray,
    specs: Sequence[ToolSpec],
    base: dict[str, Any],
    records: list[dict[str, Any]],
) -> None:
    from restoregraph.tools import run_tool

    p, s = _measure(degraded, clean)
    records.append({**base, "candidate": INPUT, "psnr": p, "ssim": s, "error": ""})
    for spec in specs:
        try:
            out = run_tool(spec, degraded)
            p, s = _measure(out, clean)
            err = ""
        except RestoreGraphError as exc:
            p, s, err = math.nan, math.nan, str(exc) or type(exc).__name__
        records.append({**base, "candidate": spec.id, "psnr": p, "ssim": s, "error": err})


def _rain100l_pairs(root: Path, n: int) -> list[tuple[Path, Path]]:
    from restoregraph.lab.common import list_images

    rainy, clean = root / RAIN100L / "rainy", root / RAIN100L / "norain"
    if n <= 0 or not rainy.is_dir() or not clean.is_dir():
        return []
    pairs = []
    for r in list_images(rainy):
        c = clean / r.name.replace("rain-", "norain-", 1)
        if c.is_file():
            pairs.append((r, c))
    return pairs[:n]


def _time_tool(spec: ToolSpec, image: np.ndarray, repeats: int = 3) -> float:
    from restoregraph.tools import run_tool

    try:
        run_tool(spec, image)  # warm-up: model loading, caches
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_tool(spec, image)
            times.append(time.perf_counter() - t0)
    except RestoreGraphError:
        return math.nan
    return statistics.median(times)


def timing_inputs(clean: np.ndarray, task: str, size: int, seed: int) -> dict[int, np.ndarray]:
    """scale -> the timing input: ``clean`` resized to size x size and degraded at level 2
    (for super-resolution, resized to size/scale so that the output is size x size)."""
    from restoregraph.degrade import degrade
    from restoregraph.metrics import match_size

    if task == "sr":
        return {
            s: quantize8(match_size(clean, np.zeros((size // s, size // s, 3), np.float32)))
            for s in (2, 3, 4)
        }
    base = match_size(clean, np.zeros((size, size, 3), np.float32))
    out, _ = degrade(base, TASK_DEGRADATIONS[task][0], 2, seed=seed)
    return {1: quantize8(out)}


def run_tools_bench(cfg: ToolsConfig, registry: ToolRegistry | None = None) -> ToolsResult:
    from restoregraph.degrade import degrade
    from restoregraph.imageio import load_image

    if registry is None:
        from restoregraph.tools import default_registry

        registry = default_registry()
    unknown = [t for t in cfg.tasks if t not in TASK_DEGRADATIONS]
    if unknown:
        raise InputError(
            f"--tasks: unknown task(s) {', '.join(unknown)}; choose from "
            f"{', '.join(TASK_DEGRADATIONS)}"
        )
    if cfg.n < 1:
        raise InputError(f"--n must be >= 1, got {cfg.n}")
    notes: list[str] = []
    tools: dict[str, list[str]] = {}
    for task in cfg.tasks:
        ids = [s.id for s in registry.for_task(task)]
        if ids:
            tools[task] = ids
        else:
            notes.append(f"task {task}: no tools registered, skipped")
    images = {name: set_images(cfg.data, name, cfg.n) for name in cfg.sets}
    jobs = [
        (task, deg, level)
        for task in tools
        for deg in TASK_DEGRADATIONS[task]
        for level in cfg.levels
    ]
    records: list[dict[str, Any]] = []
    work = [
        (set_name, path, job)
        for set_name, files in images.items()
        for path in files
        for job in jobs
    ]
    clean: np.ndarray | None = None
    loaded: Path | None = None
    for set_name, path, (task, deg, level) in progress(
        work, len(work), "tools (image x degradation x level)"
    ):
        if loaded != path:
            clean, loaded = load_image(path), path
        assert clean is not None
        degraded, _ = degrade(clean, deg, level, seed=image_seed(set_name, path.name))
        base = {
            "task": task,
            "degradation": deg,
            "set": set_name,
            "level": level,
            "image": path.name,
        }
        specs = [registry.get(i) for i in tools[task]]
        _evaluate(quantize8(degraded), clean, specs, base, records)
    pairs = _rain100l_pairs(cfg.data, cfg.rain_pairs) if "derain" in tools else []
    if "derain" in tools and cfg.rain_pairs > 0 and not pairs:
        notes.append(f"{RAIN100L} pairs not found in {cfg.data}: no real-rain row")
    for rainy, clean_path in progress(pairs, total=len(pairs), desc=f"derain on {RAIN100L}"):
        base = {
            "task": "derain",
            "degradation": "rain",
            "set": RAIN100L,
            "level": 0,
            "image": rainy.name,
        }
        specs = [registry.get(i) for i in tools["derain"]]
        _evaluate(load_image(rainy), load_image(clean_path), specs, base, records)
    timings: dict[str, float] = {}
    if cfg.timing_size > 0 and tools:
        first = load_image(images[cfg.sets[0]][0])
        seed = image_seed(cfg.sets[0], images[cfg.sets[0]][0].name)
        all_ids = [i for ids in tools.values() for i in ids]
        by_task = {t: timing_inputs(first, t, cfg.timing_size, seed) for t in tools}
        for tool_id in progress(all_ids, total=len(all_ids), desc="timing"):
            spec = registry.get(tool_id)
            inputs = by_task[spec.task]
            timings[tool_id] = _time_tool(spec, inputs.get(spec.scale, inputs[min(inputs)]))
    return ToolsResult(cfg, tools, records, timings, len(pairs), notes)


# -- report -----------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float:
    ok = [v for v in values if math.isfinite(v)]
    return float(np.mean(ok)) if ok else math.nan


def aggregate(result: ToolsResult) -> dict[tuple[str, str, str, int], dict[str, dict[str, Any]]]:
    """(task, degradation, set, level) -> candidate -> mean psnr, ssim, images, failures."""
    groups: dict[tuple[str, str, str, int], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in result.records:
        groups[(r["task"], r["degradation"], r["set"], r["level"])][r["candidate"]].append(r)
    out: dict[tuple[str, str, str, int], dict[str, dict[str, Any]]] = {}
    for key, cands in groups.items():
        out[key] = {
            c: {
                "psnr": _mean([r["psnr"] for r in rs]),
                "ssim": _mean([r["ssim"] for r in rs]),
                "n": len(rs),
                "failed": sum(1 for r in rs if r["error"]),
            }
            for c, rs in cands.items()
        }
    return out


def _short(tool_id: str) -> str:
    return tool_id.split(".", 1)[1]


def _row_order(key: tuple[str, str, str, int], result: ToolsResult) -> tuple[int, int, int]:
    _, deg, set_name, level = key
    degs = TASK_DEGRADATIONS[key[0]]
    sets = [*result.config.sets, RAIN100L]
    return (degs.index(deg), sets.index(set_name) if set_name in sets else 99, level)


def task_table(task: str, result: ToolsResult) -> tuple[str, str]:
    """The markdown table of one task and a generated paragraph saying what it shows."""
    agg = aggregate(result)
    ids = result.tools[task]
    keys = sorted((k for k in agg if k[0] == task), key=lambda k: _row_order(k, result))
    headers = ["degradation", "set", "level", "n", "input", *[_short(i) for i in ids], "best"]
    rows = []
    deltas: dict[str, list[tuple[float, float]]] = {i: [] for i in ids}
    wins: dict[str, int] = dict.fromkeys(ids, 0)
    not_beaten: list[str] = []
    for key in keys:
        cands = agg[key]
        inp = cands[INPUT]
        tool_psnr = {i: cands[i]["psnr"] for i in ids if i in cands}
        tool_ssim = {i: cands[i]["ssim"] for i in ids if i in cands}
        finite_p = {i: v for i, v in tool_psnr.items() if math.isfinite(v)}
        finite_s = {i: v for i, v in tool_ssim.items() if math.isfinite(v)}
        best_p = max(finite_p, key=lambda i: finite_p[i]) if finite_p else ""
        best_s = max(finite_s, key=lambda i: finite_s[i]) if finite_s else ""
        label = f"{key[1]} L{key[3]} {key[2]}" if key[3] else f"{key[1]} ({key[2]}, real)"
        if best_p:
            wins[best_p] += 1
            if finite_p[best_p] <= inp["psnr"]:
                not_beaten.append(label)
        cells = []
        for i in ids:
            c = cands.get(i)
            if c is None or not math.isfinite(c["psnr"]):
                cells.append("failed")
                continue
            cell = f"{fmt(c['psnr'], bold=i == best_p)} / {fmt(c['ssim'], 3, bold=i == best_s)}"
            if c["failed"]:
                cell += f" ({c['failed']} failed)"
            cells.append(cell)
            deltas[i].append((c["psnr"] - inp["psnr"], c["ssim"] - inp["ssim"]))
        best = _short(best_p) if best_p else "–"
        if best_p and finite_p[best_p] <= inp["psnr"]:
            best += " (≤ input)"
        level = str(key[3]) if key[3] else "real"
        rows.append(
            [
                key[1],
                key[2],
                level,
                str(inp["n"]),
                f"{fmt(inp['psnr'])} / {fmt(inp['ssim'], 3)}",
                *cells,
                best,
            ]
        )
    if result.timings:
        rows.append(
            [
                f"*s per {result.config.timing_size}² image*",
                "",
                "",
                "",
                "",
                *[fmt_seconds(result.timings.get(i, math.nan)) for i in ids],
                "",
            ]
        )
    table = md_table(headers, rows, "lllr" + "r" * (len(ids) + 1) + "l")
    parts = []
    for i in ids:
        d = deltas[i]
        if not d:
            parts.append(f"{_short(i)} always failed")
            continue
        dp, ds = _mean([x[0] for x in d]), _mean([x[1] for x in d])
        won = f" (best PSNR in {wins[i]} of {len(keys)} rows)" if len(ids) > 1 else ""
        parts.append(f"{_short(i)} {fmt(dp, signed=True)} dB / {fmt(ds, 3, signed=True)} SSIM{won}")
    text = f"Mean change against the degraded input over the {len(keys)} rows: " + "; ".join(parts)
    text += "."
    if not_beaten:
        text += " No tool beats the input's PSNR in: " + ", ".join(not_beaten) + "."
    else:
        text += " In every row at least one tool beats the input's PSNR."
    return table, text


SETUP = """\
Each row: the mean over the row's images of PSNR (dB) / SSIM against the clean image, for the
degraded input and for every tool of the task run alone on it (the tool's own degradation, one
at a time). **Bold**: the best tool per row, by PSNR and by SSIM separately; *best* names the
best tool by PSNR and says `(≤ input)` when even it does not beat the input. Degradations come
from `restoregraph.degrade` with seed = crc32(`set/image`) (levels 1-3 of an image share their
random draws) and are rounded to 8-bit levels, like a saved PNG. Super-resolution: the input
column is the low-resolution image bicubic-upscaled to the clean size; a tool whose output
differs from the clean size (x2 on a /3 or /4 image) is bicubic-resized to it before scoring.
The last row is seconds per {size}×{size} image (median of 3 runs after a warm-up run, on the
first image resized to {size}×{size} and degraded at level 2; super-resolution tools get the
input they upscale to {size}×{size}); this machine is shared, so timings are indicative."""


def tools_markdown(result: ToolsResult) -> str:
    cfg = result.config
    n_images = len({(r["set"], r["image"]) for r in result.records if r["set"] != RAIN100L})
    lines = [
        f"- data: first {cfg.n} images of {', '.join(cfg.sets)} ({n_images} images), "
        f"levels {', '.join(map(str, cfg.levels))}"
        + (
            f"; derain also on the first {result.rain_pairs_used} {RAIN100L} rainy/norain pairs "
            "(real rain rendered by its authors)"
            if result.rain_pairs_used
            else ""
        ),
        "",
        SETUP.format(size=cfg.timing_size or 512)
        if result.timings
        else SETUP.split("\nThe last row")[0],
    ]
    for note in result.notes:
        lines += ["", f"Note: {note}."]
    for task in result.tools:
        degs = ", ".join(TASK_DEGRADATIONS[task])
        table, text = task_table(task, result)
        lines += ["", f"### {task} ({degs})", "", table, "", text]
    return "\n".join(lines)
