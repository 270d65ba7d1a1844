"""Instruction data from pipeline-search data: RestoreAgent's five scenarios (``data export``).

Reads a search-data directory (the shared format written by ``restoregraph data build``:
``manifest.json`` + ``samples.jsonl`` + images) and writes one training row per scenario instance:

* ``fresh``    -- the degraded image, nothing run yet -> the image's best pipeline;
* ``partial``  -- an intermediate image + the steps that made it -> the best remaining plan.
  Taken along the best path (the rest of the best pipeline) and along the worst path (the
  best continuation of that worse start). Along the best path a second variant shows the
  last step as ``pending`` (just run, not yet judged): its answer is the remaining plan, the
  counterpart of ``rollback`` so that a pending step does not always mean Rollback;
* ``rollback`` -- the image right after the first step of the worst path that loses value
  (the best pipeline reachable after it scores below the best reachable before it), shown as
  ``pending`` -> ``Rollback.``;
* ``avoid``    -- the image before that step, with the step listed as rolled back / failed ->
  the best plan from there that does not start with the failed tool;
* ``stop``     -- the image after the whole best pipeline -> ``Stop.``.

Prompts come from :mod:`restoregraph.prompts.plan` (system + user prompt in one user turn).
With an image, perception is left to the model ("judge them from the image"); ``text_only``
rows write the sample's degradation types and levels into the prompt instead and carry no image.
Answers use :func:`restoregraph.planners.base.format_plan` (or ``Rollback.`` / ``Stop.``).

Formats: ``trl`` -> ``OUT/train.jsonl`` (TRL ``SFTTrainer`` rows: ``images`` + ``messages``,
plus ``scenario`` and ``sample``); ``llava`` -> ``OUT/llava.json`` (LLaVA / xtuner
conversations). ``OUT/export.json`` records the counts and the command.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError, OutputError
from restoregraph.core.util import atomic_write

SCENARIOS: tuple[str, ...] = ("fresh", "partial", "rollback", "avoid", "stop")
FORMATS: tuple[str, ...] = ("trl", "llava")
OUT_FILES = {"trl": "train.jsonl", "llava": "llava.json"}

Steps = tuple[str, ...]


# -- reading the search data ------------------------------------------------------------------
def read_manifest(data: Path) -> dict[str, Any]:
    from restoregraph.lab.search.dataset import read_manifest as read

    return read(data)


def iter_samples(data: Path) -> Iterator[dict[str, Any]]:
    """The complete samples of ``DATA/samples.jsonl`` that hold pipelines (a torn last line is
    skipped: the builder redoes it on resume)."""
    from restoregraph.lab.search.dataset import iter_samples as read

    for sample in read(data):
        if isinstance(sample, dict) and sample.get("pipelines"):
            yield sample


def perception_of(sample: Mapping[str, Any]) -> dict[str, int]:
    """The sample's true degradations as perception would report them (type -> level)."""
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION

    out: dict[str, int] = {}
    for dtype, level in sample.get("mixture", []):
        ptype = PERCEPTION_TYPE_FOR_DEGRADATION.get(str(dtype))
        if ptype is not None:
            out[ptype] = max(out.get(ptype, 0), int(level))
    return out


def prompt_toolbox(manifest: Mapping[str, Any], samples: Sequence[Mapping[str, Any]] = ()) -> Any:
    """A ToolRegistry of the tools the data was built with (what the prompts list).

    Tools known to the installed toolbox are taken from it; ids it does not know (a user tool
    since removed) are listed all the same, with a run function that refuses to run.
    """
    from restoregraph.core.errors import ToolError
    from restoregraph.tools import default_registry
    from restoregraph.tools.registry import ToolRegistry, ToolSpec

    ids: list[str] = []
    toolbox = manifest.get("toolbox") or {}
    if isinstance(toolbox, Mapping):
        for tools in toolbox.values():
            ids += [str(t) for t in tools]
    for s in samples:
        for p in s.get("pipelines", []):
            ids += [str(t) for t in p.get("steps", [])]
    registry = default_registry()
    out = ToolRegistry()
    for tool_id in dict.fromkeys(ids):
        if tool_id in registry:
            out.register(registry.get(tool_id))
            continue

        def unavailable(img: Any, _id: str = tool_id) -> Any:
            raise ToolError(f"tool {_id!r} is not installed here")

        out.register(
            ToolSpec(id=tool_id, task=tool_id.split(".")[0], description="", run=unavailable)
        )
    return out


# -- scenarios --------------------------------------------------------------------------------
@dataclass
class Row:
    scenario: str
    sample: str
    image: str  # absolute path
    perception: dict[str, int]
    history: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""


def _answer(steps: Sequence[str]) -> str:
    from restoregraph.core.state import PlanStep
    from restoregraph.planners.base import format_plan

    return format_plan([PlanStep(task=t.split(".")[0], tool=t) for t in steps])


def _history(steps: Sequence[str], last_status: str = "accepted") -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(steps, 1):
        status = last_status if i == len(steps) else "accepted"
        entry: dict[str, Any] = {"index": i, "task": tool.split(".")[0], "tool": tool}
        entry["status"] = status
        if status == "rolled_back":
            entry["reason"] = "the step made the image worse"
        out.append(entry)
    return out


class SampleTree:
    """One sample's pipelines and node images, with the queries the scenarios need."""

    def __init__(self, data: Path, sample: Mapping[str, Any]) -> None:
        self.data = Path(data)
        self.sample = sample
        self.id = str(sample.get("id", ""))
        self.scores: dict[Steps, float] = {}
        for p in sample.get("pipelines", []):
            score = p.get("score")
            if isinstance(score, int | float) and math.isfinite(float(score)):
                self.scores[tuple(p["steps"])] = float(score)
        self.images: dict[Steps, str] = {}
        for node in sample.get("nodes", []):
            if node.get("image"):
                self.images[tuple(node.get("path", []))] = str(node["image"])
        if () not in self.images and sample.get("degraded"):
            self.images[()] = str(sample["degraded"])

    def image(self, prefix: Sequence[str]) -> str | None:
        rel = self.images.get(tuple(prefix))
        if rel is None:
            return None
        path = (self.data / rel).resolve()
        return str(path) if path.is_file() else None

    def best_with(self, prefix: Sequence[str], avoid_next: str | None = None) -> Steps | None:
        """The best pipeline that starts with ``prefix`` (and whose next step isn't avoided)."""
        k = len(prefix)
        cands = [
            (s, p)
            for p, s in self.scores.items()
            if p[:k] == tuple(prefix) and (avoid_next is None or len(p) <= k or p[k] != avoid_next)
        ]
        if not cands:
            return None
        return max(sorted(cands, key=lambda sp: sp[1]), key=lambda sp: sp[0])[1]

    def subtree_best(self, prefix: Sequence[str]) -> float:
        p = self.best_with(prefix)
        return self.scores[p] if p is not None else -math.inf

    # Ties are broken as the builder breaks them when it saves the best and worst paths'
    # images: the best is the first of the top score in sorted order, the worst the last.
    @property
    def best(self) -> Steps:
        return min(self.scores, key=lambda p: (-self.scores[p], p))

    @property
    def worst(self) -> Steps:
        return max(self.scores, key=lambda p: (-self.scores[p], p))


def sample_rows(data: Path, sample: Mapping[str, Any]) -> tuple[list[Row], Counter[str]]:
    """Every scenario row of one sample, and what had to be skipped (missing images) and why."""
    tree = SampleTree(data, sample)
    skipped: Counter[str] = Counter()
    rows: list[Row] = []
    if not tree.scores:
        skipped["no scored pipeline"] += 1
        return rows, skipped
    perception = perception_of(sample)
    best, worst = tree.best, tree.worst

    def add(scenario: str, prefix: Sequence[str], **kw: Any) -> None:
        image = tree.image(prefix)
        if image is None:
            skipped[f"{scenario}: no image saved for node {'/'.join(prefix) or 'root'}"] += 1
            return
        rows.append(Row(scenario, tree.id, image, perception, **kw))

    # 1. fresh
    add("fresh", (), answer=_answer(best))
    # 2. partial: along the best path (accepted, and pending-but-good), then the worst path
    for k in range(1, len(best)):
        add("partial", best[:k], history=_history(best[:k]), answer=_answer(best[k:]))
        add("partial", best[:k], history=_history(best[:k], "pending"), answer=_answer(best[k:]))
    for k in range(1, len(worst)):
        if worst[:k] == best[:k]:
            continue
        cont = tree.best_with(worst[:k])
        if cont is not None:
            add("partial", worst[:k], history=_history(worst[:k]), answer=_answer(cont[k:]))
    # 3. rollback: the first step of the worst path after which the best reachable score drops
    from restoregraph.prompts.plan import ROLLBACK_ANSWER, STOP_ANSWER

    mistake = next(
        (
            k
            for k in range(1, len(worst) + 1)
            if tree.subtree_best(worst[:k]) < tree.subtree_best(worst[: k - 1])
        ),
        None,
    )
    if mistake is None:
        skipped["rollback: the worst path never loses value"] += 1
    else:
        bad = worst[:mistake]
        add("rollback", bad, history=_history(bad, "pending"), answer=ROLLBACK_ANSWER)
        # 4. avoid: back at the image before the bad step, which is now a failed attempt
        before = bad[:-1]
        alt = tree.best_with(before, avoid_next=bad[-1])
        if alt is None:
            skipped["avoid: no pipeline avoids the failed step"] += 1
        else:
            failed = [{"tool": bad[-1], "position": len(before), "reason": "rolled back"}]
            add(
                "avoid",
                before,
                history=_history(bad, "rolled_back"),
                failed=failed,
                answer=_answer(alt[len(before) :]),
            )
    # 5. stop
    add("stop", best, history=_history(best), answer=STOP_ANSWER)
    return rows, skipped


# -- formats ----------------------------------------------------------------------------------
def render_prompt(row: Row, toolbox: Any, text_only: bool) -> str:
    from restoregraph.prompts.plan import render_training_prompt

    perception = row.perception if text_only else None
    return render_training_prompt(perception, toolbox, row.history, row.failed)


def trl_row(row: Row, prompt: str, text_only: bool) -> dict[str, Any]:
    if text_only:  # plain-string contents: what text chat templates (SmolLM2 ...) expect
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": row.answer},
        ]
        return {"messages": messages, "scenario": row.scenario, "sample": row.sample}
    return {
        "images": [row.image],
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": row.answer}]},
        ],
        "scenario": row.scenario,
        "sample": row.sample,
    }


def llava_row(row: Row, prompt: str, text_only: bool, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"{row.sample}-{row.scenario}-{index}"}
    if not text_only:
        out["image"] = row.image
        prompt = "<image>\n" + prompt
    out["conversations"] = [
        {"from": "human", "value": prompt},
        {"from": "gpt", "value": row.answer},
    ]
    out["scenario"] = row.scenario
    return out


@dataclass
class ExportResult:
    path: Path
    rows: int
    per_scenario: dict[str, int]
    samples: int
    skipped: dict[str, int]


def export(
    data: Path,
    out: Path,
    fmt: str = "trl",
    text_only: bool = False,
    overwrite: bool = False,
    command: str = "",
    progress: bool = False,
) -> ExportResult:
    """Write the instruction data of ``data`` to ``out`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose {' or '.join(FORMATS)}")
    data, out = Path(data), Path(out)
    manifest = read_manifest(data)
    target = out / OUT_FILES[fmt]
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory; choose another -o")
    if target.exists() and not overwrite:
        raise OutputError(f"{target} exists; pass --overwrite to replace it")
    samples = list(iter_samples(data))
    if not samples:
        raise InputError(f"{data}: no finished samples in samples.jsonl")
    toolbox = prompt_toolbox(manifest, samples)
    rows: list[Row] = []
    skipped: Counter[str] = Counter()
    items: Any = samples
    if progress:
        from restoregraph.core.util import progress as bar

        items = bar(samples, len(samples), "export")
    for sample in items:
        r, s = sample_rows(data, sample)
        rows += r
        skipped += s
    if not rows:
        raise InputError(f"{data}: no rows could be made (images missing?)")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "trl":
        lines = [
            json.dumps(trl_row(r, render_prompt(r, toolbox, text_only), text_only)) for r in rows
        ]
        atomic_write(target, "\n".join(lines) + "\n")
    else:
        items_out = [
            llava_row(r, render_prompt(r, toolbox, text_only), text_only, i)
            for i, r in enumerate(rows)
        ]
        atomic_write(target, json.dumps(items_out, indent=1) + "\n")
    per = Counter(r.scenario for r in rows)
    per_scenario = {s: per.get(s, 0) for s in SCENARIOS}
    summary = {
        "format": fmt,
        "text_only": text_only,
        "file": target.name,
        "rows": len(rows),
        "samples": len(samples),
        "per_scenario": per_scenario,
        "skipped": dict(skipped),
        "data": str(data.resolve()),
        "command": command,
    }
    atomic_write(out / "export.json", json.dumps(summary, indent=2) + "\n")
    return ExportResult(target, len(rows), per_scenario, len(samples), dict(skipped))


__all__ = [
    "FORMATS",
    "SCENARIOS",
    "ExportResult",
    "Row",
    "SampleTree",
    "export",
    "iter_samples",
    "perception_of",
    "prompt_toolbox",
    "read_manifest",
    "sample_rows",
]
