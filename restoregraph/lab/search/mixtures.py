"""Random degradation mixtures for the pipeline-search data (1-4 degradations per image).

Half of the mixtures are RestoreAgent's seven benchmark mixtures (noise+JPEG, low light+noise,
motion blur+noise+JPEG, rain+noise+JPEG, haze+noise+JPEG, haze+rain+noise+JPEG, motion
blur+rain+noise+JPEG) at random levels, so the planner sees the mixtures it is judged on; the
other half are random: 1-4 types (at most one per restoration task, so every needed task is run
once), random levels 1-3, in the physical order (scene -> exposure -> optics -> resolution ->
sensor -> codec) or, one time in three, shuffled (JPEG then still stays last most of the time).
Only types whose task has a tool in the search toolbox are drawn. The ``bench`` set draws only
the benchmark's kinds (RestoreAgent's seven and AgenticIR's groups A/B/C, uniformly) at random
levels and orders: data aimed at the kinds the fair benchmark judges (its test images are never
used; the crops still come from the training folders). A list of kinds (``defocus+haze,
defocus+jpeg``) draws only those, the same way: data aimed at mixtures a planner gets wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from restoregraph.core.tasks import DEGRADATION_TYPES, TASK_FOR_DEGRADATION

Mixture = list[tuple[str, int]]

BENCH_MIXTURES: tuple[tuple[str, ...], ...] = (
    ("noise", "jpeg"),
    ("low_light", "noise"),
    ("motion_blur", "noise", "jpeg"),
    ("rain", "noise", "jpeg"),
    ("haze", "noise", "jpeg"),
    ("haze", "rain", "noise", "jpeg"),
    ("motion_blur", "rain", "noise", "jpeg"),
)
# AgenticIR's test groups (Zhu et al. 2024; the combinations and groups as in the AgenticIR
# code's dataset/degradations.txt and eval/compare_methods.py), in its order of application,
# with its names mapped onto ours: dark -> low_light, defocus blur -> defocus,
# jpeg compression artifact -> jpeg, low resolution -> low_resolution.
AGENTICIR_GROUPS: dict[str, tuple[str, ...]] = {
    "A": (
        "rain+haze",
        "motion_blur+low_resolution",
        "low_light+noise",
        "defocus+jpeg",
        "noise+jpeg",
        "rain+low_resolution",
        "motion_blur+low_light",
        "defocus+haze",
    ),
    "B": ("motion_blur+jpeg", "haze+noise", "defocus+low_resolution", "rain+low_light"),
    "C": (
        "haze+motion_blur+low_resolution",
        "rain+noise+low_resolution",
        "low_light+defocus+jpeg",
        "motion_blur+defocus+noise",
    ),
}
# Which mixtures ``data build --mixtures`` draws: ``default`` is half BENCH_MIXTURES, half
# random; ``bench`` draws only the benchmark's kinds (RestoreAgent's seven and AgenticIR's
# groups, uniformly; each at random levels, one time in three in a shuffled order); any other
# value is a comma-separated list of kinds (parse_mixture_list), drawn like ``bench``.
MIXTURE_SETS: tuple[str, ...] = ("default", "bench")
P_BENCH = 0.5
COUNT_PROBS: dict[int, float] = {1: 0.2, 2: 0.35, 3: 0.35, 4: 0.1}
P_SHUFFLED = 1 / 3
P_JPEG_LAST = 0.85

# physical order of acquisition (lower first); ties keep a random order. Drops on the lens come
# after the scene's weather and before the exposure (restoregraph.degrade.realistic's order).
PHYSICAL_RANK: dict[str, int] = {
    "haze": 0,
    "rain": 0,
    "snow": 0,
    "raindrop": 1,
    "low_light": 2,
    "blur": 3,
    "defocus": 3,
    "motion_blur": 3,
    "low_resolution": 4,
    "noise": 5,
    "poisson": 5,
    "jpeg": 6,
}


def _order(types: Sequence[str], rng: np.random.Generator, shuffle: bool) -> list[str]:
    if shuffle:
        order = [types[i] for i in rng.permutation(len(types))]
        if "jpeg" in order and rng.random() < P_JPEG_LAST:
            order.remove("jpeg")
            order.append("jpeg")
        return order
    jitter = rng.random(len(types))
    return [
        t for _, _, t in sorted(zip([PHYSICAL_RANK[t] for t in types], jitter, types, strict=True))
    ]


def benchmark_kinds() -> list[tuple[str, ...]]:
    """The benchmark's mixtures as type tuples: RestoreAgent's seven, then AgenticIR's groups
    (repeats dropped)."""
    agentic = [tuple(m.split("+")) for g in AGENTICIR_GROUPS.values() for m in g]
    return list(dict.fromkeys([*BENCH_MIXTURES, *agentic]))


def parse_mixture_list(spec: str) -> list[tuple[str, ...]]:
    """``"defocus+haze,defocus+jpeg"`` -> ``[("defocus", "haze"), ("defocus", "jpeg")]``: kinds of
    1-4 known degradation types, at most one per restoration task (ValueError otherwise)."""
    kinds: list[tuple[str, ...]] = []
    for part in (p.strip() for p in spec.split(",")):
        types = tuple(t.strip() for t in part.split("+") if t.strip())
        if not types:
            raise ValueError(f"empty mixture in {spec!r}")
        unknown = [t for t in types if t not in TASK_FOR_DEGRADATION]
        if unknown:
            raise ValueError(
                f"unknown degradation type(s) {', '.join(unknown)} in {part!r}; choose from "
                f"{', '.join(DEGRADATION_TYPES)}"
            )
        tasks = [TASK_FOR_DEGRADATION[t] for t in types]
        if len(set(tasks)) != len(tasks) or len(types) > 4:
            raise ValueError(f"{part!r}: 1-4 types, at most one per restoration task")
        kinds.append(types)
    return list(dict.fromkeys(kinds))


def check_mixtures(mixtures: str, tasks: Collection[str]) -> None:
    """ValueError unless ``mixtures`` is a mixture set or a list of kinds ``tasks`` can undo."""
    if mixtures in MIXTURE_SETS:
        return
    for kind in parse_mixture_list(mixtures):
        missing = [t for t in kind if TASK_FOR_DEGRADATION[t] not in tasks]
        if missing:
            raise ValueError(
                f"the search toolbox has no tool for {', '.join(missing)} ({'+'.join(kind)})"
            )


def sample_mixture(
    rng: np.random.Generator, tasks: Collection[str], mixtures: str = "default"
) -> Mixture:
    """A mixture ``[(degradation type, level), ...]`` in the order to apply, whose every type
    is undone by one of ``tasks`` (the tasks the search toolbox has tools for), drawn from the
    ``mixtures`` set (:data:`MIXTURE_SETS`, or a list of kinds: :func:`parse_mixture_list`)."""
    check_mixtures(mixtures, tasks)
    usable = [t for t in DEGRADATION_TYPES if TASK_FOR_DEGRADATION[t] in tasks]
    if not usable:
        raise ValueError("the search toolbox serves no degradation type")
    if mixtures == "default":
        pool = list(BENCH_MIXTURES)
    elif mixtures == "bench":
        pool = benchmark_kinds()
    else:
        pool = parse_mixture_list(mixtures)
    bench = [m for m in pool if all(TASK_FOR_DEGRADATION[t] in tasks for t in m)]
    if mixtures != "default" and not bench:
        raise ValueError("the search toolbox serves none of the benchmark's mixtures")
    if bench and (mixtures != "default" or rng.random() < P_BENCH):
        types = list(bench[int(rng.integers(len(bench)))])
        shuffle = rng.random() < P_SHUFFLED
    else:
        by_task: dict[str, list[str]] = {}
        for t in usable:
            by_task.setdefault(TASK_FOR_DEGRADATION[t], []).append(t)
        counts = [k for k in COUNT_PROBS if k <= len(by_task)]
        probs = np.array([COUNT_PROBS[k] for k in counts])
        k = counts[int(rng.choice(len(counts), p=probs / probs.sum()))]
        task_names = sorted(by_task)
        picked = [task_names[i] for i in sorted(rng.choice(len(task_names), k, replace=False))]
        types = [by_task[t][int(rng.integers(len(by_task[t])))] for t in picked]
        shuffle = rng.random() < P_SHUFFLED
    order = _order(types, rng, shuffle)
    return [(t, int(rng.integers(1, 4))) for t in order]


def mixture_tasks(mixture: Sequence[tuple[str, int]]) -> list[str]:
    """The tasks a mixture needs, in the order its degradations were applied (no repeats)."""
    return list(dict.fromkeys(TASK_FOR_DEGRADATION[t] for t, _ in mixture))


def mixture_kind(mixture: Sequence[tuple[str, int] | Sequence[object]]) -> str:
    """A mixture's kind for grouping results: its perception types joined in a canonical order
    (``noise+jpeg``), whatever order and levels they were applied in."""
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION, PERCEPTION_TYPES

    present = {PERCEPTION_TYPE_FOR_DEGRADATION[str(step[0])] for step in mixture}
    canon = (
        "haze",
        "rain",
        "raindrop",
        "snow",
        "low_light",
        "blur",
        "motion_blur",
        "low_resolution",
        "noise",
        "jpeg",
    )
    assert set(canon) == set(PERCEPTION_TYPES)
    return "+".join(t for t in canon if t in present)


def perception_levels(mixture: Sequence[tuple[str, int] | Sequence[object]]) -> dict[str, int]:
    """The true perception dict of a mixture: perception type -> level (worst when repeated)."""
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION

    out: dict[str, int] = {}
    for step in mixture:
        p = PERCEPTION_TYPE_FOR_DEGRADATION[str(step[0])]
        out[p] = max(out.get(p, 0), int(step[1]))  # type: ignore[call-overload]
    return out


__all__ = [
    "AGENTICIR_GROUPS",
    "BENCH_MIXTURES",
    "MIXTURE_SETS",
    "benchmark_kinds",
    "Mixture",
    "mixture_kind",
    "mixture_tasks",
    "perception_levels",
    "check_mixtures",
    "parse_mixture_list",
    "sample_mixture",
]
