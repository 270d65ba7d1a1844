"""The library's front door: restore a file in one call, or hand the agent to a larger agent.

``restore`` and ``as_tool`` are also ``restoregraph.restore`` and ``restoregraph.as_tool``
(loaded on first use, so ``import restoregraph`` stays light).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.settings import RunContext
from restoregraph.runner import Runner, RunResult

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool


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

    The run is checkpointed under ``home`` (default ``$RESTOREGRAPH_HOME``, else
    ``~/.restoregraph``) and can be resumed or undone with ``restoregraph.runner.Runner``.
    Returns the ``RunResult`` (output path, report, history, final state). Raises
    ``InputError`` for an unusable input, ``OutputError`` when ``output`` exists (unless
    ``overwrite``), ``RestoreGraphError`` for bad settings.
    """
    ctx = RunContext(**settings)
    if instruction.strip():
        from restoregraph.chat.session import route_instruction

        route_instruction(ctx, instruction)
    return Runner(home).start(image, output, ctx, instruction=instruction, overwrite=overwrite)


def summarise(result: RunResult) -> str:
    """One paragraph for a person or a calling model: the accepted and rolled-back steps, why
    the run stopped, and the last planner fallback if any."""
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


TOOL_NAME = "restore_image"
TOOL_DESCRIPTION = (
    "Restore a degraded photo (noise, blur, JPEG artefacts, rain, raindrops, haze, low light, "
    "snow, low resolution): the agent detects what is wrong, plans a chain of tools and keeps "
    "only the steps that help. Returns the restored image's path (a new PNG beside the input), "
    "a summary of the steps, the HTML report's path and the run id. An unusable input (missing "
    "file, not an image) comes back as an error message."
)


class RestoreImageArgs(BaseModel):
    """The arguments of the ``restore_image`` tool (its JSON schema, field descriptions
    included, is what the calling model sees)."""

    image_path: str = Field(
        description="Path of the photo to restore (PNG, JPEG, TIFF, WebP...) on this machine."
    )
    instruction: str = Field(
        default="",
        description='What to do, in words, e.g. "remove the grain" or "fix it but keep the '
        'grain"; empty: restore whatever is degraded.',
    )


def as_tool(home: str | os.PathLike[str] | None = None, **settings: Any) -> BaseTool:
    """A LangChain tool ``restore_image(image_path, instruction="")`` for a larger agent.

    ``home`` and ``settings`` (RunContext fields) are those of ``restore``; the settings are
    checked here, once. The restored image is written beside the input as
    ``<name>.restored.png`` (``.restored-1.png``... when taken). The tool returns a dict
    (``result_path``, ``summary``, ``report``, ``run_id``); a ``RestoreGraphError`` or an
    ``OSError`` (missing file, not an image, output refused) becomes a ``ToolException`` whose
    message is the tool's answer to the calling model (``handle_tool_error``), so the parent
    agent goes on.
    """
    from langchain_core.tools import StructuredTool, ToolException

    if RunContext(**settings).approve != "off":  # bad settings fail now, not at the call
        raise RestoreGraphError(
            "as_tool cannot ask for plan approval (a tool called by another agent has no one "
            "to ask); leave approve='off'"
        )

    def restore_image(image_path: str, instruction: str = "") -> dict[str, str]:
        src = Path(image_path).expanduser()
        out = src.with_name(f"{src.stem}.restored.png")
        n = 1
        while out.exists():
            out = src.with_name(f"{src.stem}.restored-{n}.png")
            n += 1
        try:
            result = restore(src, out, home=home, instruction=instruction, **settings)
        except (RestoreGraphError, OSError) as exc:
            raise ToolException(f"restore_image failed: {exc}") from exc
        return {
            "result_path": str(result.output),
            "summary": summarise(result),
            "report": str(result.report),
            "run_id": result.run_id,
        }

    return StructuredTool.from_function(
        restore_image,
        name=TOOL_NAME,
        description=TOOL_DESCRIPTION,
        args_schema=RestoreImageArgs,
        handle_tool_error=True,
    )
