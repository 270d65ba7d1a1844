"""The fixed expert planner: a fixed task order and a deterministic model-choice rule table.

Task order (``FIXED_ORDER``) -- undo the degradation chain in reverse of how a photo acquires it::

    dejpeg -> denoise -> deblur -> derain -> deraindrop -> desnow -> dehaze -> lowlight -> sr

* ``dejpeg`` first: compression is the last thing the camera / upload pipeline does, so its
  blocking and ringing sit on top of everything else and confuse every other tool (a denoiser
  treats 8x8 block edges as structure, a deblurrer sharpens them).
* ``denoise`` before ``deblur``: sensor noise is added after optical blur; deconvolution
  amplifies high frequencies, so any noise left in would be blown up.
* ``derain`` / ``deraindrop`` / ``desnow`` next: rain streaks, drops on the lens and snow flakes
  are occluding layers in front of the scene, closer to the lens than the haze; removing them
  before dehazing keeps the
  dark-channel prior from reading bright streaks as haze-free pixels.
* ``dehaze`` then ``lowlight``: haze is a property of the scene's light transport, low light
  of the exposure; dehazing first keeps the brightening curve from lifting the haze veil too.
  Brightening late also avoids amplifying the noise/blocking the earlier steps removed.
* ``sr`` last: upscaling multiplies every remaining artefact and makes every later tool
  slower (4x-16x the pixels), so the image is cleaned at its native size first.

Model choice (``choose_tool``), among the task's tools that are not forbidden at this position:

1. learned tools (``kind == "learned"``) that the rule table does not mention and whose
   ``severity`` includes the detected level, cheapest first -- the table was written for the
   built-in tools, so a newly added learned model meant for this level is preferred;
2. then the tools listed by the rule table ``RULES[(task, level)]``, in table order (the table
   overrides the generic rule for the tools it names);
3. then every other tool: matching ``severity`` first, learned before classical, cheapest first
   (ties by id, so the choice is deterministic).

Rule table (``RULES``; only ids present in the toolbox are considered):

==========  =====  ==========================================================
task        level  preference (first available wins)
==========  =====  ==========================================================
dejpeg      1-3    deblock
denoise     1      nlmeans, oidn, tv, bilateral
denoise     2-3    oidn, nlmeans, tv, bilateral
deblur      1      unsharp, wiener
deblur      2-3    wiener, unsharp
derain      1-3    median
deraindrop  1-3    nafnet (the only deraindrop tool)
desnow      1-3    median
dehaze      1-3    dcp
lowlight    1-3    gamma, zerodce, clahe
sr          1      lanczos.x2, bicubic.x2, bicubic.x4
sr          2-3    bicubic.x4, lanczos.x2, bicubic.x2
==========  =====  ==========================================================

Low-resolution levels 1/2/3 are downscale factors 2/3/4 (restoregraph.degrade), so level 1
gets a x2 upscaler and levels 2-3 a x4 one (for x3, overshooting to x4 loses less detail than
stopping at x2). The same table is in ``docs/planners.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from restoregraph.core.state import PlanStep
from restoregraph.planners._common import allowed_tools, needed_tasks, skipped_note
from restoregraph.planners.base import Plan, PlanRequest
from restoregraph.tools.registry import ToolSpec

FIXED_ORDER: tuple[str, ...] = (
    "dejpeg",
    "denoise",
    "deblur",
    "derain",
    "deraindrop",
    "desnow",
    "dehaze",
    "lowlight",
    "sr",
)


def _same(ids: Sequence[str], levels: Sequence[int]) -> dict[int, tuple[str, ...]]:
    return {lvl: tuple(ids) for lvl in levels}


# (task, level) -> tool ids in order of preference. A data table: edit here, not in code.
_TABLE: dict[str, dict[int, tuple[str, ...]]] = {
    "dejpeg": _same(["dejpeg.deblock"], (1, 2, 3)),
    "denoise": {
        1: ("denoise.nlmeans", "denoise.oidn", "denoise.tv", "denoise.bilateral"),
        **_same(["denoise.oidn", "denoise.nlmeans", "denoise.tv", "denoise.bilateral"], (2, 3)),
    },
    "deblur": {
        1: ("deblur.unsharp", "deblur.wiener"),
        **_same(["deblur.wiener", "deblur.unsharp"], (2, 3)),
    },
    "derain": _same(["derain.median"], (1, 2, 3)),
    "deraindrop": _same(["deraindrop.nafnet"], (1, 2, 3)),
    "desnow": _same(["desnow.median"], (1, 2, 3)),
    "dehaze": _same(["dehaze.dcp"], (1, 2, 3)),
    "lowlight": {
        # gamma won every low-light row of `restoregraph bench tools` (docs/BENCHMARKS.md)
        **_same(["lowlight.gamma", "lowlight.zerodce", "lowlight.clahe"], (1, 2, 3)),
    },
    "sr": {
        1: ("sr.lanczos.x2", "sr.bicubic.x2", "sr.bicubic.x4"),
        **_same(["sr.bicubic.x4", "sr.lanczos.x2", "sr.bicubic.x2"], (2, 3)),
    },
}

RULES: dict[tuple[str, int], tuple[str, ...]] = {
    (task, level): ids for task, by_level in _TABLE.items() for level, ids in by_level.items()
}


def task_order(tasks: Sequence[str] | set[str] | dict[str, int]) -> list[str]:
    """``tasks`` sorted by the fixed expert order (unknown tasks last, alphabetically)."""
    rank = {t: i for i, t in enumerate(FIXED_ORDER)}
    return sorted(tasks, key=lambda t: (rank.get(t, len(FIXED_ORDER)), t))


def rank_tools(tools: Sequence[ToolSpec], task: str, level: int) -> list[ToolSpec]:
    """Order ``tools`` (all of one task) by the fixed model-choice rule, best first."""
    table = RULES.get((task, level), ())

    def key(spec: ToolSpec) -> tuple[int, int, int, int, float, str]:
        matches = level in spec.severity
        learned = spec.kind == "learned"
        if spec.id in table:
            group, table_rank = 1, table.index(spec.id)
        else:
            group, table_rank = (0 if learned and matches else 2), 0
        return (group, table_rank, 0 if matches else 1, 0 if learned else 1, spec.cost, spec.id)

    return sorted(tools, key=key)


def choose_tool(request: PlanRequest, task: str, level: int) -> ToolSpec | None:
    """The fixed rule's tool for ``task`` at ``level``, minus forbidden ones (None: none).

    A user strength for the task (``request.strength``) reorders the ranking: mild (1) puts
    tools whose ``severity`` stops below 3 first, strong (3) tools meant for level 3 first.
    """
    ranked = rank_tools(allowed_tools(request, task), task, level)
    strength = request.strength.get(task)
    if strength == 1:  # mild: tools not meant for high severity first (stable sort)
        ranked.sort(key=lambda s: max(s.severity, default=1) >= 3)
    elif strength == 3:  # strong: tools meant for high severity first
        ranked.sort(key=lambda s: 3 not in s.severity)
    return ranked[0] if ranked else None


def fixed_steps(
    request: PlanRequest, tasks: dict[str, int] | None = None, exclude: Sequence[str] = ()
) -> list[PlanStep]:
    """Steps for ``tasks`` (default: every needed task) in the fixed order with the fixed model
    choice; tasks in ``exclude`` and tasks whose every tool is forbidden are skipped."""
    needed = needed_tasks(request) if tasks is None else tasks
    steps: list[PlanStep] = []
    for task in task_order(needed):
        if task in exclude:
            continue
        spec = choose_tool(request, task, needed[task])
        if spec is not None:
            steps.append(PlanStep(task=task, tool=spec.id))
    return steps


class FixedPlanner:
    """Fixed expert order and rule-table model choice (see the module docstring)."""

    name = "fixed"

    def plan(self, request: PlanRequest) -> Plan:
        needed = needed_tasks(request)
        steps = fixed_steps(request, needed)
        skipped = [t for t in task_order(needed) if t not in {s["task"] for s in steps}]
        note = skipped_note(request, skipped)
        return Plan(steps=steps, note=note)


__all__ = [
    "FIXED_ORDER",
    "RULES",
    "FixedPlanner",
    "choose_tool",
    "fixed_steps",
    "rank_tools",
    "task_order",
]
