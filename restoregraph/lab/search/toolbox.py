"""The *search toolbox*: the few models per task the pipeline search enumerates (one place).

Running every pipeline costs (#tasks)! x prod(#models per task) finals, so the search keeps at
most 3 models per task, chosen to span severities where the best model depends on them (a low /
mid / high denoiser, a mild and a severe JPEG model, a motion and a defocus deblurrer, an x2 and
an x4 upscaler) and one model elsewhere (derain, dehaze, low light, desnow), learned tools first
where their weights are installed, classical ones filling in otherwise.

``SEARCH_PREFERENCES[task]`` lists candidate ids in order of preference; the toolbox takes the
first ``MAX_MODELS[task]`` of them that the registry has. A JSON file ``{"task": [ids...]}``
replaces the default (``restoregraph data build --toolbox FILE``).

``whole`` (:data:`WHOLE_TOOLBOX`, ``restoregraph data build --toolbox whole``) is the search over
the whole toolbox, learned and classical, capped at the 3 tools per task that the tools
benchmarks rank best (:data:`WHOLE_TOOLBOX`'s comments say which rows): data for an embedded
planner that picks a classical or a learned tool per image (one trained on a 600-sample build
ranked worse than the shipped planner and was not shipped: docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE
from restoregraph.tools.registry import ToolRegistry

SearchToolbox = dict[str, list[str]]

# Classical tools that fill in, in order of preference, where learned ones are missing.
CLASSICAL_PREFERENCES: dict[str, tuple[str, ...]] = {
    "denoise": ("denoise.nlmeans", "denoise.bilateral", "denoise.oidn"),
    "dejpeg": ("dejpeg.deblock",),
    "deblur": ("deblur.wiener", "deblur.unsharp"),
    "derain": ("derain.median",),
    "dehaze": ("dehaze.dcp",),
    "lowlight": ("lowlight.gamma", "lowlight.clahe"),
    "desnow": ("desnow.median",),
    "sr": ("sr.bicubic.x4", "sr.lanczos.x2"),
}


def _learned_ids(task: str) -> tuple[str, ...]:
    """The built-in learned tools of ``task`` in catalog order (severities low -> high)."""
    try:
        from restoregraph.tools.learned.catalog import VARIANTS
    except ImportError:  # pragma: no cover - learned tools not installed
        return ()
    return tuple(v.id for v in VARIANTS if v.task == task)


SEARCH_PREFERENCES: dict[str, tuple[str, ...]] = {
    task: (*_learned_ids(task), *classical) for task, classical in CLASSICAL_PREFERENCES.items()
}
# Where the best model depends on the severity or the kind of degradation: several models (noise
# level; JPEG quality; motion vs defocus blur; x2 vs x4). Elsewhere one model trained over every
# level: a second one would double the tree for little to learn.
MAX_MODELS: dict[str, int] = {"denoise": 3, "dejpeg": 2, "deblur": 2, "sr": 2}
DEFAULT_MAX_MODELS = 1

# Tasks the search can need: those a perceived degradation type maps onto.
SEARCH_TASKS: tuple[str, ...] = tuple(dict.fromkeys(TASK_FOR_PERCEPTION_TYPE.values()))

# The whole toolbox, capped: per task the (at most) 3 tools the `learned` section of
# docs/BENCHMARKS.md (`restoregraph bench learned`: every learned tool against the best classical
# one, per setting and test set) ranks best -- by rows won (best PSNR of the row), ties by mean
# PSNR over the rows -- in that order. The rows of dehaze, lowlight, derain and desnow.nafnet
# predate their retraining ('Real photos II'); the picks there do not depend on it (each of those
# tasks has at most 3 tools but lowlight, whose third is the best classical tool of a row).
WHOLE_TOOLBOX: dict[str, tuple[str, ...]] = {
    # oidn wins 4 of 9 rows (sigma 10-25), nafnet.high 2 (sigma 45), nafnet.mid 1 (best mean)
    "denoise": ("denoise.oidn", "denoise.nafnet.mid", "denoise.nafnet.high"),
    # motion wins every motion row, defocus every defocus row; unsharp: best classical in 17/18
    "deblur": ("deblur.nafnet.motion", "deblur.nafnet.defocus", "deblur.unsharp"),
    # severe wins 6 of 9 rows, mild 2, deblock 1 (McMaster q40)
    "dejpeg": ("dejpeg.nafnet.severe", "dejpeg.nafnet.mild", "dejpeg.deblock"),
    "derain": ("derain.nafnet", "derain.median"),  # nafnet 7 of 9 rows, median 2
    "deraindrop": ("deraindrop.nafnet",),  # the only deraindrop tool
    "dehaze": ("dehaze.dcp", "dehaze.nafnet"),  # dcp 6 of 9 rows, nafnet 3
    # gamma 6 of 9 rows, nafnet 3; clahe: the best classical tool of the one row gamma lost
    "lowlight": ("lowlight.gamma", "lowlight.nafnet", "lowlight.clahe"),
    "desnow": ("desnow.nafnet",),  # the only desnow tool
    # compact.x2 wins every x2 row, lanczos.x2 the best classical; bicubic.x4 for levels 2-3
    "sr": ("sr.compact.x2", "sr.lanczos.x2", "sr.bicubic.x4"),
}


def default_toolbox(registry: ToolRegistry) -> SearchToolbox:
    """Task -> up to ``MAX_MODELS`` tool ids from ``SEARCH_PREFERENCES`` present in ``registry``.

    A task none of whose preferred tools is registered gets the registry's tools for it (cheapest
    first) up to the same cap, so a new task or a custom registry still has candidates.
    """
    out: SearchToolbox = {}
    for task in SEARCH_TASKS:
        cap = MAX_MODELS.get(task, DEFAULT_MAX_MODELS)
        ids = [i for i in SEARCH_PREFERENCES.get(task, ()) if i in registry][:cap]
        if not ids:
            ids = [s.id for s in sorted(registry.for_task(task), key=lambda s: (s.cost, s.id))]
            ids = ids[:cap]
        if ids:
            out[task] = ids
    return out


def whole_toolbox(registry: ToolRegistry) -> SearchToolbox:
    """:data:`WHOLE_TOOLBOX` restricted to the tools ``registry`` has (a task left without any
    is dropped)."""
    out: SearchToolbox = {}
    for task, ids in WHOLE_TOOLBOX.items():
        present = [i for i in ids if i in registry]
        if present:
            out[task] = present
    return out


def validate_toolbox(toolbox: Mapping[str, Sequence[str]], registry: ToolRegistry) -> SearchToolbox:
    """Check a task -> ids mapping against ``registry``; return it as plain lists."""
    if not isinstance(toolbox, Mapping) or not toolbox:
        raise InputError("a search toolbox must be a non-empty JSON object {task: [tool ids]}")
    out: SearchToolbox = {}
    for task, ids in toolbox.items():
        if task not in SEARCH_TASKS:
            raise InputError(
                f"search toolbox: unknown task {task!r}; known: {', '.join(SEARCH_TASKS)}"
            )
        if isinstance(ids, str) or not isinstance(ids, Sequence) or not ids:
            raise InputError(f"search toolbox: task {task!r} needs a non-empty list of tool ids")
        for tool_id in ids:
            if tool_id not in registry:
                raise InputError(
                    f"search toolbox: unknown tool {tool_id!r} (see `restoregraph tools list`)"
                )
            if registry.get(tool_id).task != task:
                raise InputError(f"search toolbox: {tool_id!r} is not a {task!r} tool")
        if len(set(ids)) != len(ids):
            raise InputError(f"search toolbox: task {task!r} lists a tool twice")
        out[task] = [str(i) for i in ids]
    return out


def load_toolbox(spec: str | Path, registry: ToolRegistry) -> SearchToolbox:
    """``"default"`` -> :func:`default_toolbox`; ``"whole"`` -> :func:`whole_toolbox`;
    otherwise a JSON file ``{task: [ids]}``."""
    if str(spec) == "default":
        return default_toolbox(registry)
    if str(spec) == "whole":
        return whole_toolbox(registry)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{path}: no such toolbox file (a JSON object {{task: [tool ids]}})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON toolbox file ({exc})") from None
    return validate_toolbox(data, registry)


def toolbox_ids(toolbox: Mapping[str, Sequence[str]]) -> list[str]:
    """Every tool id of a search toolbox, task by task."""
    return [i for ids in toolbox.values() for i in ids]


__all__ = [
    "MAX_MODELS",
    "SEARCH_PREFERENCES",
    "SEARCH_TASKS",
    "SearchToolbox",
    "WHOLE_TOOLBOX",
    "default_toolbox",
    "load_toolbox",
    "toolbox_ids",
    "validate_toolbox",
    "whole_toolbox",
]
