"""The exploring planner, AgenticIR-style: try the candidate next steps, keep the best one.

For every needed task as the possible next step, and every (non-forbidden) model of that task,
the tool is run on the current image (``request.load_image()``; a centre crop of at most
``crop`` px for speed) and the result is scored by

    score = gain in no-reference quality (``metrics.quality_score``)
          + drop in perception load (``default_perceiver().perceive(img).load()``)
          + experience_weight * prior(task)

where the two gains are each divided by their largest magnitude over the candidates (so
neither's scale dominates) and ``prior(task)`` in [-1, 1] comes from the optional
``experience`` (order statistics; see :func:`parse_experience`). The plan's first step is the
best candidate; the remaining tasks follow the fixed order with the fixed model choice.

At most ``max_trials`` tool calls per planning round: candidates are tried round-robin by
rank (every task's preferred model first, then every task's second...), tasks ordered by the
experience prior and then the fixed order. What won, for which task and level, is appended to
``self.experience_log``.

``experience="default"`` (what ``get_planner("explore")`` passes) loads the statistics distilled
from the pipeline-search data (``restoregraph/prompts/experience.json``,
:mod:`restoregraph.planners.experience`) for the run's objective: they give the order prior,
rank each task's models (so the statistically best model is tried first), and order and equip
the rest of the plan (tasks by pairwise wins, each with its best model). An
:class:`~restoregraph.planners.experience.Experience` object works the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from restoregraph.core.errors import PlanError, RestoreGraphError
from restoregraph.core.state import PlanStep
from restoregraph.core.tasks import TASKS
from restoregraph.planners._common import allowed_tools, needed_tasks
from restoregraph.planners.base import Plan, PlanRequest
from restoregraph.planners.experience import Experience, load_experience
from restoregraph.planners.fixed import fixed_steps, rank_tools, task_order
from restoregraph.tools.registry import ToolSpec
from restoregraph.tools.run import run_tool

QualityFn = Callable[[np.ndarray], float]
LoadFn = Callable[[np.ndarray], float]

_PAIR_RE = re.compile(
    r"\b([a-z]+)\s*(?:>|before|->)\s*([a-z]+)\b\s*[:=]?\s*([01](?:\.\d+)?|\.\d+)?", re.IGNORECASE
)
_FIRST_RE = re.compile(r"\bfirst\s*[:=]?\s*([a-z]+)\s*[:=]?\s*(-?\d*\.?\d+)?", re.IGNORECASE)


def parse_experience(experience: str | Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """Order statistics -> ``before[a][b]`` = how often doing ``a`` before ``b`` went better (0..1).

    Accepted forms (unknown tasks and malformed entries are ignored):

    * a dict ``{"before": {"dejpeg": {"denoise": 0.8}}}`` (or that inner mapping directly);
    * a dict ``{"pairs": [["dejpeg", "denoise", 0.8], ...]}``;
    * a dict ``{"first": {"denoise": 0.6}}``: how often a task was best as the first step
      (turned into ``before[task][*]``);
    * text, one statement per line: ``dejpeg before denoise: 0.8``, ``dejpeg > denoise 0.8``
      (no number = 1.0), ``first: denoise 0.6``.
    """
    before: dict[str, dict[str, float]] = {}

    def add(a: object, b: object, p: object) -> None:
        try:
            value = float(p)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        if a in TASKS and b in TASKS and a != b and math.isfinite(value):
            before.setdefault(str(a), {})[str(b)] = min(1.0, max(0.0, value))

    def add_first(task: object, p: object) -> None:
        for other in TASKS:
            add(task, other, p)

    if experience is None:
        return before
    if isinstance(experience, str):
        for line in experience.splitlines():
            m = _FIRST_RE.search(line)
            if m:
                add_first(m.group(1).lower(), m.group(2) or 1.0)
                continue
            m = _PAIR_RE.search(line)
            if m:
                add(m.group(1).lower(), m.group(2).lower(), m.group(3) or 1.0)
        return before
    if not isinstance(experience, Mapping):
        return before
    nested = experience.get("before", None)
    if nested is None and all(isinstance(v, Mapping) for v in experience.values()):
        nested = {k: v for k, v in experience.items() if k in TASKS}
    if isinstance(nested, Mapping):
        for a, row in nested.items():
            if isinstance(row, Mapping):
                for b, p in row.items():
                    add(a, b, p)
    pairs = experience.get("pairs", ())
    if isinstance(pairs, list | tuple):
        for item in pairs:
            if isinstance(item, list | tuple) and len(item) == 3:
                add(*item)
    first = experience.get("first", {})
    if isinstance(first, Mapping):
        for task, p in first.items():
            add_first(task, p)
    return before


def order_prior(before: Mapping[str, Mapping[str, float]], task: str, others: list[str]) -> float:
    """How much the experience favours ``task`` as the next step among ``others``, in [-1, 1]."""
    votes = []
    for other in others:
        if other == task:
            continue
        ab = before.get(task, {}).get(other)
        ba = before.get(other, {}).get(task)
        if ab is not None and ba is not None:
            votes.append(ab - ba)
        elif ab is not None:
            votes.append(2 * ab - 1)
        elif ba is not None:
            votes.append(1 - 2 * ba)
    return float(np.mean(votes)) if votes else 0.0


@dataclass
class Trial:
    task: str
    tool: str
    quality_gain: float = math.nan
    load_drop: float = math.nan
    prior: float = 0.0
    score: float = -math.inf
    error: str = ""


@dataclass
class _Scorers:
    """The trial scorers (None: unavailable) and their values on the image before the trial."""

    quality: QualityFn | None
    q0: float
    load: LoadFn | None
    l0: float
    unavailable: list[str]  # "quality: why" / "perception: why"


def _centre_crop(image: np.ndarray, side: int | None) -> np.ndarray:
    if not side:
        return image
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[top : top + side, left : left + side]


def _default_quality() -> QualityFn:
    from restoregraph import metrics

    return metrics.quality_score  # type: ignore[no-any-return]


def _default_load() -> LoadFn:
    from restoregraph.perception import default_perceiver

    perceiver = default_perceiver()
    return lambda img: float(perceiver.perceive(img).load())


class ExplorePlanner:
    """Try every candidate next step on the current image; keep the best (AgenticIR-style)."""

    name = "explore"

    def __init__(
        self,
        max_trials: int = 12,
        experience: str | Mapping[str, Any] | Experience | None = None,
        experience_weight: float = 0.5,
        crop: int | None = 512,
        quality_fn: QualityFn | None = None,
        load_fn: LoadFn | None = None,
    ) -> None:
        if max_trials < 1:
            raise PlanError(f"max_trials must be >= 1, got {max_trials}")
        self.max_trials = int(max_trials)
        self.experience = experience
        self.stats: Experience | None = None
        if isinstance(experience, Experience):
            self.stats = experience
        elif isinstance(experience, str) and experience.strip() == "default":
            self.stats = load_experience()
        self.before = (
            {} if isinstance(experience, Experience) or self.stats else parse_experience(experience)
        )
        self.experience_weight = float(experience_weight)
        self.crop = crop
        self._quality_fn = quality_fn
        self._load_fn = load_fn
        self.experience_log: list[dict[str, Any]] = []
        self.last_trials: list[Trial] = []

    @property
    def quality_fn(self) -> QualityFn:
        if self._quality_fn is None:
            self._quality_fn = _default_quality()
        return self._quality_fn

    @property
    def load_fn(self) -> LoadFn:
        if self._load_fn is None:
            self._load_fn = _default_load()
        return self._load_fn

    def _schedule(
        self, request: PlanRequest, needed: dict[str, int], priors: dict[str, float]
    ) -> list[tuple[str, ToolSpec]]:
        """Candidates round-robin by rank, tasks by prior then fixed order; cut at max_trials."""
        fixed_rank = {t: i for i, t in enumerate(task_order(needed))}
        tasks = sorted(needed, key=lambda t: (-priors[t], fixed_rank[t]))
        ranked = {t: self._ranked(request, t, needed[t]) for t in tasks}
        out: list[tuple[str, ToolSpec]] = []
        depth = max((len(v) for v in ranked.values()), default=0)
        for k in range(depth):
            for t in tasks:
                if k < len(ranked[t]):
                    out.append((t, ranked[t][k]))
        return out[: self.max_trials]

    def _ranked(self, request: PlanRequest, task: str, level: int) -> list[ToolSpec]:
        """The task's allowed tools, best first: by the experience when there is one."""
        ranked = rank_tools(allowed_tools(request, task), task, level)
        if self.stats is None or self.stats.empty:
            return ranked
        by_id = {s.id: s for s in ranked}
        order = self.stats.rank_models(task, level, [s.id for s in ranked], request.objective)
        return [by_id[i] for i in order]

    def _rest(self, request: PlanRequest, needed: dict[str, int], first: str) -> list[PlanStep]:
        """The plan after the explored first step: fixed rules, or the experience's order and
        models when there is one."""
        if self.stats is None or self.stats.empty:
            return fixed_steps(request, needed, exclude=[first])
        tasks = self.stats.order([t for t in task_order(needed) if t != first], request.objective)
        steps = []
        for task in tasks:
            ranked = self._ranked(request, task, needed[task])
            if ranked:
                steps.append(PlanStep(task=task, tool=ranked[0].id))
        return steps

    def _scorers(self, image: np.ndarray) -> _Scorers:
        """The quality and load scorers with their values on ``image``. A missing scorer
        (perception weights, a metric package) is None, and leaves the other one to decide."""
        unavailable: list[str] = []
        quality: QualityFn | None = None
        load: LoadFn | None = None
        try:
            quality = self.quality_fn
            q0 = float(quality(image))
        except RestoreGraphError as exc:
            quality, q0 = None, 0.0
            unavailable.append(f"quality: {exc}")
        try:
            load = self.load_fn
            l0 = float(load(image))
        except RestoreGraphError as exc:
            load, l0 = None, 0.0
            unavailable.append(f"perception: {exc}")
        if quality is None and load is None:
            raise PlanError("explore: cannot score trials (" + "; ".join(unavailable) + ")")
        return _Scorers(quality, q0, load, l0, unavailable)

    def _trials(
        self,
        image: np.ndarray,
        schedule: list[tuple[str, ToolSpec]],
        priors: dict[str, float],
        scorers: _Scorers,
    ) -> list[Trial]:
        """Run every scheduled candidate on ``image``; a failing tool leaves its trial's error."""
        quality, q0, load, l0 = scorers.quality, scorers.q0, scorers.load, scorers.l0
        trials: list[Trial] = []
        for task, spec in schedule:
            trial = Trial(task=task, tool=spec.id, prior=priors[task])
            try:
                out = run_tool(spec, image)
                trial.quality_gain = float(quality(out)) - q0 if quality else 0.0
                trial.load_drop = l0 - float(load(out)) if load else 0.0
            except RestoreGraphError as exc:
                trial.error = str(exc)
            trials.append(trial)
        return trials

    def _best(self, ok: list[Trial], needed: dict[str, int]) -> Trial:
        """Score the successful trials (each gain over its largest magnitude, plus the weighted
        prior) and return the best (ties: the fixed order)."""
        q_scale = max(abs(t.quality_gain) for t in ok) or 1.0
        l_scale = max(abs(t.load_drop) for t in ok) or 1.0
        for t in ok:
            t.score = (
                t.quality_gain / q_scale + t.load_drop / l_scale + self.experience_weight * t.prior
            )
        fixed_rank = {t: i for i, t in enumerate(task_order(needed))}
        return max(ok, key=lambda t: (t.score, -fixed_rank[t.task]))

    def _log(
        self, request: PlanRequest, needed: dict[str, int], best: Trial, trials: list[Trial]
    ) -> None:
        """Keep the trials, and append what won to :attr:`experience_log`."""
        self.last_trials = trials
        self.experience_log.append(
            {
                "position": request.position,
                "perception": dict(request.perception),
                "task": best.task,
                "level": needed[best.task],
                "tool": best.tool,
                "score": best.score,
                "quality_gain": best.quality_gain,
                "load_drop": best.load_drop,
                "trials": [
                    {"task": t.task, "tool": t.tool, "score": t.score, "error": t.error}
                    for t in trials
                ],
            }
        )

    def plan(self, request: PlanRequest) -> Plan:
        if self.stats is not None and not self.stats.empty:
            self.before = parse_experience(self.stats.before(request.objective))
        needed = needed_tasks(request)
        if not needed:
            return Plan(steps=[], note="explore: nothing left to restore")
        if request.load_image is None:
            steps = fixed_steps(request, needed)
            return Plan(steps=steps, note="explore: no current image; used the fixed plan")
        others = list(needed)
        priors = {t: order_prior(self.before, t, others) for t in needed}
        schedule = self._schedule(request, needed, priors)
        if not schedule:
            return Plan(steps=[], note="explore: every tool of every needed task was rolled back")

        image = _centre_crop(request.load_image(), self.crop)
        scorers = self._scorers(image)
        trials = self._trials(image, schedule, priors, scorers)
        ok = [t for t in trials if math.isfinite(t.quality_gain) and math.isfinite(t.load_drop)]
        if not ok:
            steps = fixed_steps(request, needed)
            errors = "; ".join(t.error for t in trials if t.error)[:200]
            return Plan(steps=steps, note=f"explore: every trial failed ({errors}); fixed plan")
        best = self._best(ok, needed)
        self._log(request, needed, best, trials)
        rest = self._rest(request, needed, best.task)
        steps = [PlanStep(task=best.task, tool=best.tool), *rest]
        note = (
            f"explore: {len(trials)} trials; best next step {best.tool} "
            f"(quality {best.quality_gain + 0.0:+.3g}, load {0.0 - best.load_drop:+.3g})"
        )
        if scorers.unavailable:
            note += "; scored without " + "; ".join(u[:80] for u in scorers.unavailable)
        return Plan(steps=steps, note=note)

    def experience_summary(self) -> dict[str, dict[str, int]]:
        """``"task/level" -> {tool: wins}`` over everything this planner has explored."""
        out: dict[str, dict[str, int]] = {}
        for e in self.experience_log:
            row = out.setdefault(f"{e['task']}/{e['level']}", {})
            row[e["tool"]] = row.get(e["tool"], 0) + 1
        return out


__all__ = ["ExplorePlanner", "Trial", "order_prior", "parse_experience"]
