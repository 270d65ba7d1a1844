"""Enumerate restoration pipelines and run them as a prefix tree (each prefix computed once).

A *pipeline* is a tuple of tool ids; its *prefixes* are the nodes of a tree whose root is the
input image. :func:`walk_tree` visits the pipelines in sorted order, so the ones sharing a prefix
are contiguous: every distinct prefix is run exactly once and only the current path's
intermediate images are held.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from restoregraph.core.errors import PlanError, RestoreGraphError
from restoregraph.tools.registry import ToolRegistry
from restoregraph.tools.run import run_tool

Pipeline = tuple[str, ...]
# on_node(prefix, image, error): image is None (and error says why) when a tool on the path failed
NodeFn = Callable[[Pipeline, np.ndarray | None, str], None]


@dataclass
class TreeStats:
    pipelines: int = 0
    tool_calls: int = 0  # tools actually run
    distinct_prefixes: int = 0  # nodes of the prefix tree (= tool calls when nothing failed)
    failed_prefixes: list[Pipeline] = field(default_factory=list)


def _unrank_permutation(index: int, items: Sequence[str]) -> list[str]:
    """The ``index``-th permutation of ``items`` in itertools.permutations order."""
    pool = list(items)
    out: list[str] = []
    for k in range(len(pool), 0, -1):
        f = math.factorial(k - 1)
        i, index = divmod(index, f)
        out.append(pool.pop(i))
    return out


def pipeline_total(models: Mapping[str, Sequence[str]]) -> int:
    """How many pipelines ``models`` (task -> tool ids) gives: (#tasks)! x prod(#models)."""
    sizes = [len(v) for v in models.values() if v]
    return math.factorial(len(sizes)) * math.prod(sizes)


def tree_size(models: Mapping[str, Sequence[str]]) -> int:
    """Tool calls of the full prefix tree over ``models`` (its non-root nodes)."""
    sizes = [len(v) for v in models.values() if v]
    total = 0
    # nodes at depth d: ordered choices of d distinct tasks x their models
    for d in range(1, len(sizes) + 1):
        total += _sum_ordered_products(sizes, d)
    return total


def _sum_ordered_products(sizes: Sequence[int], d: int) -> int:
    from itertools import combinations

    return math.factorial(d) * sum(math.prod(c) for c in combinations(sizes, d))


def enumerate_pipelines(
    models: Mapping[str, Sequence[str]],
    max_pipelines: int = 500,
    seed: int = 0,
) -> list[Pipeline]:
    """Every order of the tasks in ``models`` x every model per task, as tool-id tuples.

    ``models`` maps task -> candidate tool ids, best first; the first pipeline is the tasks in
    ``models``' order with each task's first model. Tasks without models are left out. When
    there are more than ``max_pipelines`` pipelines, the first one plus a seeded uniform sample
    of the rest is returned (in enumeration order).
    """
    if max_pipelines < 1:
        raise PlanError(f"max_pipelines must be >= 1, got {max_pipelines}")
    tasks = [t for t in models if models[t]]
    if not tasks:
        return [()]
    radix = [len(models[t]) for t in tasks]
    n_models = math.prod(radix)
    total = math.factorial(len(tasks)) * n_models
    if total <= max_pipelines:
        indices: Sequence[int] = range(total)
    else:
        rng = _random.Random(seed)
        indices = [0, *sorted(rng.sample(range(1, total), max_pipelines - 1))]
    pos = {t: i for i, t in enumerate(tasks)}
    out: list[Pipeline] = []
    for index in indices:
        perm_index, combo = divmod(index, n_models)
        order = _unrank_permutation(perm_index, tasks)
        # mixed-radix digits over the tasks in this order, the last task varying fastest
        digits = []
        for t in reversed(order):
            combo, d = divmod(combo, radix[pos[t]])
            digits.append(d)
        digits.reverse()
        out.append(tuple(models[t][d] for t, d in zip(order, digits, strict=True)))
    return out


def count_prefixes(pipelines: Sequence[Pipeline]) -> int:
    """The number of distinct non-empty prefixes (= nodes of the prefix tree)."""
    return len({p[:i] for p in pipelines for i in range(1, len(p) + 1)})


def walk_tree(
    image: np.ndarray,
    pipelines: Sequence[Pipeline],
    toolbox: ToolRegistry,
    on_final: NodeFn | None = None,
    on_node: NodeFn | None = None,
    stats: TreeStats | None = None,
) -> TreeStats:
    """Run every pipeline, computing each distinct prefix once.

    ``on_node(prefix, image, error)`` is called once per tree node, the root ``()`` first, each
    node before its children; ``on_final(pipeline, image, error)`` once per pipeline (sorted
    order). ``image`` is None and ``error`` says why when a tool on the path failed; nothing
    below a failed tool is run.
    """
    stats = stats if stats is not None else TreeStats()
    unique = sorted(set(pipelines))
    stats.pipelines += len(pipelines)
    cache: dict[Pipeline, np.ndarray | str] = {(): image}
    if on_node is not None:
        on_node((), image, "")
    path: list[Pipeline] = [()]  # the cached prefixes of the current path
    for pipeline in unique:
        while path and pipeline[: len(path[-1])] != path[-1]:
            cache.pop(path.pop(), None)
        for i in range(len(path[-1]) + 1, len(pipeline) + 1):
            prefix = pipeline[:i]
            parent = cache[pipeline[: i - 1]]
            stats.distinct_prefixes += 1
            if isinstance(parent, str):
                cache[prefix] = parent  # an earlier tool failed: propagate, run nothing
            else:
                stats.tool_calls += 1
                try:
                    cache[prefix] = run_tool(toolbox.get(prefix[-1]), parent)
                except RestoreGraphError as exc:
                    cache[prefix] = str(exc) or type(exc).__name__
                    stats.failed_prefixes.append(prefix)
            if on_node is not None:
                node = cache[prefix]
                on_node(
                    prefix,
                    None if isinstance(node, str) else node,
                    node if isinstance(node, str) else "",
                )
            path.append(prefix)
        if on_final is not None:
            final = cache[pipeline]
            if isinstance(final, str):
                on_final(pipeline, None, final)
            else:
                on_final(pipeline, final, "")
    return stats


def rank_scores(scores: Sequence[float]) -> list[int]:
    """Competition ranks (1 = best, ties share), NaN last."""
    valid = sorted((s for s in scores if math.isfinite(s)), reverse=True)
    first: dict[float, int] = {}
    for i, s in enumerate(valid, 1):
        first.setdefault(s, i)
    worst = len(valid) + 1
    return [first[s] if math.isfinite(s) else worst for s in scores]


def percentile_of_rank(rank: int, n: int) -> float:
    """(rank - 1) / (n - 1) x 100: 0 for the best of ``n``, 100 for the last (0 when n == 1)."""
    return 0.0 if n <= 1 else 100.0 * (rank - 1) / (n - 1)


__all__ = [
    "NodeFn",
    "Pipeline",
    "TreeStats",
    "count_prefixes",
    "enumerate_pipelines",
    "percentile_of_rank",
    "pipeline_total",
    "rank_scores",
    "tree_size",
    "walk_tree",
]
