"""The library's front door: restore a file in one call, or hand the agent to a larger agent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from restoregraph.core.settings import RunContext
from restoregraph.runner import Runner, RunResult


def restore(
    image: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str] | None = None,
    instruction: str = "",
    overwrite: bool = False,
    **settings: Any,
) -> RunResult:
    """Restore ``image`` into ``output``; ``settings`` are RunContext fields (planner, mode...).

    An ``instruction`` ("remove the grain", "fix it but keep the grain") is routed by the chat
    router (``restoregraph.chat``) into plan constraints: the named tasks only, forbidden or
    required tasks, strength.
    """
    ctx = RunContext(**settings)
    if instruction.strip():
        from restoregraph.chat.session import route_instruction

        route_instruction(ctx, instruction)
    return Runner(home).start(image, output, ctx, instruction=instruction, overwrite=overwrite)


def summarise(result: RunResult) -> str:
    steps = [h for h in result.history if h["status"] == "accepted"]
    undone = [h for h in result.history if h["status"] != "accepted"]
    text = f"Restored with {len(steps)} step(s): " + (", ".join(h["tool"] for h in steps) or "none")
    if undone:
        text += f"; {len(undone)} step(s) rolled back: " + ", ".join(h["tool"] for h in undone)
    text += f". Stop: {result.state.get('stop_reason', '')}."
    from restoregraph.report import is_fallback, planner_notes

    fallbacks = [n for n in planner_notes(result.state, result.events) if is_fallback(n)]
    if fallbacks:
        text += f" Planner fallback ({len(fallbacks)}x): {fallbacks[-1]}."
    return text


def as_tool(home: str | os.PathLike[str] | None = None, **settings: Any) -> Any:
    """A LangChain tool: (image path, optional instruction) -> result path and a summary."""
    from langchain_core.tools import StructuredTool

    def restore_image(image_path: str, instruction: str = "") -> dict[str, str]:
        """Restore a degraded photo (noise, blur, JPEG, rain, haze, low light, snow, low
        resolution). Returns the restored image's path, a summary and the report path."""
        src = Path(image_path)
        out = src.with_name(f"{src.stem}.restored.png")
        n = 1
        while out.exists():
            out = src.with_name(f"{src.stem}.restored-{n}.png")
            n += 1
        result = restore(src, out, home=home, instruction=instruction, **settings)
        return {
            "result_path": str(result.output),
            "summary": summarise(result),
            "report": str(result.report),
            "run_id": result.run_id,
        }

    return StructuredTool.from_function(restore_image, name="restore_image")
