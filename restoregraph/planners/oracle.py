"""The oracle planner (evaluation only): the best pipeline found with the clean reference.

It enumerates every pipeline -- every order of the needed tasks x every (non-forbidden) model
per task -- runs them as a prefix tree so each intermediate image is computed once, scores the
final images against ``request.reference`` with the run's objective
(``restoregraph.metrics.objective_scores``) and returns the best. When there are more than
``max_pipelines`` pipelines, a seeded uniform sample of them is evaluated, always including the
fixed planner's pipeline.

For the benchmark: :func:`score_pipelines` returns ALL evaluated pipelines with their scores and
ranks, and :func:`rank_percentile` says what percentage of them scored strictly better than a
chosen pipeline (0 for the best).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from restoregraph.core.errors import PlanError, RestoreGraphError
from restoregraph.core.state import PlanStep
from restoregraph.planners._common import allowed_tools, needed_tasks
from restoregraph.planners.base import Plan, PlanRequest
from restoregraph.planners.fixed import rank_tools, task_order
from restoregraph.planners.tree import (
    Pipeline,
    TreeStats,
    count_prefixes,
    enumerate_pipelines,
    rank_scores,
    walk_tree,
)
from restoregraph.tools.registry import ToolRegistry

# measure(final_image, reference) -> metric dict; combine(metric dicts, objective) -> scores
MeasureFn = Callable[[np.ndarray, np.ndarray, str], dict[str, float]]
CombineFn = Callable[[list[dict[str, float]], str], list[float]]


@dataclass(frozen=True)
class ScoredPipeline:
    tools: Pipeline
    score: float  # objective score (higher is better); NaN when the pipeline failed
    rank: int  # 1 = best; ties share a rank; failed pipelines rank last
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and math.isfinite(self.score)


def candidate_models(request: PlanRequest) -> dict[str, list[str]]:
    """Needed task -> its non-forbidden tool ids (fixed-rule order), tasks in the fixed order."""
    needed = needed_tasks(request)
    out: dict[str, list[str]] = {}
    for task in task_order(needed):
        ranked = rank_tools(allowed_tools(request, task), task, needed[task])
        if ranked:
            out[task] = [s.id for s in ranked]
    return out


# -- evaluation as a prefix tree --------------------------------------------------------------
def run_pipelines(
    image: np.ndarray,
    pipelines: Sequence[Pipeline],
    toolbox: ToolRegistry,
    on_final: Callable[[Pipeline, np.ndarray | None, str], None],
    stats: TreeStats | None = None,
) -> TreeStats:
    """Run every pipeline, computing each distinct prefix once (:func:`walk_tree`).

    ``on_final(pipeline, image, error)`` gets each final image (``None`` and the error when a
    tool on its path failed).
    """
    return walk_tree(image, pipelines, toolbox, on_final=on_final, stats=stats)


# -- scoring ----------------------------------------------------------------------------------
def default_measure(final: np.ndarray, reference: np.ndarray, objective: str) -> dict[str, float]:
    from restoregraph import metrics

    if objective not in metrics.OBJECTIVES:
        raise PlanError(
            f"unknown objective {objective!r}; choose one of {', '.join(metrics.OBJECTIVES)}"
        )
    names = metrics.OBJECTIVES[objective]
    return dict(metrics.compute(names, metrics.match_size(final, reference), reference))


def default_combine(measured: list[dict[str, float]], objective: str) -> list[float]:
    from restoregraph import metrics

    return [float(s) for s in metrics.objective_scores(measured, objective)]


_rank = rank_scores


def score_pipelines(
    image: np.ndarray,
    reference: np.ndarray,
    toolbox: ToolRegistry,
    pipelines: Sequence[Pipeline],
    objective: str = "balanced",
    measure: MeasureFn | None = None,
    combine: CombineFn | None = None,
    stats: TreeStats | None = None,
) -> list[ScoredPipeline]:
    """Run and score ``pipelines`` against ``reference``; ALL of them, best first, with ranks."""
    measure = measure or default_measure
    combine = combine or default_combine
    finals: list[tuple[Pipeline, dict[str, float], str]] = []

    def on_final(p: Pipeline, out: np.ndarray | None, error: str) -> None:
        if out is None:
            finals.append((p, {}, error))
            return
        try:
            finals.append((p, measure(out, reference, objective), ""))
        except RestoreGraphError as exc:
            finals.append((p, {}, f"scoring failed: {exc}"))

    run_pipelines(image, pipelines, toolbox, on_final, stats)
    ok = [i for i, f in enumerate(finals) if not f[2]]
    scores = [math.nan] * len(finals)
    if ok:
        for i, s in zip(ok, combine([finals[i][1] for i in ok], objective), strict=True):
            scores[i] = float(s) if math.isfinite(float(s)) else math.nan
    ranks = _rank(scores)
    scored = [
        ScoredPipeline(tools=p, score=s, rank=r, metrics=m, error=e)
        for (p, m, e), s, r in zip(finals, scores, ranks, strict=True)
    ]
    return sorted(scored, key=lambda sp: (sp.rank, sp.tools))


def rank_percentile(chosen: Sequence[str], scored: Sequence[ScoredPipeline]) -> float:
    """Percentage of the scored pipelines scoring strictly better than ``chosen`` (0 = best).

    ``chosen`` is a sequence of tool ids; it must be among ``scored`` (pass it to
    :func:`score_pipelines` / :func:`score_all` as an extra pipeline if needed). A failed
    chosen pipeline scores below every successful one.
    """
    key = tuple(chosen)
    match = next((sp for sp in scored if sp.tools == key), None)
    if match is None:
        raise PlanError(
            f"pipeline {' -> '.join(key) or '(empty)'} is not among the {len(scored)} scored "
            "pipelines; score it too (extra=[...])"
        )
    if match.ok:
        better = sum(1 for sp in scored if sp.ok and sp.score > match.score)
    else:
        better = sum(1 for sp in scored if sp.ok)
    return 100.0 * better / len(scored)


def score_all(
    request: PlanRequest,
    max_pipelines: int = 500,
    extra: Sequence[Sequence[str]] = (),
    measure: MeasureFn | None = None,
    combine: CombineFn | None = None,
    stats: TreeStats | None = None,
) -> list[ScoredPipeline]:
    """Every pipeline for ``request`` (plus ``extra`` ones) with scores and ranks, best first."""
    if request.reference is None:
        raise PlanError(
            "the oracle planner needs the clean reference image (request.reference; "
            "--reference on the command line); it is for evaluation only"
        )
    if request.load_image is None:
        raise PlanError("the oracle planner needs the current image (request.load_image)")
    pipelines = enumerate_pipelines(candidate_models(request), max_pipelines, request.seed)
    for p in extra:
        t = tuple(p)
        if t not in pipelines:
            pipelines.append(t)
    return score_pipelines(
        request.load_image(),
        request.reference,
        request.toolbox,
        pipelines,
        request.objective,
        measure,
        combine,
        stats,
    )


class OraclePlanner:
    """Exhaustive search with the reference image (evaluation only)."""

    name = "oracle"

    def __init__(
        self,
        max_pipelines: int = 500,
        measure: MeasureFn | None = None,
        combine: CombineFn | None = None,
    ) -> None:
        if max_pipelines < 1:
            raise PlanError(f"max_pipelines must be >= 1, got {max_pipelines}")
        self.max_pipelines = max_pipelines
        self.measure = measure
        self.combine = combine
        self.last_scored: list[ScoredPipeline] = []
        self.last_stats = TreeStats()

    def plan(self, request: PlanRequest) -> Plan:
        stats = TreeStats()
        scored = score_all(
            request, self.max_pipelines, measure=self.measure, combine=self.combine, stats=stats
        )
        self.last_scored, self.last_stats = scored, stats
        best = scored[0]
        if not best.tools:
            return Plan(steps=[], note="oracle: nothing to restore")
        if not best.ok:
            raise PlanError(f"oracle: every pipeline failed (e.g. {best.error})")
        steps = [PlanStep(task=request.toolbox.get(t).task, tool=t) for t in best.tools]
        note = (
            f"oracle: best of {len(scored)} pipelines ({stats.tool_calls} tool calls), "
            f"{request.objective} score {best.score:.4g}"
        )
        return Plan(steps=steps, note=note)


__all__ = [
    "OraclePlanner",
    "ScoredPipeline",
    "TreeStats",
    "candidate_models",
    "count_prefixes",
    "enumerate_pipelines",
    "rank_percentile",
    "run_pipelines",
    "score_all",
    "score_pipelines",
]
