"""``restoregraph bench plans``: the planners' decisions alone, on many images per mixture.

RestoreAgent's Table 1 protocol: for each mixture and each of the first ``n`` images of a set
(the same centre crops, levels and seeds as ``bench agent``), every planner plans ONCE from the
TRUE degradations (no perception, no execution, no reflection), and its pipeline is ranked among
every pipeline of the mixture's true tasks, which the oracle runs and scores against the clean
crop (:func:`restoregraph.lab.bench.agent.plan_once`). Without the agent runs an image costs only its
oracle enumeration, so a run can afford the images a per-mixture comparison needs.

A per-image rank moves in steps of 100 / (#pipelines) and the best order of a mixture often
changes from photo to photo, so a per-mixture mean over a few images is an anecdote. Each
planner is therefore also compared with a baseline (the fixed expert rules) *paired*, image by
image: the mean difference of the ranks, its standard error, and the images it wins, ties and
loses (:func:`paired_rows`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.util import md_table, progress
from restoregraph.lab.bench.agent import (
    FAIR_PLANNERS,
    _metric_means,
    _parse,
    _plan_rows,
    bench_toolbox,
    degrade_case,
    known_planner,
    mixture_group,
    mixture_models,
    mixtures_line,
    oracle_case,
    pipeline_count,
    plan_once,
    planner_notes,
    resolve_planner,
    suite_mixtures,
)
from restoregraph.lab.common import centre_crop, set_images
from restoregraph.lab.report import fmt

DEFAULT_PLANNERS = ("random", "random-order", "random-model", "fixed", "embedded")
BASELINE = "fixed"
# a per-mixture difference counts as clear when it is at least this many standard errors
CLEAR_SE = 2.0
EST_PIPELINE_S = 0.35  # seconds per oracle pipeline at 256 x 384 px (shared 2-core CPU)


@dataclass
class PlanBenchConfig:
    data: Path
    set_name: str = "CBSD68"
    heldout: bool = False  # only the planners' held-out images (validating on a training set)
    n: int = 30
    planners: list[str] = field(default_factory=lambda: list(DEFAULT_PLANNERS))
    baseline: str = BASELINE
    objective: str = "balanced"
    level: int | None = 2  # None: sampled per image and type from the seed
    short: int = 192
    long: int = 256
    mixtures: list[str] = field(
        default_factory=lambda: suite_mixtures(["restoreagent", "agenticir"])
    )
    oracle_cap: int = 120
    toolbox: str = "all"  # "search": every planner and the oracle use the search toolbox only


@dataclass
class PlanBenchResult:
    config: PlanBenchConfig
    plans: list[dict[str, Any]]  # one per (mixture, image, planner)
    oracle: list[dict[str, Any]]  # one per (mixture, image): pipelines, best, seconds
    planners: list[str] = field(default_factory=list)  # the planners that ran
    skipped: dict[str, str] = field(default_factory=dict)  # planner label -> why not
    resolved: dict[str, str] = field(default_factory=dict)  # planner label -> what ran
    toolbox_ids: list[str] = field(default_factory=list)


def estimate(cfg: PlanBenchConfig, registry: Any) -> tuple[float, int]:
    """(rough seconds, oracle pipelines) of the run ``cfg`` describes."""
    tools = bench_toolbox(cfg.toolbox, registry)
    pipelines = 0
    for mix in cfg.mixtures:
        types = [t for t, _ in _parse(mix)]
        total = pipeline_count(mixture_models(types, [2] * len(types), tools))
        pipelines += cfg.n * min(total, cfg.oracle_cap)
    scale = (cfg.short * cfg.long) / (256 * 384)
    return pipelines * EST_PIPELINE_S * scale, pipelines


def _check(cfg: PlanBenchConfig) -> None:
    from restoregraph.lab.bench.agent import metric_names
    from restoregraph.planners import PLANNERS

    if cfg.n < 1:
        raise InputError(f"--n must be >= 1, got {cfg.n}")
    if cfg.oracle_cap < 1:
        raise InputError(f"--oracle-cap must be >= 1, got {cfg.oracle_cap}")
    if not cfg.mixtures:
        raise InputError("no mixtures to run")
    for m in cfg.mixtures:
        _parse(m)  # an unknown degradation type is a one-line error before anything runs
    metric_names(cfg.objective)
    bad = [p for p in cfg.planners if not known_planner(p)]
    if "oracle" in cfg.planners:
        bad.append("oracle (the ranking itself: 0 % by definition)")
    if bad:
        raise InputError(
            f"unknown planner(s) {', '.join(bad)}; choose from "
            f"{', '.join(sorted((set(PLANNERS) | set(FAIR_PLANNERS)) - {'oracle'}))}"
        )
    if cfg.baseline not in cfg.planners:
        raise InputError(f"the baseline {cfg.baseline!r} must be one of --planners")


def run_plan_bench(
    cfg: PlanBenchConfig,
    registry: Any = None,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> PlanBenchResult:
    """Plan every (mixture, image) with every planner and rank each plan (see the module doc).
    ``on_case`` gets each case's oracle record as it finishes (for a live log)."""
    from restoregraph.imageio import load_image
    from restoregraph.planners import get_planner

    _check(cfg)
    if registry is None:
        from restoregraph.tools import default_registry

        registry = default_registry()
    tools = bench_toolbox(cfg.toolbox, registry)
    skipped: dict[str, str] = {}
    built: dict[str, Any] = {}
    resolved: dict[str, str] = {}
    for label in cfg.planners:
        r = resolve_planner(label)
        if isinstance(r, str):
            skipped[label] = r
            continue
        name, options = r
        built[label] = get_planner(name, **options)
        resolved[label] = name
    if cfg.baseline in skipped:
        raise InputError(f"the baseline {cfg.baseline!r} cannot run: {skipped[cfg.baseline]}")
    files = set_images(cfg.data, cfg.set_name, cfg.n, cfg.heldout)
    cleans = {p.name: centre_crop(load_image(p), cfg.short, cfg.long) for p in files}
    mixtures = [(m, _parse(m)) for m in cfg.mixtures]
    plans: list[dict[str, Any]] = []
    oracle: list[dict[str, Any]] = []
    jobs = [(m, steps, name) for m, steps in mixtures for name in cleans]
    for mixture, steps, name in progress(jobs, len(jobs), "plans (mixture x image)"):
        clean = cleans[name]
        degraded, infos, seed = degrade_case(clean, cfg.set_name, name, mixture, steps, cfg.level)
        base = {"mixture": mixture, "group": mixture_group(mixture), "image": name, "seed": seed}
        t0 = time.perf_counter()
        models, pipelines, scored = oracle_case(
            degraded, clean, infos, tools, cfg.oracle_cap, seed, cfg.objective
        )
        ok = [sp for sp in scored if sp.ok]
        case = {
            **base,
            "levels": {i.type: int(i.level) for i in infos},
            "pipelines": len(pipelines),
            "total": pipeline_count(models),
            "failed": len(scored) - len(ok),
            "best": list(ok[0].tools) if ok else [],
            "metrics": dict(ok[0].metrics) if ok else {},
            "seconds": time.perf_counter() - t0,
        }
        oracle.append(case)
        for label, planner in built.items():
            rec = plan_once(
                planner, infos, degraded, clean, tools, ok, set(pipelines), cfg.objective, seed
            )
            plans.append({**base, "candidate": label, "objective": cfg.objective, **rec})
        if on_case is not None:
            on_case(case)
    return PlanBenchResult(
        config=cfg,
        plans=plans,
        oracle=oracle,
        planners=[p for p in cfg.planners if p in built],
        skipped=skipped,
        resolved=resolved,
        toolbox_ids=list(tools.ids()),
    )


# -- the paired comparison ---------------------------------------------------------------------
@dataclass(frozen=True)
class Paired:
    """A planner against the baseline on the same images (ranks in %, lower is better)."""

    n: int
    mean: float  # the planner's mean rank
    base: float  # the baseline's mean rank
    diff: float  # mean of (planner - baseline); negative: the planner is better
    se: float  # standard error of that mean (NaN for one image)
    wins: int  # images where the planner ranks strictly better
    ties: int
    losses: int

    @property
    def verdict(self) -> str:
        """better / worse (the means differ), *clearly* so when by >= CLEAR_SE standard
        errors; tied when the means are equal."""
        if self.n == 0 or not math.isfinite(self.diff):
            return "n/a"
        if self.diff == 0:
            return "tied"
        word = "better" if self.diff < 0 else "worse"
        clear = math.isfinite(self.se) and self.se > 0 and abs(self.diff) >= CLEAR_SE * self.se
        return f"clearly {word}" if clear else word


def paired(plans: Sequence[dict[str, Any]], planner: str, baseline: str) -> Paired:
    """``planner`` vs ``baseline`` over the images where both plans are ranked."""
    ranks: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in plans:
        if r["candidate"] in (planner, baseline) and math.isfinite(r["pct"]):
            key = (r["mixture"], r["image"], r["objective"])
            ranks.setdefault(key, {})[r["candidate"]] = float(r["pct"])
    pairs = [(v[planner], v[baseline]) for v in ranks.values() if planner in v and baseline in v]
    if not pairs:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, 0, 0, 0)
    a = np.array([p for p, _ in pairs])
    b = np.array([q for _, q in pairs])
    d = a - b
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return Paired(
        n=len(d),
        mean=float(a.mean()),
        base=float(b.mean()),
        diff=float(d.mean()),
        se=se,
        wins=int((d < 0).sum()),
        ties=int((d == 0).sum()),
        losses=int((d > 0).sum()),
    )


def _diff_cell(p: Paired) -> str:
    if p.n == 0:
        return "n/a"
    se = f" ± {fmt(p.se, 1)}" if math.isfinite(p.se) else ""
    return f"{fmt(p.diff, 1, signed=True)}{se} ({p.wins}/{p.ties}/{p.losses})"


def paired_rows(result: PlanBenchResult) -> list[list[str]]:
    """Per mixture: the baseline's mean rank, then per other planner its mean rank and its
    paired difference from the baseline (± s.e., wins/ties/losses over the images)."""
    cfg = result.config
    others = [p for p in result.planners if p != cfg.baseline]
    rows = []
    for mixture in [*cfg.mixtures, "**all**"]:
        recs = (
            result.plans
            if mixture == "**all**"
            else [r for r in result.plans if r["mixture"] == mixture]
        )
        ref = paired(recs, cfg.baseline, cfg.baseline)
        cells = [mixture, mixture_group(mixture) if mixture != "**all**" else "", fmt(ref.mean, 1)]
        for p in others:
            pr = paired(recs, p, cfg.baseline)
            cells += [fmt(pr.mean, 1), _diff_cell(pr)]
        rows.append(cells)
    return rows


def verdicts(result: PlanBenchResult) -> dict[str, dict[str, list[str]]]:
    """planner -> verdict (better, clearly better, tied, worse, clearly worse) -> mixtures."""
    cfg = result.config
    out: dict[str, dict[str, list[str]]] = {}
    for p in result.planners:
        if p == cfg.baseline:
            continue
        by: dict[str, list[str]] = {}
        for m in cfg.mixtures:
            v = paired([r for r in result.plans if r["mixture"] == m], p, cfg.baseline).verdict
            by.setdefault(v, []).append(m)
        out[p] = by
    return out


def verdict_text(result: PlanBenchResult) -> str:
    cfg = result.config
    parts = []
    for p, by in verdicts(result).items():
        better = len(by.get("better", [])) + len(by.get("clearly better", []))
        worse = len(by.get("worse", [])) + len(by.get("clearly worse", []))
        line = (
            f"- **{p}**: better than {cfg.baseline} on {better} of {len(cfg.mixtures)} mixtures "
            f"({len(by.get('clearly better', []))} by at least {CLEAR_SE:g} standard errors), "
            f"tied on {len(by.get('tied', []))}, worse on {worse} "
            f"({len(by.get('clearly worse', []))} by at least {CLEAR_SE:g} standard errors)"
        )
        named = [
            f"{v}: {', '.join(ms)}" for v in ("worse", "clearly worse", "tied") if (ms := by.get(v))
        ]
        parts.append(line + (f" -- {'; '.join(named)}" if named else ""))
    return "\n".join(parts)


# -- the report --------------------------------------------------------------------------------
PAIRED_NOTE = """\
Cell: the planner's mean planned-pipeline rank % over the mixture's images, then its paired
difference from the {baseline} rules' rank on the same images (negative: better), ± its
standard error, and (wins/ties/losses) over those images. A difference of at least {k:g}
standard errors is what a per-mixture "better" or "worse" needs before it says more than the
draw of images."""


def plan_bench_markdown(result: PlanBenchResult) -> str:
    cfg = result.config
    level = f"level {cfg.level}" if cfg.level is not None else "levels sampled per image (seeded)"
    n_images = len({r["image"] for r in result.oracle})
    toolbox = (
        "every registered tool"
        if cfg.toolbox == "all"
        else "the search toolbox (`restoregraph/lab/search/toolbox.py`): "
        + ", ".join(f"`{t}`" for t in result.toolbox_ids)
    )
    sampled = sum(1 for o in result.oracle if o["pipelines"] < o["total"])
    names = []
    for p in cfg.planners:
        if p in result.skipped:
            names.append(f"{p} ({result.skipped[p]})")
        else:
            ran = result.resolved.get(p, p)
            names.append(p + (f" (planner `{ran}`)" if ran != p else ""))
    lines = [
        f"- data: first {n_images} images of {cfg.set_name}"
        + (" among the planners' held-out images (validation)" if cfg.heldout else "")
        + f", centre crops of at most {cfg.short}×{cfg.long} px; every type of a mixture at "
        f"{level}; seed = crc32(`set/image/mixture`) (the same inputs as `bench agent`)",
        f"- mixtures: {len(cfg.mixtures)} -- " + mixtures_line(cfg.mixtures),
        f"- toolbox, the same for every planner and the oracle: {toolbox}",
        "- planners: " + ", ".join(names) + f"; baseline of the paired comparison: {cfg.baseline}",
        f"- oracle: every pipeline of each mixture's true tasks (up to {cfg.oracle_cap} per "
        f"image: a seeded sample on {sampled} of {len(result.oracle)} cases), "
        f"{sum(o['pipelines'] for o in result.oracle)} pipelines run and scored under "
        f"`{cfg.objective}`",
        "",
        "Each planner plans once per image from the TRUE degradation types and levels (no "
        "perception, no execution, no reflection); *pipeline rank %* is the share of the "
        "enumerated pipelines whose final image scores strictly better than the planned "
        "one's (0 = the oracle's best; lower is better). Metrics: of the planned pipeline's "
        "final image; *plan s*: planning time; *trials*: tool calls while planning. The "
        "oracle is 0 % by definition; its row gives the best pipeline's metrics.",
        "",
    ]
    groups = list(dict.fromkeys(mixture_group(m) for m in cfg.mixtures))
    rows: list[list[str]] = []
    for g in [*groups, "**all**"] if len(groups) > 1 else groups:
        recs = result.plans if g == "**all**" else [r for r in result.plans if r["group"] == g]
        orc = result.oracle if g == "**all**" else [o for o in result.oracle if o["group"] == g]
        rows += _plan_rows(recs, result.planners, g)
        rows.append([g, "*oracle best*", "0.0", *_metric_means([o["metrics"] for o in orc])])
        rows[-1] += ["", ""]
    headers = ["group", "planner", "pipeline rank % (n)", "PSNR", "SSIM", "MS-SSIM", "HaarPSI"]
    headers += ["GMSD ↓", "plan s", "trials"]
    lines += [md_table(headers, rows, "ll" + "r" * (len(headers) - 2)), ""]
    others = [p for p in result.planners if p != cfg.baseline]
    if others:
        lines += [
            f"### Per mixture, paired with {cfg.baseline}",
            "",
            PAIRED_NOTE.format(baseline=cfg.baseline, k=CLEAR_SE),
            "",
        ]
        head = ["mixture", "group", cfg.baseline]
        for p in others:
            head += [p, f"{p} − {cfg.baseline}"]
        lines += [md_table(head, paired_rows(result), "ll" + "r" * (len(head) - 2)), ""]
        lines += [verdict_text(result), ""]
    notes = planner_notes(result.plans, result.planners)
    if notes:
        lines += [notes, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_json(result: PlanBenchResult, path: Path) -> Path:
    """Every case and plan as JSON (the raw material of the tables), written atomically."""
    from restoregraph.core.util import atomic_write

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    data = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(result.config).items()},
        "oracle": clean(result.oracle),
        "plans": clean(result.plans),
    }
    atomic_write(path, json.dumps(data, indent=1) + "\n")
    return path
