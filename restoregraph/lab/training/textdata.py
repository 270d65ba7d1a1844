"""Text-only instruction rows (perception text -> plan) for the SmolLM2 planner.

A row has the layout ``restoregraph data export --text-only`` writes (/work/search_format.md;
``restoregraph.lab.search.export.trl_row``): one user turn holding the system prompt and the user
prompt (``restoregraph.prompts.plan.render_training_prompt``), then the answer::

    {"messages": [{"role": "user", "content": SYSTEM_PROMPT + "\n\n" + USER_PROMPT},
                  {"role": "assistant", "content": "1. dejpeg deblock. 2. denoise oidn."}],
     "scenario": "fresh", "sample": "000123"}

``content`` may also be a list of ``{"type": "text"}`` parts (image parts are dropped). The
``smollm`` planner sends the same single user turn at inference.

When no search data exists, ``fixed_planner_rows`` makes rows in the same layout from the
fixed expert planner: random perception results (1-4 types, levels 1-3) and four of the five
RestoreAgent scenarios (``fresh``, ``partial``, ``avoid``, ``stop``; ``rollback`` is the
reflection node's decision, which no planner returns, so ``read_rows`` drops those rows by
default). Such rows teach the plan format and the fixed rules; rows exported from the search
data teach the best-ranked pipelines.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.prompts.plan import render_training_prompt
from restoregraph.tools.registry import ToolRegistry

Row = dict[str, Any]
PLANNER_SCENARIOS = ("fresh", "partial", "avoid", "stop")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    raise InputError(
        f"message content is neither text nor a list of parts: {type(content).__name__}"
    )


def chat_messages(row: Row, system: str | None = None) -> list[dict[str, str]]:
    """The row's messages as ``{"role", "content": str}`` (images dropped); ``system`` is
    put first when given and the row has no system message."""
    raw = row.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InputError("row has no 'messages' list")
    msgs = []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise InputError(f"row has a malformed message: {str(m)[:80]}")
        msgs.append({"role": str(m["role"]), "content": _text(m.get("content", ""))})
    if system is not None and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def split_row(row: Row) -> tuple[list[dict[str, str]], str]:
    """``(prompt messages, answer)``: everything before the last assistant turn, and its text."""
    msgs = chat_messages(row)
    if msgs[-1]["role"] != "assistant":
        raise InputError("row does not end with an assistant answer")
    return msgs[:-1], msgs[-1]["content"].strip()


def read_rows(path: str | Path, scenarios: Sequence[str] | None = PLANNER_SCENARIOS) -> list[Row]:
    """Rows of a JSONL file (or ``train.jsonl`` inside a folder), filtered by scenario.

    Rows without a ``scenario`` are kept. Raises ``InputError`` for a missing file or bad JSON.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "train.jsonl"
    if not p.is_file():
        raise InputError(f"no instruction rows at {p}; make them with: restoregraph data export")
    rows: list[Row] = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{p}:{n}: not a JSON line") from None
            if not isinstance(row, dict):
                raise InputError(f"{p}:{n}: a row must be a JSON object")
            if scenarios is None or row.get("scenario") in (None, *scenarios):
                rows.append(row)
    if not rows:
        raise InputError(f"{p} has no usable rows (scenarios {list(scenarios or [])})")
    return rows


def write_rows(path: str | Path, rows: Iterable[Row]) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
            n += 1
    return n


def make_row(prompt: str, answer: str, scenario: str, sample: str) -> Row:
    """A text-only row as ``data export --text-only`` writes it (plain-string contents)."""
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": answer},
        ],
        "scenario": scenario,
        "sample": sample,
    }


_PERCEPTION_LINE = re.compile(r"^- ([a-z_]+): ([0-3]) \(", re.MULTILINE)


def perception_from_prompt(text: str) -> dict[str, int]:
    """The perception result written into a text-only prompt (``- noise: 2 (mid) -> ...``)."""
    head, sep, rest = text.partition("Perception (")
    block = rest.split("\n\n", 1)[0] if sep else ""
    return {m.group(1): int(m.group(2)) for m in _PERCEPTION_LINE.finditer(block)}


def split_by_sample(rows: Sequence[Row], holdout: float, seed: int) -> tuple[list[Row], list[Row]]:
    """``(train, held out)``: whole samples are held out (a ``holdout`` fraction of them)."""
    samples = sorted({str(r.get("sample")) for r in rows})
    random.Random(seed).shuffle(samples)
    k = int(round(holdout * len(samples))) if holdout > 0 else 0
    held = set(samples[:k])
    return (
        [r for r in rows if str(r.get("sample")) not in held],
        [r for r in rows if str(r.get("sample")) in held],
    )


def random_perception(rng: random.Random, max_types: int = 4) -> dict[str, int]:
    k = rng.randint(1, max_types)
    return {t: rng.randint(1, 3) for t in rng.sample(PERCEPTION_TYPES, k)}


def _record(index: int, position: int, tool: str, status: str, reason: str = "") -> dict[str, Any]:
    return {
        "index": index,
        "position": position,
        "task": tool.split(".", 1)[0],
        "tool": tool,
        "status": status,
        "reason": reason,
    }


def _fixed_examples(
    perception: dict[str, int], toolbox: ToolRegistry, rng: random.Random
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(scenario, PlanRequest kwargs) for one perception result."""
    from restoregraph.planners.base import PlanRequest
    from restoregraph.planners.fixed import FixedPlanner

    base = FixedPlanner().plan(PlanRequest(perception=perception, toolbox=toolbox)).steps
    yield "fresh", {"history": [], "failed": []}
    if not base:
        return
    k = rng.randint(1, len(base))  # accepted steps so far (k == len: stop)
    history = [_record(i + 1, i, s["tool"], "accepted") for i, s in enumerate(base[:k])]
    yield ("stop" if k == len(base) else "partial"), {"history": history, "failed": []}
    # avoid: the next step was rolled back at this position
    j = rng.randint(0, len(base) - 1)
    hist = [_record(i + 1, i, s["tool"], "accepted") for i, s in enumerate(base[:j])]
    bad = base[j]["tool"]
    reason = "quality dropped"
    hist.append(_record(j + 1, j, bad, "rolled_back", reason))
    yield "avoid", {"history": hist, "failed": [{"tool": bad, "position": j, "reason": reason}]}


def fixed_planner_rows(n: int, toolbox: ToolRegistry, seed: int = 0) -> list[Row]:
    """About ``n`` rows (whole perception results at a time) answered by the fixed planner."""
    from restoregraph.planners.base import PlanRequest, format_plan
    from restoregraph.planners.fixed import FixedPlanner

    rng = random.Random(seed)
    planner = FixedPlanner()
    rows: list[Row] = []
    i = 0
    while len(rows) < n:
        perception = random_perception(rng)
        for scenario, kw in _fixed_examples(perception, toolbox, rng):
            req = PlanRequest(perception=perception, toolbox=toolbox, **kw)
            answer = format_plan(planner.plan(req).steps)
            prompt = render_training_prompt(perception, toolbox, kw["history"], kw["failed"])
            rows.append(make_row(prompt, answer, scenario, f"fixed-{seed}-{i:05d}"))
        i += 1
    return rows[:n]


__all__ = [
    "PLANNER_SCENARIOS",
    "Row",
    "chat_messages",
    "fixed_planner_rows",
    "make_row",
    "perception_from_prompt",
    "random_perception",
    "read_rows",
    "split_by_sample",
    "split_row",
    "write_rows",
]
