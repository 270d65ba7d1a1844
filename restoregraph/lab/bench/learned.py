"""``restoregraph bench learned``: each learned tool against the input and the best classical tool.

Rows are (task, degradation setting, test set). Denoising uses Gaussian sigma 10 / 25 / 45 and
JPEG quality 40 / 25 / 15 (levels 1 / 2 / 3 of ``restoregraph.degrade``), so the severity
effect of the low / mid / high models shows; the other tasks use ``--levels``; super-resolution
is x2. Images are the first ``n`` of each set, centre-cropped to at most ``crop`` x ``crop``
pixels, degraded with seed = crc32(``set/image``) and rounded to 8 bits (as a saved PNG).
Every classical tool of the task and every learned tool of the task, plus the all-in-one
``hybrid.nafnet``, restores each image; PSNR / SSIM are averaged per row. "Best classical" is
the classical tool with the best mean PSNR in that row (so it is an oracle choice per row).
Speed: seconds per 512 x 512 image (one run, after the quality pass has loaded the models), first image of the first
set (super-resolution: a 256 x 256 input upscaled to 512 x 512).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError, RestoreGraphError
from restoregraph.core.util import md_table, progress
from restoregraph.lab.bench.tools import _evaluate
from restoregraph.lab.common import centre_crop, image_seed, quantize8, set_images
from restoregraph.lab.report import fmt, fmt_seconds
from restoregraph.tools.registry import ToolRegistry

HYBRID = "hybrid.nafnet"


@dataclass(frozen=True)
class Row:
    task: str
    label: str
    mixture: tuple[dict[str, Any], ...]
    owners: tuple[str, ...]  # learned tools trained for this setting

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.mixture]


def rows_for(levels: Sequence[int]) -> list[Row]:
    rows = [
        Row("denoise", f"noise σ{s}", ({"type": "noise", "sigma": s},), (f"denoise.nafnet.{v}",))
        for s, v in ((10, "low"), (25, "mid"), (45, "high"))
    ]
    rows += [
        Row("dejpeg", f"JPEG q{q}", ({"type": "jpeg", "quality": q},), (f"dejpeg.nafnet.{v}",))
        for q, v in ((40, "mild"), (25, "severe"), (15, "severe"))
    ]
    single = (
        ("deblur", "motion_blur", ("deblur.nafnet.motion",)),
        ("deblur", "defocus", ("deblur.nafnet.defocus",)),
        ("derain", "rain", ("derain.nafnet",)),
        ("dehaze", "haze", ("dehaze.nafnet",)),
        ("lowlight", "low_light", ("lowlight.nafnet",)),
        ("desnow", "snow", ("desnow.nafnet",)),
    )
    for task, deg, owners in single:
        rows += [Row(task, f"{deg} L{lv}", ({"type": deg, "level": lv},), owners) for lv in levels]
    rows.append(
        Row("sr", "x2 downscale", ({"type": "low_resolution", "scale": 2},), ("sr.compact.x2",))
    )
    return rows


@dataclass
class LearnedConfig:
    data: Path
    sets: list[str]
    n: int = 4
    crop: int = 256
    levels: list[int] = field(default_factory=lambda: [2])
    tasks: list[str] | None = None
    timing_size: int = 512


@dataclass
class LearnedResult:
    config: LearnedConfig
    rows: list[Row]
    candidates: dict[
        str, dict[str, list[str]]
    ]  # row label -> {"classical": [...], "learned": [...]}
    records: list[dict[str, Any]]
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)


def _candidates(row: Row, registry: ToolRegistry) -> dict[str, list[str]]:
    scale = 2 if row.task == "sr" else 1
    specs = [s for s in registry.for_task(row.task) if s.scale == scale]
    classical = [s.id for s in specs if s.kind == "classical"]
    learned = [s.id for s in specs if s.kind == "learned"]
    if scale == 1 and HYBRID in registry:
        learned.append(HYBRID)
    return {"classical": classical, "learned": learned}


def run_learned_bench(cfg: LearnedConfig, registry: ToolRegistry | None = None) -> LearnedResult:
    from restoregraph.degrade import apply_mixture
    from restoregraph.imageio import load_image

    if registry is None:
        from restoregraph.tools import default_registry

        registry = default_registry()
    if cfg.n < 1:
        raise InputError(f"--n must be >= 1, got {cfg.n}")
    rows = [r for r in rows_for(cfg.levels) if cfg.tasks is None or r.task in cfg.tasks]
    if not rows:
        raise InputError("--tasks: no benchmark rows for these tasks")
    notes: list[str] = []
    cands = {r.label: _candidates(r, registry) for r in rows}
    for r in rows:
        missing = [o for o in r.owners if o not in registry]
        if missing:
            notes.append(f"{r.label}: learned tool(s) {', '.join(missing)} not registered")
    images = {name: set_images(cfg.data, name, cfg.n) for name in cfg.sets}
    work = [(s, p, r) for s, files in images.items() for p in files for r in rows]
    records: list[dict[str, Any]] = []
    clean: np.ndarray | None = None
    loaded: Path | None = None
    for set_name, path, row in progress(work, len(work), "learned bench (image x setting)"):
        if loaded != path:
            clean = centre_crop(load_image(path), cfg.crop, cfg.crop)
            loaded = path
        assert clean is not None
        degraded, _ = apply_mixture(clean, row.steps, seed=image_seed(set_name, path.name))
        base = {"task": row.task, "row": row.label, "set": set_name, "image": path.name}
        ids = cands[row.label]["classical"] + cands[row.label]["learned"]
        _evaluate(quantize8(degraded), clean, [registry.get(i) for i in ids], base, records)

    timings: dict[str, float] = {}
    if cfg.timing_size > 0:
        from restoregraph.metrics import match_size

        first = load_image(images[cfg.sets[0]][0])
        size = cfg.timing_size
        base_img = match_size(first, np.zeros((size, size, 3), np.float32))
        small = match_size(first, np.zeros((size // 2, size // 2, 3), np.float32))
        ids = list(dict.fromkeys(i for c in cands.values() for i in c["learned"] + c["classical"]))
        for tool_id in progress(ids, total=len(ids), desc="timing"):
            spec = registry.get(tool_id)
            img = quantize8(small if spec.scale == 2 else base_img)
            timings[tool_id] = _time_once(spec, img)
    return LearnedResult(cfg, rows, cands, records, timings, notes)


def _time_once(spec: Any, image: np.ndarray) -> float:
    """Seconds for one run (the models are already loaded by the quality pass)."""
    import time

    from restoregraph.tools import run_tool

    try:
        t0 = time.perf_counter()
        run_tool(spec, image)
        return time.perf_counter() - t0
    except RestoreGraphError:
        return math.nan


# -- report -----------------------------------------------------------------------------------
def aggregate(result: LearnedResult) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    """(row label, set) -> candidate -> (mean PSNR, mean SSIM)."""
    acc: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in result.records:
        acc[(r["row"], r["set"])][r["candidate"]].append((r["psnr"], r["ssim"]))
    out: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for key, by_cand in acc.items():
        out[key] = {}
        for cand, vals in by_cand.items():
            ps = [p for p, _ in vals if math.isfinite(p)]
            ss = [s for _, s in vals if math.isfinite(s)]
            out[key][cand] = (
                float(np.mean(ps)) if ps else math.nan,
                float(np.mean(ss)) if ss else math.nan,
            )
    return out


def _best(ids: Sequence[str], means: dict[str, tuple[float, float]]) -> str | None:
    ok = [i for i in ids if i in means and math.isfinite(means[i][0])]
    return max(ok, key=lambda i: means[i][0]) if ok else None


def _short(tool_id: str, task: str | None = None) -> str:
    """The id without its task (``nafnet.low``); ids of another task stay whole."""
    head, rest = tool_id.split(".", 1)
    return rest if task is None or head == task else tool_id


def learned_markdown(result: LearnedResult) -> str:
    agg = aggregate(result)
    cfg = result.config
    parts = [
        "",
        f"Sets {', '.join(cfg.sets)}: first {cfg.n} images each, centre crops of at most "
        f"{cfg.crop} x {cfg.crop} px. Cells: mean PSNR dB / SSIM. Best classical = the classical "
        "tool with the best mean PSNR in the row (named). Bold: best of the row. Δ: learned "
        "tool minus best classical (PSNR dB).",
        "",
    ]
    tasks = list(dict.fromkeys(r.task for r in result.rows))
    summary: dict[str, list[float]] = defaultdict(list)  # owner -> gains over best classical
    summary_in: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        rows = [r for r in result.rows if r.task == task]
        learned = list(
            dict.fromkeys(i for r in rows for i in result.candidates[r.label]["learned"])
        )
        headers = ["setting", "set", "input", "best classical", *(_short(i, task) for i in learned)]
        table = []
        for r in rows:
            for s in cfg.sets:
                means = agg.get((r.label, s))
                if not means:
                    continue
                bc = _best(result.candidates[r.label]["classical"], means)
                all_ids = [*([bc] if bc else []), *learned]
                top = _best([i for i in all_ids if i in means], means)

                def cell(i: str | None, means: dict[str, Any] = means, top: Any = top) -> str:
                    if i is None or i not in means:
                        return "–"
                    return f"{fmt(means[i][0], bold=i == top)} / {fmt(means[i][1], 3)}"

                bc_txt = f"{cell(bc)} ({_short(bc)})" if bc else "– (no classical tool)"
                line = [r.label, s, cell("input"), bc_txt]
                for i in learned:
                    txt = cell(i)
                    if bc and i in means and i in r.owners + (HYBRID,):
                        txt += f" Δ{fmt(means[i][0] - means[bc][0], signed=True)}"
                    line.append(txt)
                table.append(line)
                for o in r.owners:
                    if o in means:
                        summary_in[o].append(means[o][0] - means["input"][0])
                        if bc:
                            summary[o].append(means[o][0] - means[bc][0])
                if HYBRID in means and task != "sr":
                    summary_in[HYBRID].append(means[HYBRID][0] - means["input"][0])
                    if bc:
                        summary[HYBRID].append(means[HYBRID][0] - means[bc][0])
        parts += [f"### {task}", "", md_table(headers, table, "l" * 4 + "r" * len(learned)), ""]

    owners = list(dict.fromkeys([o for r in result.rows for o in r.owners] + [HYBRID]))
    srows = []
    for o in owners:
        if o not in summary_in:
            continue
        gain = float(np.mean(summary[o])) if summary[o] else math.nan
        verdict = "–" if not math.isfinite(gain) else ("yes" if gain >= 1.0 else "**no**")
        srows.append(
            [
                o,
                fmt(float(np.mean(summary_in[o])), signed=True),
                fmt(gain, signed=True),
                verdict,
                fmt_seconds(result.timings.get(o, math.nan)),
            ]
        )
    parts += [
        "### Summary: each learned tool on its own settings",
        "",
        "Mean PSNR gain over the input and over the best classical tool, over the rows the tool "
        "was trained for (hybrid: every row but SR) and both sets; target ≥ +1 dB over classical.",
        "",
        md_table(
            ["tool", "Δ input (dB)", "Δ best classical (dB)", "≥ 1 dB", "s / 512²"],
            srows,
            "lrrlr",
        ),
        "",
    ]
    classical_t = sorted(
        (i for i in result.timings if i not in owners), key=lambda i: result.timings[i]
    )
    if classical_t:
        parts += [
            "Classical tools, s / 512²: "
            + ", ".join(f"{i} {fmt_seconds(result.timings[i])}" for i in classical_t),
            "",
        ]
    if result.notes:
        parts += ["Notes: " + "; ".join(result.notes), ""]
    return "\n".join(parts)
