"""``restoregraph bench agent``: the whole agent on RestoreAgent's seven mixtures, per planner.

For each mixture and each of the first ``n`` images of a test set (centre-cropped to at most
``short`` x ``long`` px for time): the clean crop is degraded by the mixture (every type at
``level``, or levels sampled per image; seed = crc32 of ``set/image/mixture``), saved as a PNG,
and restored by every planner through the real agent (:class:`restoregraph.runner.Runner`
with a temporary home directory; perception, planning, execution, reflection, rescheduling).

Per image, the input and every planner's output are scored against the clean crop; the
balanced score is ``objective_scores`` over that candidate set {input, each planner's output}
(so planners are compared on the same set). The oracle then enumerates every pipeline over
the mixture's TRUE tasks (every order x every tool per task, ``planners/oracle.py``), runs and
scores them, and says where each planner's executed pipeline (its accepted steps, in order)
ranks among them -- only when that pipeline is one of the enumerated ones: a pipeline that
skipped a needed task, added one, or repeated one is not, and is counted as n/a with the reason.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError
from restoregraph.core.util import md_table, progress
from restoregraph.lab.bench.perception import fingerprint
from restoregraph.lab.common import centre_crop, image_seed, quantize8, set_images
from restoregraph.lab.report import fmt, fmt_seconds
from restoregraph.lab.search.mixtures import AGENTICIR_GROUPS, BENCH_MIXTURES

# RestoreAgent's seven mixtures (defined once, in search/mixtures.py), as bench names
MIXTURES: tuple[str, ...] = tuple("+".join(m) for m in BENCH_MIXTURES)
SUITES: dict[str, tuple[str, ...]] = {
    "restoreagent": MIXTURES,
    "agenticir": tuple(m for g in AGENTICIR_GROUPS.values() for m in g),
}
GROUP_RESTOREAGENT = "RestoreAgent 7"
# The fair benchmark's planners (labels): ``llm`` is resolved at run time (see resolve_planner).
FAIR_PLANNERS: tuple[str, ...] = (
    "random",
    "random-order",
    "random-model",
    "fixed",
    "explore",
    "embedded",
    "embedded-verify",
    "llm",
)
# labels that are a registered planner with options (the embedded planner checking its 3 best
# plans on the image with the plan critic: EmbeddedPlanner(verify=3))
OPTION_PLANNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "embedded-verify": ("embedded", {"verify": 3}),
}
# ``embedded@PATH``: the embedded planner with the weights at PATH (a retrained candidate
# compared with the shipped weights on the same cases, in one run)
WEIGHTS_LABEL = "embedded"
LOCAL_LLM_PLANNERS: tuple[str, ...] = ("smollm2", "smollm", "local-llm", "llm-local")
PERCEPTUAL = ("ms_ssim", "haarpsi", "gmsd")
INPUT = "input"
TRIALS_RE = re.compile(r"(?:explore|verify): (\d+) trials")
# rough seconds on the 2-core development machine (shared), for the estimate printed at start
EST_RUN_S = {"explore": 4.0, "embedded-verify": 3.5}
EST_RUN_DEFAULT_S = 2.5
EST_PIPELINE_S = 0.35


@dataclass
class AgentConfig:
    data: Path
    set_name: str = "CBSD68"
    heldout: bool = False  # only the planners' held-out images (validating on a training set)
    n: int = 4
    planners: list[str] = field(default_factory=lambda: ["fixed", "random", "explore"])
    objective: str = "balanced"
    level: int | None = 2  # None: sampled per image and type from the seed
    short: int = 256
    long: int = 384
    max_steps: int = 8
    mixtures: list[str] = field(default_factory=lambda: list(MIXTURES))
    oracle: bool = True
    oracle_cap: int = 200
    perceiver: Any = None  # tests: a stand-in perceiver; None = the shipped CNN
    toolbox: str = "all"  # "search": every planner and the oracle use the search toolbox only
    # The objective switch (RestoreAgent Table 3): the same runs under other objectives.
    switch_objectives: list[str] = field(default_factory=list)
    switch_planners: list[str] = field(default_factory=lambda: ["fixed", "explore", "embedded"])
    switch_mixtures: list[str] = field(default_factory=lambda: list(MIXTURES))
    switch_n: int = 1
    # Planning only: every planner plans once from the TRUE degradations (no perception, no
    # execution, no reflection); its pipeline is ranked among the oracle's.
    plan_only: bool = True


@dataclass
class AgentResult:
    config: AgentConfig
    records: list[dict[str, Any]]  # one per (mixture, image, candidate)
    detections: list[dict[str, Any]]  # one per (mixture, image): true and detected types
    oracle: list[dict[str, Any]]  # one per (mixture, image): pipelines, tool calls, seconds
    warmup_s: float = 0.0
    perception: str = ""  # the perception files in use (sha256), or the stand-in's name
    skipped: dict[str, str] = field(default_factory=dict)  # planner label -> why it did not run
    resolved: dict[str, str] = field(default_factory=dict)  # planner label -> what ran
    resolved_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # its options
    toolbox_ids: list[str] = field(default_factory=list)  # the tools every planner could use
    switch: list[dict[str, Any]] = field(default_factory=list)  # objective-switch records
    plans: list[dict[str, Any]] = field(default_factory=list)  # planning-only records


def metric_names(objective: str) -> list[str]:
    from restoregraph.metrics import OBJECTIVES

    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    return list(dict.fromkeys(["psnr", "ssim", *PERCEPTUAL, *OBJECTIVES[objective]]))


def mixture_group(mixture: str) -> str:
    """The benchmark group of a mixture: RestoreAgent's seven, AgenticIR A/B/C, or custom."""
    if mixture in MIXTURES:
        return GROUP_RESTOREAGENT
    for name, group in AGENTICIR_GROUPS.items():
        if mixture in group:
            return f"AgenticIR {name}"
    return "custom"


def suite_mixtures(suites: Sequence[str]) -> list[str]:
    """The mixtures of the named suites (restoreagent, agenticir), in order, without repeats."""
    out: list[str] = []
    for name in suites:
        if name not in SUITES:
            raise InputError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        out += [m for m in SUITES[name] if m not in out]
    return out


def _endpoint_up(base_url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        r = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def known_planner(label: str) -> bool:
    """Whether ``label`` names a planner the benchmarks can run (registered, fair-baseline or
    ``embedded@PATH``)."""
    from restoregraph.planners import PLANNERS

    return label in PLANNERS or label in FAIR_PLANNERS or label.startswith(f"{WEIGHTS_LABEL}@")


def resolve_planner(label: str) -> tuple[str, dict[str, Any]] | str:
    """A planner label -> (registered planner name, options), or why it cannot run here.

    ``llm``: the ``openai`` planner when an endpoint is configured (``OPENAI_BASE_URL``) and
    answers, else a local SmolLM2 planner when one is registered, else not run. Other labels
    are registered planner names.
    """
    from restoregraph.planners import PLANNERS

    if label == "llm":
        base = os.environ.get("OPENAI_BASE_URL", "")
        if base and _endpoint_up(base):
            return "openai", {"base_url": base, "fallback": "fixed"}
        for name in LOCAL_LLM_PLANNERS:
            if name in PLANNERS:
                return name, {}
        why = f"OPENAI_BASE_URL {base} does not answer" if base else "no OPENAI_BASE_URL set"
        return f"not run: {why}, and no local LLM planner is registered"
    if label in OPTION_PLANNERS:
        name, options = OPTION_PLANNERS[label]
        return name, dict(options)
    if label.startswith(f"{WEIGHTS_LABEL}@"):  # candidate weights beside the shipped ones
        path = Path(label.split("@", 1)[1]).expanduser()
        if not path.is_file():
            return f"not run: no embedded planner weights at {path}"
        return WEIGHTS_LABEL, {"weights": str(path)}
    if label not in PLANNERS:
        return f"not run: no planner {label!r} is registered in this install"
    return label, {}


def bench_toolbox(toolbox: str, registry: Any) -> Any:
    """The registry every planner and the oracle use: all tools (``toolbox="all"``), or the
    search toolbox (``"search"``)."""
    if toolbox == "all":
        return registry
    if toolbox != "search":
        raise InputError(f"--toolbox must be 'search' or 'all', got {toolbox!r}")
    from restoregraph.lab.search.toolbox import default_toolbox, toolbox_ids

    return registry.subset(toolbox_ids(default_toolbox(registry)))


def measure(out: np.ndarray, clean: np.ndarray, objective: str) -> dict[str, float]:
    from restoregraph.metrics import compute, match_size

    return dict(compute(metric_names(objective), match_size(out, clean), clean))


def mixture_models(types: Sequence[str], levels: Sequence[int], registry: Any) -> dict:
    """Task -> candidate tool ids for the mixture's true degradations (the oracle's choice)."""
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION
    from restoregraph.planners.base import PlanRequest
    from restoregraph.planners.oracle import candidate_models

    perception: dict[str, int] = {}
    for t, lvl in zip(types, levels, strict=True):
        p = PERCEPTION_TYPE_FOR_DEGRADATION[t]
        perception[p] = max(perception.get(p, 0), int(lvl))
    return candidate_models(PlanRequest(perception=perception, toolbox=registry))


def degrade_case(
    clean: np.ndarray,
    set_name: str,
    name: str,
    mixture: str,
    steps: Sequence[tuple[str, int | None]],
    level: int | None,
) -> tuple[np.ndarray, list[Any], int]:
    """One benchmark input: ``clean`` degraded by ``mixture`` (every type at ``level``, or each
    at its parsed / seeded level when None), rounded to 8 bits; with its degradation infos and
    its seed (crc32 of ``set/image/mixture``: the same image always gets the same draw)."""
    from restoregraph.degrade import apply_mixture

    seed = image_seed(set_name, name, mixture)
    spec = [(t, level if level is not None else lvl) for t, lvl in steps]
    degraded, infos = apply_mixture(clean, spec, seed=seed)
    return quantize8(degraded), list(infos), seed


def oracle_case(
    degraded: np.ndarray,
    clean: np.ndarray,
    infos: Sequence[Any],
    registry: Any,
    cap: int,
    seed: int,
    objective: str,
) -> tuple[dict[str, list[str]], list[tuple[str, ...]], list[Any]]:
    """The oracle on one input: the mixture's candidate models, the enumerated pipelines (every
    order x every model of its TRUE tasks, a seeded sample of ``cap`` when there are more) and
    every one of them run and scored against ``clean`` (best first)."""
    from restoregraph.planners.oracle import enumerate_pipelines, score_pipelines

    models = mixture_models([i.type for i in infos], [i.level for i in infos], registry)
    pipelines = enumerate_pipelines(models, cap, seed)
    scored = score_pipelines(degraded, clean, registry, pipelines, objective, measure=measure)
    return models, pipelines, scored


def pipeline_count(models: dict[str, list[str]]) -> int:
    return math.factorial(len(models)) * math.prod(len(v) for v in models.values())


def estimate_seconds(cfg: AgentConfig, registry: Any) -> tuple[float, int, int]:
    """(seconds, agent runs, oracle pipelines) for the run ``cfg`` describes (rough)."""
    registry = bench_toolbox(cfg.toolbox, registry)
    runs = len(cfg.mixtures) * cfg.n * len(cfg.planners)
    agent = (
        cfg.n * len(cfg.mixtures) * sum(EST_RUN_S.get(p, EST_RUN_DEFAULT_S) for p in cfg.planners)
    )
    pipelines = 0
    if cfg.oracle:
        for mix in cfg.mixtures:
            types = [t for t, _ in _parse(mix)]
            total = pipeline_count(mixture_models(types, [2] * len(types), registry))
            pipelines += cfg.n * min(total, cfg.oracle_cap)
    scale = (cfg.short * cfg.long) / (256 * 384)
    return (agent + pipelines * EST_PIPELINE_S) * scale, runs, pipelines


def _parse(mixture: str) -> list[tuple[str, int | None]]:
    from restoregraph.degrade import parse_mixture

    return parse_mixture(mixture)


def classify(
    executed: Sequence[str],
    needed: set[str],
    enumerated: AbstractSet[tuple[str, ...]],
    perceived: AbstractSet[str] = frozenset(),
    attempted: AbstractSet[str] = frozenset(),
) -> str:
    """'' when ``executed`` is an enumerated pipeline, else why not: ``; ``-separated causes.

    A needed task missing from the pipeline was ``not perceived`` (perception did not report
    it on the input), ``rolled back`` (attempted, never accepted), or ``dropped after
    re-perception`` (reported on the input, never attempted: after an accepted step the
    re-run perception no longer reported it). ``perceived`` and ``attempted`` are task names.
    """
    if tuple(executed) in enumerated:
        return ""
    tasks = [t.split(".", 1)[0] for t in executed]
    causes = []
    if len(set(tasks)) < len(tasks):
        causes.append("a task repeated")
    for task in sorted(set(tasks) - needed):
        causes.append(f"extra {task}")
    for task in sorted(needed - set(tasks)):
        if task in attempted:
            causes.append(f"{task} rolled back")
        elif task not in perceived:
            causes.append(f"{task} not perceived")
        else:
            causes.append(f"{task} dropped after re-perception")
    return "; ".join(causes) or "not in the sampled pipelines"


def _perceived(events: list[dict[str, Any]]) -> dict[str, int]:
    for ev in events:
        if ev.get("event") == "perception":
            return dict(ev.get("present", {}))
    return {}


def _trials(events: list[dict[str, Any]]) -> int:
    total = 0
    for ev in events:
        if ev.get("event") == "plan":
            m = TRIALS_RE.search(str(ev.get("note", "")))
            if m:
                total += int(m.group(1))
    return total


def _resolve_planners(
    cfg: AgentConfig,
) -> tuple[dict[str, str], dict[str, tuple[str, dict[str, Any]]]]:
    """Check ``cfg.planners`` and resolve each label: (label -> why it cannot run here,
    label -> (registered planner name, options))."""
    from restoregraph.planners import PLANNERS

    if INPUT in cfg.planners or "oracle" in cfg.planners:
        raise InputError("--planners: 'input' and 'oracle' are rows of their own, not planners")
    bad = [p for p in cfg.planners if not known_planner(p)]
    if bad:
        raise InputError(
            f"unknown planner(s) {', '.join(bad)}; choose from "
            f"{', '.join(sorted(set(PLANNERS) | set(FAIR_PLANNERS)))}"
        )
    skipped: dict[str, str] = {}
    resolved: dict[str, tuple[str, dict[str, Any]]] = {}
    for label in cfg.planners:
        r = resolve_planner(label)
        if isinstance(r, str):
            skipped[label] = r
        else:
            resolved[label] = r
    return skipped, resolved


def _agent_candidate(
    base: dict[str, Any], planner: str, res: Any, metrics: dict[str, float]
) -> dict[str, Any]:
    """The record of one planner's agent run on one input."""
    hist = res.history
    return {
        **base,
        "candidate": planner,
        "metrics": metrics,
        "pipeline": tuple(h["tool"] for h in hist if h["status"] == "accepted"),
        "seconds": res.seconds,
        "steps": len(hist),
        "trials": _trials(res.events),
        "calls": len(hist) + _trials(res.events),
        "rollbacks": sum(1 for h in hist if h["status"] == "rolled_back"),
        "failed": sum(1 for h in hist if h["status"] == "failed"),
        "stop": res.state.get("stop_reason", ""),
        "attempted": {h["task"] for h in hist if h["status"] != "accepted"},
    }


def _rank_candidates(
    cands: list[dict[str, Any]],
    infos: Sequence[Any],
    detected: dict[str, int],
    scored: list[Any],
    ok: list[Any],
    enumerated: AbstractSet[tuple[str, ...]],
    objective: str,
) -> None:
    """Where each planner's pipeline (``why_na`` when not enumerated) and output rank among the
    oracle's scored pipelines (``pipeline_pct``, ``output_pct``)."""
    from restoregraph.core.tasks import TASK_FOR_DEGRADATION, TASK_FOR_PERCEPTION_TYPE
    from restoregraph.metrics import objective_scores
    from restoregraph.planners.oracle import rank_percentile

    needed = {TASK_FOR_DEGRADATION[i.type] for i in infos}
    perceived_tasks = {TASK_FOR_PERCEPTION_TYPE[t] for t in detected}
    for c in cands[1:]:
        c["why_na"] = classify(c["pipeline"], needed, enumerated, perceived_tasks, c["attempted"])
        c["pipeline_pct"] = rank_percentile(c["pipeline"], scored) if not c["why_na"] else math.nan
        # where the planner's OUTPUT would rank: scored together with all of them
        joint = objective_scores([sp.metrics for sp in ok] + [c["metrics"]], objective)
        better = sum(1 for s in joint[:-1] if s > joint[-1])
        c["output_pct"] = 100.0 * better / len(scored)


def _oracle_record(
    base: dict[str, Any],
    models: dict[str, list[str]],
    pipelines: list[tuple[str, ...]],
    scored: list[Any],
    ok: list[Any],
    t0: float,
) -> dict[str, Any]:
    """The oracle's record of one input (started at ``t0``): its best pipeline overall and per
    objective."""
    from restoregraph.metrics import OBJECTIVES, objective_scores

    best = ok[0] if ok else None
    best_by: dict[str, dict[str, Any]] = {}
    for obj in OBJECTIVES:
        if ok and all(m in sp.metrics for sp in ok for m in OBJECTIVES[obj]):
            sc = objective_scores([sp.metrics for sp in ok], obj)
            top = ok[int(np.argmax(sc))]
            best_by[obj] = {"tools": top.tools, "metrics": dict(top.metrics)}
    return {
        **base,
        "best_by": best_by,
        "pipelines": len(pipelines),
        "total": pipeline_count(models),
        "best": best.tools if best else (),
        "metrics": dict(best.metrics) if best else {},
        "failed": len(scored) - len(ok),
        "seconds": time.perf_counter() - t0,
    }


@dataclass
class _AgentBench:
    """One ``run_agent_bench``: the agent runs, the oracle and the plans of every input."""

    cfg: AgentConfig
    registry: Any  # the bench toolbox
    tool_ids: tuple[str, ...]
    resolved: dict[str, tuple[str, dict[str, Any]]]
    planners: list[str]
    runner: Any
    work: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    oracle: list[dict[str, Any]] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    built: dict[str, Any] = field(default_factory=dict)  # label -> planner (plan-only)

    def ctx_for(self, label: str, seed: int) -> Any:
        from restoregraph.core.settings import RunContext

        cfg = self.cfg
        name, options = self.resolved[label]
        return RunContext(
            planner=name,
            planner_options=dict(options),
            objective=cfg.objective,  # type: ignore[arg-type]
            max_steps=cfg.max_steps,
            seed=seed,
            perceiver=cfg.perceiver,
            toolbox=None if cfg.toolbox == "all" else self.tool_ids,
        )

    def warm_up(self, clean: np.ndarray, mixture: str) -> float:
        """Load the perceiver, the metrics, each planner and its tools (not counted)."""
        from restoregraph.degrade import apply_mixture
        from restoregraph.imageio import save_image

        t0 = time.perf_counter()
        first = quantize8(apply_mixture(clean, mixture, seed=1)[0])
        save_image(first, self.work / "warmup.png")
        for planner in progress(self.planners, len(self.planners), "agent warm-up"):
            self.runner.start(
                self.work / "warmup.png", None, self.ctx_for(planner, 1), run_id=f"w-{planner}"
            )
        return time.perf_counter() - t0

    def run_agents(
        self, mi: int, name: str, base: dict[str, Any], degraded: np.ndarray, clean: np.ndarray
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The input's record and every planner's agent run on it (balanced over the set); with
        the degradations the first run's perception detected."""
        from restoregraph.imageio import load_image, save_image
        from restoregraph.metrics import objective_scores

        objective = self.cfg.objective
        in_path = self.work / f"{mi}-{Path(name).stem}.png"
        save_image(degraded, in_path)
        cands: list[dict[str, Any]] = [
            {
                **base,
                "candidate": INPUT,
                "metrics": measure(degraded, clean, objective),
                "pipeline": (),
            }
        ]
        detected: dict[str, int] = {}
        for planner in self.planners:
            out_path = self.work / f"{mi}-{Path(name).stem}-{planner}.png"
            res = self.runner.start(
                in_path,
                out_path,
                self.ctx_for(planner, base["seed"]),
                run_id=f"{mi}-{Path(name).stem}-{planner}",
            )
            out = load_image(out_path)
            detected = detected or _perceived(res.events)
            cands.append(_agent_candidate(base, planner, res, measure(out, clean, objective)))
        scores = objective_scores([c["metrics"] for c in cands], objective)
        for c, s in zip(cands, scores, strict=True):
            c["balanced"] = float(s)
            c["beats_input"] = float(s) > scores[0]
        return cands, detected

    def plan_only(
        self,
        base: dict[str, Any],
        infos: Sequence[Any],
        degraded: np.ndarray,
        clean: np.ndarray,
        ok: list[Any],
        enumerated: AbstractSet[tuple[str, ...]],
    ) -> None:
        """Every planner plans once from the true degradations (per objective it is run
        under); its plan is ranked among the oracle's."""
        from restoregraph.planners import get_planner as make_planner

        cfg = self.cfg
        plan_objectives = [cfg.objective, *[o for o in cfg.switch_objectives if o != cfg.objective]]
        for label in self.planners:
            if label not in self.built:
                name, options = self.resolved[label]
                self.built[label] = make_planner(name, **options)
            objs = [
                o for o in plan_objectives if o == cfg.objective or label in cfg.switch_planners
            ]
            for obj in objs:
                plan = plan_once(
                    self.built[label],
                    infos,
                    degraded,
                    clean,
                    self.registry,
                    ok,
                    enumerated,
                    obj,
                    base["seed"],
                )
                self.plans.append({**base, "candidate": label, "objective": obj, **plan})

    def run_oracle(
        self,
        base: dict[str, Any],
        cands: list[dict[str, Any]],
        infos: Sequence[Any],
        detected: dict[str, int],
        degraded: np.ndarray,
        clean: np.ndarray,
    ) -> None:
        """The oracle on one input; the candidates ranked among its pipelines; the plans."""
        cfg = self.cfg
        t1 = time.perf_counter()
        models, pipelines, scored = oracle_case(
            degraded, clean, infos, self.registry, cfg.oracle_cap, base["seed"], cfg.objective
        )
        enumerated = set(pipelines)
        ok = [sp for sp in scored if sp.ok]
        _rank_candidates(cands, infos, detected, scored, ok, enumerated, cfg.objective)
        if cfg.plan_only:
            self.plan_only(base, infos, degraded, clean, ok, enumerated)
        self.oracle.append(_oracle_record(base, models, pipelines, scored, ok, t1))

    def run_case(self, mi: int, mixture: str, steps: Any, name: str, clean: np.ndarray) -> None:
        """One input (``clean`` degraded by ``mixture``): agents, detection, oracle."""
        cfg = self.cfg
        degraded, infos, seed = degrade_case(clean, cfg.set_name, name, mixture, steps, cfg.level)
        base = {"mixture": mixture, "group": mixture_group(mixture), "image": name, "seed": seed}
        cands, detected = self.run_agents(mi, name, base, degraded, clean)
        self.detections.append(
            {**base, "true": [i.type for i in infos], "levels": [i.level for i in infos]}
            | {"detected": detected}
        )
        if cfg.oracle:
            self.run_oracle(base, cands, infos, detected, degraded, clean)
        self.records.extend(cands)


def run_agent_bench(cfg: AgentConfig, registry: Any = None, echo: Any = None) -> AgentResult:
    from restoregraph.imageio import load_image
    from restoregraph.runner import Runner

    if registry is None:
        from restoregraph.tools import default_registry

        registry = default_registry()
    full_registry = registry
    registry = bench_toolbox(cfg.toolbox, registry)
    tool_ids = tuple(registry.ids())
    skipped, resolved = _resolve_planners(cfg)
    planners = [p for p in cfg.planners if p in resolved]
    if cfg.n < 1:
        raise InputError(f"--n must be >= 1, got {cfg.n}")
    metric_names(cfg.objective)
    mixtures = [(m, _parse(m)) for m in cfg.mixtures]
    used = fingerprint() if cfg.perceiver is None else f"stand-in {type(cfg.perceiver).__name__}"
    files = set_images(cfg.data, cfg.set_name, cfg.n, cfg.heldout)
    cleans = {p.name: centre_crop(load_image(p), cfg.short, cfg.long) for p in files}

    old_home = os.environ.get("RESTOREGRAPH_HOME")
    with tempfile.TemporaryDirectory(prefix="restoregraph-bench-") as tmp:
        os.environ["RESTOREGRAPH_HOME"] = tmp
        try:
            work = Path(tmp) / "images"
            bench = _AgentBench(
                cfg, registry, tool_ids, resolved, planners, Runner(Path(tmp) / "home"), work
            )
            work.mkdir()
            warmup = bench.warm_up(cleans[files[0].name], mixtures[0][0])
            jobs = [(mi, name) for mi in range(len(mixtures)) for name in cleans]
            for mi, name in progress(jobs, len(jobs), "agent (mixture x image)"):
                mixture, steps = mixtures[mi]
                bench.run_case(mi, mixture, steps, name, cleans[name])
        finally:
            if old_home is None:
                os.environ.pop("RESTOREGRAPH_HOME", None)
            else:
                os.environ["RESTOREGRAPH_HOME"] = old_home
    if cfg.perceiver is None and fingerprint() != used:
        raise InputError("the perception weights or thresholds changed during the run; run again")
    result = AgentResult(cfg, bench.records, bench.detections, bench.oracle, warmup, used)
    result.skipped = skipped
    result.resolved = {k: v[0] for k, v in resolved.items()}
    result.resolved_options = {k: dict(v[1]) for k, v in resolved.items() if v[1]}
    result.toolbox_ids = list(tool_ids)
    result.plans = bench.plans
    result.switch = run_objective_switch(cfg, full_registry, result)
    return result


def true_perception(infos: Sequence[Any]) -> dict[str, int]:
    """The degradations actually applied, as perception would report them (type -> level)."""
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION

    out: dict[str, int] = {}
    for i in infos:
        p = PERCEPTION_TYPE_FOR_DEGRADATION[i.type]
        out[p] = max(out.get(p, 0), int(i.level))
    return out


def plan_once(
    planner: Any,
    infos: Sequence[Any],
    degraded: np.ndarray,
    clean: np.ndarray,
    registry: Any,
    ok: Sequence[Any],
    enumerated: AbstractSet[tuple[str, ...]],
    objective: str,
    seed: int,
) -> dict[str, Any]:
    """One plan from the true degradations, ranked among the oracle's scored pipelines under
    ``objective`` (``pct``: share of them scoring strictly better; NaN with ``why`` when the
    plan does not run each needed task once). A plan outside a sampled enumeration is run and
    scored together with them."""
    from restoregraph.core.errors import RestoreGraphError
    from restoregraph.metrics import objective_scores
    from restoregraph.planners.base import PlanRequest
    from restoregraph.tools.run import run_tool

    req = PlanRequest(
        perception=true_perception(infos),
        toolbox=registry,
        objective=objective,
        seed=seed,
        load_image=lambda: degraded,
    )
    t0 = time.perf_counter()
    try:
        plan = planner.plan(req)
        steps = tuple(s["tool"] for s in plan.steps)
        note, error = plan.note, ""
    except RestoreGraphError as exc:
        steps, note, error = (), "", str(exc)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "pipeline": steps,
        "seconds": seconds,
        "trials": _trials([{"event": "plan", "note": note}]),
        "note": note[:160],
        "metrics": {},
        "pct": math.nan,
        "why": error,
    }
    if error or not ok:
        out["why"] = out["why"] or "no scored pipeline"
        return out
    tasks = [t.split(".", 1)[0] for t in steps]
    needed = {t.split(".", 1)[0] for t in ok[0].tools}
    if len(set(tasks)) != len(tasks) or set(tasks) != needed:
        out["why"] = "the plan does not run each needed task once"
        return out
    by_tools = {sp.tools: sp for sp in ok}
    if steps in by_tools:
        metrics = dict(by_tools[steps].metrics)
    elif steps in enumerated:
        out["why"] = "the planned pipeline failed"
        return out
    else:  # outside a sampled enumeration: run it and score it with them
        image = degraded
        try:
            for tool in steps:
                image = run_tool(registry.get(tool), image)
        except RestoreGraphError as exc:
            out["why"] = f"the planned pipeline failed ({exc})"
            return out
        metrics = measure(image, clean, objective)
    pool = [dict(sp.metrics) for sp in ok if sp.tools != steps] + [metrics]
    scores = objective_scores(pool, objective)
    out["metrics"] = metrics
    out["pct"] = 100.0 * sum(1 for x in scores[:-1] if x > scores[-1]) / len(pool)
    return out


def run_objective_switch(
    cfg: AgentConfig, registry: Any, main: AgentResult
) -> list[dict[str, Any]]:
    """The switch planners under each other objective on the switch mixtures' first images.

    Records of the main run (its objective) on the same images are reused; the other
    objectives are fresh runs (no oracle: its best pipeline per objective comes from the main
    run's oracle, which scored every metric). Each record gets ``objective``.
    """
    import dataclasses

    if not cfg.switch_objectives or cfg.switch_n < 1:
        return []
    planners = [p for p in cfg.switch_planners if p in main.resolved]
    mixtures = [m for m in cfg.switch_mixtures if m in cfg.mixtures]
    n = min(cfg.switch_n, cfg.n)
    if not planners or not mixtures:
        return []
    keep_images = {p.name for p in set_images(cfg.data, cfg.set_name, n, cfg.heldout)}
    out = [
        {**r, "objective": cfg.objective}
        for r in main.records
        if r["candidate"] in planners and r["mixture"] in mixtures and r["image"] in keep_images
    ]
    for obj in cfg.switch_objectives:
        if obj == cfg.objective:
            continue
        sub = dataclasses.replace(
            cfg,
            objective=obj,
            planners=planners,
            mixtures=mixtures,
            n=n,
            oracle=False,
            switch_objectives=[],
        )
        res = run_agent_bench(sub, registry)
        out += [{**r, "objective": obj} for r in res.records if r["candidate"] != INPUT]
    return out


# -- report -----------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float:
    ok = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(ok)) if ok else math.nan


def _pct_cell(cands: list[dict[str, Any]]) -> str:
    vals = [c["pipeline_pct"] for c in cands if "pipeline_pct" in c and not c.get("why_na")]
    if "pipeline_pct" not in cands[0]:
        return "–"
    if not vals:
        return f"n/a (0/{len(cands)})"
    return f"{fmt(_mean(vals), 1)} ({len(vals)}/{len(cands)})"


def _rows_for(
    recs: list[dict[str, Any]], planners: Sequence[str], label: str, oracle: list[dict[str, Any]]
) -> list[list[str]]:
    by = defaultdict(list)
    for r in recs:
        by[r["candidate"]].append(r)
    rows = []
    for cand in [INPUT, *planners]:
        cs = by.get(cand, [])
        if not cs:
            continue
        psnr = _mean([c["metrics"]["psnr"] for c in cs])
        ssim = _mean([c["metrics"]["ssim"] for c in cs])
        bal = _mean([c["balanced"] for c in cs])
        if cand == INPUT:
            rows.append(
                [label, INPUT, fmt(psnr), fmt(ssim, 3), fmt(bal), "", "", "", "", "", "", ""]
            )
            continue
        beats = sum(1 for c in cs if c["beats_input"])
        rows.append(
            [
                label,
                cand,
                fmt(psnr),
                fmt(ssim, 3),
                fmt(bal),
                f"{beats}/{len(cs)}",
                fmt_seconds(_mean([c["seconds"] for c in cs])),
                fmt(_mean([c["steps"] for c in cs]), 1),
                fmt(_mean([c["trials"] for c in cs]), 1),
                fmt(_mean([c["rollbacks"] + c["failed"] for c in cs]), 1),
                _pct_cell(cs),
                fmt(_mean([c.get("output_pct", math.nan) for c in cs]), 1),
            ]
        )
    if oracle:
        rows.append(
            [
                label,
                "*oracle best*",
                fmt(_mean([o["metrics"].get("psnr", math.nan) for o in oracle])),
                fmt(_mean([o["metrics"].get("ssim", math.nan) for o in oracle]), 3),
                "",
                "",
                fmt_seconds(_mean([o["seconds"] for o in oracle])),
                fmt(_mean([len(o["best"]) for o in oracle]), 1),
                "",
                "",
                "0.0",
                "",
            ]
        )
    return rows


HEADERS = [
    "mixture",
    "row",
    "PSNR",
    "SSIM",
    "balanced",
    "beats input",
    "s / image",
    "steps",
    "trials",
    "rollbacks",
    "pipeline rank % (n)",
    "output rank %",
]


def agent_markdown(result: AgentResult) -> str:
    cfg = result.config
    recs, orc = result.records, result.oracle
    level = f"level {cfg.level}" if cfg.level is not None else "levels sampled per image (seeded)"
    runs = sum(1 for r in recs if r["candidate"] != INPUT)
    ran = [p for p in cfg.planners if p not in result.skipped]
    toolbox = (
        "every registered tool"
        if cfg.toolbox == "all"
        else "the search toolbox (`restoregraph/lab/search/toolbox.py`, what the search data and "
        "the embedded planner use)"
    )
    lines = [
        f"- data: first {cfg.n} images of {cfg.set_name}"
        + (" among the planners' held-out images (validation)" if cfg.heldout else "")
        + ", centre crops of at most "
        f"{cfg.short}×{cfg.long} px (short × long side, orientation kept; for time); every "
        f"type of a mixture at {level}; degradation and run seed = crc32(`set/image/mixture`)",
        f"- mixtures: {len(cfg.mixtures)} -- " + mixtures_line(cfg.mixtures),
        f"- toolbox, the same for every planner and the oracle: {toolbox}: "
        + (", ".join(f"`{t}`" for t in result.toolbox_ids) if cfg.toolbox != "all" else "")
        + f" ({len(result.toolbox_ids)} tools)",
        f"- agent: `Runner.start` with a temporary home, `RunContext(planner=…, "
        f"objective={cfg.objective!r}, max_steps={cfg.max_steps}, seed=…)`, the shipped "
        f"perception CNN ({result.perception}), {runs} runs (+{len(ran)} warm-up runs, "
        f"{fmt_seconds(result.warmup_s)} s, not counted)",
        "- planners: " + planners_line(result),
        oracle_line(result),
        "",
        FAIR_SETUP.format(objective=cfg.objective),
        "",
    ]
    groups = list(dict.fromkeys(mixture_group(m) for m in cfg.mixtures))
    rows: list[list[str]] = []
    for g in groups:
        rows += _fair_rows(
            [r for r in recs if r["group"] == g], ran, g, [o for o in orc if o["group"] == g]
        )
    if len(groups) > 1:
        rows += _fair_rows(recs, ran, "**all**", orc)
    lines += [md_table(FAIR_HEADERS, rows, "ll" + "r" * (len(FAIR_HEADERS) - 2)), ""]
    lines += [summary_text(result), ""]
    if result.plans:
        lines += ["### Planning only: the true degradations given", "", PLAN_NOTE, ""]
        lines += [plans_table(result), "", plans_summary(result), ""]
    if cfg.oracle:
        lines += ["### Pipeline rank per mixture", "", matrix_note(result), ""]
        lines += [rank_matrix(result), ""]
    if len({r["objective"] for r in result.plans}) > 1 or result.switch:
        lines += ["### Objective switch", ""]
    if len({r["objective"] for r in result.plans}) > 1:
        lines += [SWITCH_PLAN_NOTE, "", plan_switch_table(result), ""]
    if result.switch:
        lines += [switch_text(result), "", switch_table(result), ""]
    lines += ["### Perception on these inputs", "", perception_table(result), ""]
    lines += [perception_text(result), ""]
    mix_rows: list[list[str]] = []
    for mixture in cfg.mixtures:
        recs_m = [r for r in recs if r["mixture"] == mixture]
        mix_rows += _rows_for(recs_m, ran, mixture, [o for o in orc if o["mixture"] == mixture])
    mix_rows += _rows_for(recs, ran, "**all**", orc)
    lines += [
        "### Every mixture in detail",
        "",
        "<details><summary>per mixture and planner (click)</summary>",
        "",
        AGENT_SETUP.format(objective=cfg.objective),
        "",
        md_table(HEADERS, mix_rows, "ll" + "r" * (len(HEADERS) - 2)),
        "",
        "</details>",
    ]
    if cfg.oracle:
        lines += ["", "### Why a pipeline rank is n/a", "", na_text(result)]
    return "\n".join(lines)


FAIR_HEADERS = [
    "group",
    "planner",
    "PSNR",
    "SSIM",
    "MS-SSIM",
    "HaarPSI",
    "GMSD ↓",
    "balanced",
    "pipeline rank % (n)",
    "output rank %",
    "s / image",
    "tool calls / image",
]

FAIR_SETUP = """\
Rows: means over the group's images. PSNR (dB), SSIM, MS-SSIM, HaarPSI and GMSD (lower is
better) against the clean crop. *balanced*: `objective_scores` ({objective}) over each image's
candidate set {{input, every planner's output}} (higher is better; the set sums to 0).
*pipeline rank %* (RestoreAgent Table 1, `planners/oracle.py rank_percentile`): the share of
all enumerated pipelines of the image's TRUE tasks that score strictly better than the
planner's executed pipeline (0 = it found the best one), averaged over the images where the
executed pipeline is one of them -- (k/n) says on how many; *output rank %*: the same for the
planner's output image, scored among the pipelines' final images (defined on every image).
*s / image*: the agent's wall time per image; *tool calls / image*: every tool execution of
the run plus the explore planner's trial calls on crops. *oracle best*: the best enumerated
pipeline per image (it needs the clean image: a ceiling, not a planner)."""

MATRIX_NOTE = (
    "Cell: mean pipeline rank % (images where it is defined / images) · mean output rank %; "
    "lower is better; **bold**: the lowest output rank % of the row."
)


PLAN_NOTE = """\
Each planner plans once per image from the TRUE degradation types and levels (no perception,
no execution, no reflection: `planner.plan(PlanRequest(perception=truth, toolbox=the bench
toolbox, load_image=the degraded image))`), and its pipeline is ranked among the oracle's
(*pipeline rank %*: share of the enumerated pipelines scoring strictly better; 0 = the best;
lower is better). This isolates the planner's decision (RestoreAgent Table 1); the table
above measures the whole agent, where perception misses and rollbacks change the pipeline.
Metrics: of the planned pipeline's final image. *plan s*: planning time per image; *trials*:
tool calls made while planning (explore). *n/a*: plans that skip or repeat a needed task."""

SWITCH_PLAN_NOTE = """\
Planning only (as above), the switch planners asked with `PlanRequest.objective` set to each
objective, on every image; *rank %* is under that objective. *oracle best*: the best
enumerated pipeline under each objective (every metric was computed for every pipeline). An
objective that works moves PSNR up under `psnr` and MS-SSIM / HaarPSI up and GMSD down under
`perceptual`; `fixed` ignores the objective (a control)."""


def _plan_rows(recs: list[dict[str, Any]], planners: Sequence[str], label: str) -> list[list[str]]:
    rows = []
    for p in planners:
        cs = [r for r in recs if r["candidate"] == p]
        if not cs:
            continue
        ranked = [r["pct"] for r in cs if math.isfinite(r["pct"])]
        ms = [r["metrics"] for r in cs if r["metrics"]]
        pct = (
            f"{fmt(_mean(ranked), 1)} ({len(ranked)}/{len(cs)})" if ranked else f"n/a (0/{len(cs)})"
        )
        rows.append(
            [label, p, pct, *_metric_means(ms)]
            + [
                fmt_seconds(_mean([r["seconds"] for r in cs])),
                fmt(_mean([r["trials"] for r in cs]), 1),
            ]
        )
    return rows


def plans_table(result: AgentResult) -> str:
    cfg = result.config
    recs = [r for r in result.plans if r["objective"] == cfg.objective]
    planners = [p for p in cfg.planners if p not in result.skipped]
    groups = list(dict.fromkeys(mixture_group(m) for m in cfg.mixtures))
    rows: list[list[str]] = []
    for g in groups:
        rows += _plan_rows([r for r in recs if r["group"] == g], planners, g)
    if len(groups) > 1:
        rows += _plan_rows(recs, planners, "**all**")
    headers = ["group", "planner", "pipeline rank % (n)", "PSNR", "SSIM", "MS-SSIM", "HaarPSI"]
    headers += ["GMSD ↓", "plan s", "trials"]
    return md_table(headers, rows, "ll" + "r" * (len(headers) - 2))


def plans_summary(result: AgentResult) -> str:
    """Per planner: mean rank, and on how many mixtures it beats the fixed rules."""
    cfg = result.config
    recs = [r for r in result.plans if r["objective"] == cfg.objective]

    def mix_mean(p: str, m: str) -> float:
        return _mean([r["pct"] for r in recs if r["candidate"] == p and r["mixture"] == m])

    parts = []
    for p in cfg.planners:
        if p in result.skipped or p == "fixed" or not any(r["candidate"] == p for r in recs):
            continue
        pairs = [(mix_mean(p, m), mix_mean("fixed", m)) for m in cfg.mixtures]
        pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
        better = sum(1 for a, b in pairs if a < b)
        ties = sum(1 for a, b in pairs if a == b)
        parts.append(f"{p} better than fixed on {better}, tied on {ties}, of {len(pairs)} mixtures")
    text = f"Per mixture (mean planned-pipeline rank %): {'; '.join(parts)}." if parts else ""
    notes = planner_notes(recs, cfg.planners)
    return text + ("\n\n" + notes if notes else "")


def planner_notes(recs: list[dict[str, Any]], planners: Sequence[str]) -> str:
    """Each planner's most common plan note and n/a reasons (a fallback shows here)."""
    notes = []
    for p in planners:
        ns = Counter(r["note"] for r in recs if r["candidate"] == p and r["note"])
        errs = Counter(r["why"] for r in recs if r["candidate"] == p and r["why"])
        if ns:
            note, k = ns.most_common(1)[0]
            notes.append(
                f'- {p}: {k} of {sum(1 for r in recs if r["candidate"] == p)} plans say "{note}"'
            )
        for why, k in errs.most_common(2):
            notes.append(f"- {p}: n/a on {k}: {why}")
    if not notes:
        return ""
    return "Planner notes (most common; a fallback shows here):\n\n" + "\n".join(notes)


def plan_switch_table(result: AgentResult) -> str:
    cfg = result.config
    objs = list(dict.fromkeys(r["objective"] for r in result.plans))
    planners = [p for p in cfg.switch_planners if any(r["candidate"] == p for r in result.plans)]
    rows = []
    for obj in objs:
        for p in planners:
            cs = [r for r in result.plans if r["objective"] == obj and r["candidate"] == p]
            if not cs:
                continue
            ranked = [r["pct"] for r in cs if math.isfinite(r["pct"])]
            ms = [r["metrics"] for r in cs if r["metrics"]]
            rows.append([obj, p, fmt(_mean(ranked), 1), *_metric_means(ms), str(len(ms))])
        best = [o["best_by"][obj]["metrics"] for o in result.oracle if obj in o.get("best_by", {})]
        if best:
            rows.append([obj, "*oracle best*", "0.0", *_metric_means(best), str(len(best))])
    headers = ["objective", "planner", "rank %", "PSNR", "SSIM", "MS-SSIM", "HaarPSI", "GMSD ↓"]
    return md_table([*headers, "images"], rows, "ll" + "r" * 7)


def mixtures_line(mixtures: Sequence[str]) -> str:
    groups: dict[str, list[str]] = defaultdict(list)
    for m in mixtures:
        groups[mixture_group(m)].append(m)
    parts = [f"{g}: " + ", ".join(f"`{m}`" for m in ms) for g, ms in groups.items()]
    return "; ".join(parts) + (
        " (AgenticIR's groups as in its code's `eval/compare_methods.py`: A and B are pairs, "
        "C triples; dark = low_light, defocus blur = defocus)"
        if any(g.startswith("AgenticIR") for g in groups)
        else ""
    )


def planners_line(result: AgentResult) -> str:
    names = {
        "random": "random order & model",
        "random-order": "random order + predicted (fixed-rule) model",
        "random-model": "predicted (fixed) order + random model",
        "fixed": "fixed expert rules",
        "explore": "explore (AgenticIR-style trials + experience)",
        "embedded": "embedded (learned)",
        "embedded-verify": "embedded, its 3 best plans run on the image and judged by the "
        "plan critic",
    }
    parts = []
    for label in result.config.planners:
        what = names.get(label, label)
        if label in result.skipped:
            parts.append(f"{label} ({what}): {result.skipped[label]}")
        else:
            ran = result.resolved.get(label, label)
            opts = result.resolved_options.get(label, {})
            how = f", planner `{ran}`" if ran != label else ""
            how += "".join(f" {k}={v}" for k, v in opts.items())
            parts.append(f"{label} ({what}{how})")
    return "; ".join(parts)


def _fair_rows(
    recs: list[dict[str, Any]], planners: Sequence[str], label: str, oracle: list[dict[str, Any]]
) -> list[list[str]]:
    by = defaultdict(list)
    for r in recs:
        by[r["candidate"]].append(r)

    def metric_cells(ms: list[dict[str, float]]) -> list[str]:
        return [
            fmt(_mean([m.get("psnr", math.nan) for m in ms])),
            fmt(_mean([m.get("ssim", math.nan) for m in ms]), 3),
            fmt(_mean([m.get("ms_ssim", math.nan) for m in ms]), 3),
            fmt(_mean([m.get("haarpsi", math.nan) for m in ms]), 3),
            fmt(_mean([m.get("gmsd", math.nan) for m in ms]), 4),
        ]

    rows = []
    for cand in [INPUT, *planners]:
        cs = by.get(cand, [])
        if not cs:
            continue
        cells = [label, cand, *metric_cells([c["metrics"] for c in cs])]
        cells.append(fmt(_mean([c["balanced"] for c in cs])))
        if cand == INPUT:
            rows.append(cells + ["", "", "", ""])
            continue
        rows.append(
            cells
            + [
                _pct_cell(cs),
                fmt(_mean([c.get("output_pct", math.nan) for c in cs]), 1),
                fmt_seconds(_mean([c["seconds"] for c in cs])),
                fmt(_mean([c.get("calls", c["steps"] + c["trials"]) for c in cs]), 1),
            ]
        )
    if oracle:
        rows.append(
            [label, "*oracle best*", *metric_cells([o["metrics"] for o in oracle]), ""]
            + ["0.0", "", fmt_seconds(_mean([o["seconds"] for o in oracle])), ""]
        )
    return rows


def rank_matrix(result: AgentResult) -> str:
    cfg = result.config
    planners = [p for p in cfg.planners if p not in result.skipped]
    plans = [r for r in result.plans if r["objective"] == cfg.objective]
    rows = []
    for mixture in cfg.mixtures:
        cells: list[str] = []
        keys: list[float] = []
        for p in planners:
            cs = [r for r in result.records if r["mixture"] == mixture and r["candidate"] == p]
            ps = [r["pct"] for r in plans if r["mixture"] == mixture and r["candidate"] == p]
            if not cs:
                cells.append("–")
                keys.append(math.nan)
                continue
            out = _mean([c.get("output_pct", math.nan) for c in cs])
            plan = _mean(ps)
            keys.append(plan if plans else out)
            cells.append(
                f"{fmt(plan, 1)} · {fmt(out, 1)}" if plans else f"{_pct_cell(cs)} · {fmt(out, 1)}"
            )
        finite = [k for k in keys if math.isfinite(k)]
        if finite:
            lo = min(finite)
            cells = [f"**{c}**" if k == lo else c for c, k in zip(cells, keys, strict=True)]
        rows.append([mixture, mixture_group(mixture), *cells])
    return md_table(["mixture", "group", *planners], rows, "ll" + "r" * len(planners))


def matrix_note(result: AgentResult) -> str:
    if result.plans:
        return (
            "Cell: planned-pipeline rank % (planning only, true degradations) · the whole "
            "agent's output rank %; lower is better; **bold**: the lowest planned-pipeline "
            "rank of the row."
        )
    return MATRIX_NOTE


def switch_text(result: AgentResult) -> str:
    cfg = result.config
    objs = [cfg.objective, *[o for o in cfg.switch_objectives if o != cfg.objective]]
    n_img = len({(r["mixture"], r["image"]) for r in result.switch})
    n_mix = len({r["mixture"] for r in result.switch})
    return (
        f"RestoreAgent Table 3 effect: the same images ({n_img}: the first "
        f"{min(cfg.switch_n, cfg.n)} image(s) of each of {n_mix} mixtures) "
        f"restored with `--objective` set to each of {', '.join(objs)}. The objective reaches "
        "the planners through `PlanRequest.objective`: `explore` and the `openai` prompt read "
        "the experience statistics of that objective, the oracle ranks by it, `fixed` ignores it "
        "(a control). *oracle best*: the best pipeline under each objective, from the main "
        "run's oracle (every metric was computed for every pipeline). A planner follows the "
        "switch when its PSNR rises under `psnr` and its MS-SSIM / HaarPSI / GMSD improve "
        "under `perceptual`."
    )


def switch_table(result: AgentResult) -> str:
    cfg = result.config
    objs = [cfg.objective, *[o for o in cfg.switch_objectives if o != cfg.objective]]
    keys = {(r["mixture"], r["image"]) for r in result.switch}
    planners = [p for p in cfg.switch_planners if any(r["candidate"] == p for r in result.switch)]
    rows = []
    for obj in objs:
        for p in planners:
            ms = [
                r["metrics"] for r in result.switch if r["objective"] == obj and r["candidate"] == p
            ]
            if ms:
                rows.append([obj, p, *_metric_means(ms), str(len(ms))])
        best = [
            o["best_by"][obj]["metrics"]
            for o in result.oracle
            if (o["mixture"], o["image"]) in keys and obj in o.get("best_by", {})
        ]
        if best:
            rows.append([obj, "*oracle best*", *_metric_means(best), str(len(best))])
    return md_table(
        ["objective", "planner", "PSNR", "SSIM", "MS-SSIM", "HaarPSI", "GMSD ↓", "images"],
        rows,
        "ll" + "r" * 6,
    )


def _metric_means(ms: list[dict[str, float]]) -> list[str]:
    return [
        fmt(_mean([m.get("psnr", math.nan) for m in ms])),
        fmt(_mean([m.get("ssim", math.nan) for m in ms]), 3),
        fmt(_mean([m.get("ms_ssim", math.nan) for m in ms]), 3),
        fmt(_mean([m.get("haarpsi", math.nan) for m in ms]), 3),
        fmt(_mean([m.get("gmsd", math.nan) for m in ms]), 4),
    ]


def oracle_line(result: AgentResult) -> str:
    cfg, orc = result.config, result.oracle
    if not cfg.oracle:
        return "- oracle: not run (--no-oracle)"
    sampled = sum(1 for o in orc if o["pipelines"] < o["total"])
    complete = (
        "complete on every image"
        if not sampled
        else f"a seeded sample of {cfg.oracle_cap} on {sampled} of {len(orc)} images"
    )
    return (
        f"- oracle: every pipeline over each mixture's true tasks (all orders × all tools of "
        f"each task, up to {cfg.oracle_cap} per image: {complete}); "
        f"{sum(o['pipelines'] for o in orc)} pipelines scored in "
        f"{sum(o['seconds'] for o in orc) / 60:.1f} min"
    )


AGENT_SETUP = """\
Each row: means over the mixture's images. PSNR (dB) and SSIM against the clean crop.
*balanced*: `objective_scores` ({objective}) over the candidate set {{input, each planner's
output}} of each image, i.e. the sum of per-metric z-scores within that set (higher is better;
the set sums to 0). *beats input*: images whose balanced score is above the input's.
*s / image*: the agent's wall time (`RunResult.seconds`: perception, planning, execution,
reflection, rescheduling). *steps*: tool calls the agent executed (every attempt);
*trials*: extra tool calls the explore planner ran on crops while planning; *rollbacks*:
steps rolled back or failed. *pipeline rank %*: the percentage of the enumerated pipelines
that score strictly better than the planner's executed pipeline (its accepted tools in
order; 0 = the best one; lower is better), averaged over the images where that pipeline is
one of the enumerated ones -- (k/n) says on how many. *output rank %*: the percentage of
enumerated pipelines whose final image scores strictly better than the planner's actual
output, scored together with them (defined for every image). *oracle best*: the best
enumerated pipeline per image (its steps and the oracle's time per image)."""


def summary_text(result: AgentResult) -> str:
    recs = result.records
    parts = []
    for planner in result.config.planners:
        cs = [r for r in recs if r["candidate"] == planner]
        if not cs:
            continue
        inp = {(r["mixture"], r["image"]): r for r in recs if r["candidate"] == INPUT}
        dp = _mean(
            [c["metrics"]["psnr"] - inp[(c["mixture"], c["image"])]["metrics"]["psnr"] for c in cs]
        )
        worse = sum(1 for c in cs if not c["beats_input"])
        parts.append(
            f"{planner} {fmt(dp, signed=True)} dB PSNR over the input on average, balanced "
            f"score not above the input's on {worse} of {len(cs)} images"
        )
    text = "Overall: " + "; ".join(parts) + "."
    if result.oracle:
        gap = _mean(
            [
                o["metrics"].get("psnr", math.nan)
                - next(
                    r["metrics"]["psnr"]
                    for r in recs
                    if r["candidate"] == INPUT
                    and r["mixture"] == o["mixture"]
                    and r["image"] == o["image"]
                )
                for o in result.oracle
            ]
        )
        text += f" The oracle's best pipeline gains {fmt(gap, signed=True)} dB on average."
    return text


def perception_table(result: AgentResult) -> str:
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION as P

    rows = []
    for mixture in result.config.mixtures:
        ps = [p for p in result.detections if p["mixture"] == mixture]
        true_types: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        extra: Counter[str] = Counter()
        for p in ps:
            truth = {P[t] for t in p["true"]}
            det = set(p["detected"])
            for t in truth:
                true_types[t] += 1
                hits[t] += t in det
            for t in det - truth:
                extra[t] += 1
        detected = ", ".join(f"{t} {hits[t]}/{true_types[t]}" for t in true_types)
        wrong = ", ".join(f"{t} {k}" for t, k in sorted(extra.items())) or "none"
        exact = sum(1 for p in ps if set(p["detected"]) == {P[t] for t in p["true"]})
        rows.append([mixture, detected, wrong, f"{exact}/{len(ps)}"])
    return md_table(
        ["mixture", "true types detected (images)", "false detections", "exact set"], rows, "llll"
    )


def perception_text(result: AgentResult) -> str:
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION as P

    ps = result.detections
    n_true = sum(len(set(p["true"])) for p in ps)
    n_hit = sum(len({P[t] for t in p["true"]} & set(p["detected"])) for p in ps)
    n_extra = sum(len(set(p["detected"]) - {P[t] for t in p["true"]}) for p in ps)
    return (
        f"What the agent's perception step reported on the degraded inputs (the same for every "
        f"planner): {n_hit} of {n_true} true degradations detected, {n_extra} false detections. "
        "Planners only plan for what perception reports, so a missed degradation is a task no "
        "planner attempts."
    )


def na_text(result: AgentResult) -> str:
    causes: dict[str, Counter[str]] = defaultdict(Counter)
    images: Counter[str] = Counter()
    for r in result.records:
        if r["candidate"] != INPUT and r.get("why_na"):
            images[r["candidate"]] += 1
            for cause in r["why_na"].split("; "):
                causes[r["candidate"]][cause] += 1
    if not images:
        return "Every executed pipeline was one of the enumerated ones."
    parts = []
    for planner in result.config.planners:
        if images.get(planner):
            items = ", ".join(f"{why} ×{k}" for why, k in causes[planner].most_common())
            parts.append(f"- {planner} ({images[planner]} images): {items}")
    return (
        "The enumeration holds the pipelines that run each TRUE task exactly once, so an "
        "executed pipeline that misses a task, adds one or repeats one has no rank there (its "
        "*output rank %* still places its image among them). Causes, counted per task: *not "
        "perceived* (perception did not report it on the input), *rolled back* (attempted, "
        "reflection never accepted it), *dropped after re-perception* (reported on the input, "
        "but perception, re-run after an accepted step, no longer reported it), *extra* (a "
        "task the mixture does not need).\n\n" + "\n".join(parts)
    )
