"""Experience (AgenticIR) as planners consult it: order and model statistics distilled from
pipeline-search data by ``restoregraph.lab.training.experience`` into
``restoregraph/prompts/experience.json`` (committed).

:class:`Experience` answers the planners' questions: the pairwise ``before`` table for
``explore``'s order prior (``parse_experience`` format), a model ranking per task and level,
and a few advice lines for an LLM prompt (``prompts.plan.render_user_prompt(experience=...)``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "prompts" / "experience.json"


class Experience:
    """The distilled statistics, as planners consult them (empty when none were distilled)."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})

    @property
    def empty(self) -> bool:
        return not self.data.get("objectives")

    def section(self, objective: str) -> dict[str, Any]:
        objs = self.data.get("objectives") or {}
        sec = objs.get(objective) or objs.get("balanced") or {}
        return dict(sec) if isinstance(sec, Mapping) else {}

    def before(self, objective: str = "balanced") -> dict[str, dict[str, float]]:
        """``before[a][b]`` = share of images where doing ``a`` before ``b`` was better."""
        raw = self.section(objective).get("before") or {}
        return {a: dict(row) for a, row in raw.items() if isinstance(row, Mapping)}

    def model_stats(self, task: str, level: int, objective: str = "balanced") -> list[dict]:
        by_level = (self.section(objective).get("models") or {}).get(task) or {}
        rows = by_level.get(str(int(level)))
        if rows is None and by_level:  # the nearest level the data has
            nearest = min(by_level, key=lambda lv: abs(int(lv) - int(level)))
            rows = by_level[nearest]
        return list(rows or [])

    def rank_models(
        self, task: str, level: int, tool_ids: Sequence[str], objective: str = "balanced"
    ) -> list[str]:
        """``tool_ids`` best first by the statistics (stable: tools without data keep their
        relative order after those with data)."""
        stats = {r["tool"]: r for r in self.model_stats(task, level, objective)}
        known = [t for t in tool_ids if t in stats and stats[t].get("n")]
        known.sort(key=lambda t: (-stats[t]["win_rate"], stats[t].get("mean_pct") or 100.0))
        return known + [t for t in tool_ids if t not in known]

    def order(self, tasks: Sequence[str], objective: str = "balanced") -> list[str]:
        """``tasks`` sorted by pairwise wins (Copeland count), ties keep the given order."""
        before = self.before(objective)

        def wins(t: str) -> float:
            return sum(before.get(t, {}).get(o, 0.5) - 0.5 for o in tasks if o != t)

        return sorted(tasks, key=lambda t: -wins(t))

    def advice(
        self, tasks_levels: Mapping[str, int], objective: str = "balanced", max_lines: int = 8
    ) -> str:
        """A few lines for an LLM prompt about the given tasks (empty when nothing is known)."""
        sec = self.section(objective)
        tasks = sorted(tasks_levels)
        lines = []
        for p in sec.get("pairs", []):
            if p["a"] in tasks_levels and p["b"] in tasks_levels and p.get("n"):
                first, then = (p["a"], p["b"]) if p["win_ab"] >= 0.5 else (p["b"], p["a"])
                win = p["win_ab"] if first == p["a"] else 1 - p["win_ab"]
                fa, fb = (
                    (p["fail_ab"], p["fail_ba"])
                    if first == p["a"]
                    else (p["fail_ba"], p["fail_ab"])
                )
                line = f"- {first} before {then}: better on {win:.0%} of {p['n']} images"
                if fa is not None and fb is not None:
                    line += f" (fail rate {fa:.0%} vs {fb:.0%})"
                lines.append(line)
        for task in tasks:
            stats = self.model_stats(task, tasks_levels[task], objective)
            if stats and stats[0].get("n"):
                top = stats[0]
                model = top["tool"].split(".", 1)[1]
                lines.append(
                    f"- {task} at severity {tasks_levels[task]}: {task} {model} was in the best "
                    f"pipeline on {top['win_rate']:.0%} of {top['n']} images"
                )
        return "\n".join(lines[:max_lines])


_CACHE: dict[str, Experience] = {}


def load_experience(path: str | Path | None = None) -> Experience:
    """The experience JSON at ``path`` (default: the committed one); empty when absent."""
    p = Path(path) if path is not None else DEFAULT_PATH
    key = str(p.resolve())
    if key not in _CACHE:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if path is not None:
                raise InputError(f"experience file not found: {p}") from None
            data = {}
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: unreadable experience file ({exc})") from None
        _CACHE[key] = Experience(data if isinstance(data, Mapping) else {})
    return _CACHE[key]


# -- the readable document --------------------------------------------------------------------


def forget(path: str | Path) -> None:
    """Drop the cached copy of ``path`` (after the lab rewrote it)."""
    _CACHE.pop(str(Path(path).resolve()), None)


__all__ = ["DEFAULT_PATH", "Experience", "forget", "load_experience"]
