"""Turn the graph's custom stream events into the live plan/progress text the page shows.

The same events drive the CLI's rich progress bar (``restoregraph.cli.cmd_run.ProgressDisplay``):
``perception``, ``plan``, ``step_start``, ``step_end`` and ``reflection``.
"""

from __future__ import annotations

from typing import Any


def _md(text: str) -> str:
    """Escape the characters that Markdown would interpret in tool output and reasons."""
    for ch in "\\`*_[]<>#|":
        text = text.replace(ch, "\\" + ch)
    return text


class ProgressLog:
    """Accumulates events; ``markdown()`` renders the plan as it runs."""

    def __init__(self, title: str = "Restoring") -> None:
        self.title = title
        self.lines: list[str] = []
        self.running: str = ""
        self.done = 0
        self.total: int | None = None
        self.phase = "perception"
        self.finished = ""

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "perception":
            present = ", ".join(f"{k} {v}" for k, v in ev.get("present", {}).items()) or "none"
            self.lines.append(f"**perceived:** {_md(present)}")
            self.phase = "planning"
        elif kind == "plan":
            note = f" ({_md(str(ev['note']))})" if ev.get("note") else ""
            self.lines.append(f"**plan:** {_md(str(ev.get('plan', '')))}{note}")
            self.total = self.done + int(ev.get("steps", 0))
            self.phase = "executing"
        elif kind == "step_start":
            self.running = f"step {ev.get('index')}: {ev.get('tool')}"
            self.phase = f"running {self.running}"
        elif kind == "tile":  # a long tiled tool: tiles done and the time left
            left = f", about {float(ev.get('eta', 0)):.0f} s left"
            done, total = ev.get("done"), ev.get("total")
            self.phase = (
                f"running {self.running} (tile {done}/{total}{left if done != total else ''})"
            )
        elif kind == "reflection":
            status = str(ev.get("status", ""))
            self.lines.append(
                f"step {ev.get('index')} `{ev.get('tool')}`: "
                f"**{status.replace('_', ' ')}**: {_md(str(ev.get('reason', '')))}"
            )
            self.done += 1
            self.running = ""
            self.phase = "reflecting"

    def finish(self, text: str) -> None:
        self.finished = text
        self.phase = "done"

    def markdown(self) -> str:
        if self.finished:
            head = f"**{self.title}: done.** {self.finished}"
        else:
            total = f"/{self.total}" if self.total is not None else ""
            head = f"**{self.title}:** {self.phase}… ({self.done}{total} steps)"
        return "\n\n".join([head, *self.lines])
