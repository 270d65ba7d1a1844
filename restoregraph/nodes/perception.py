"""Perception: read the input, store it, detect which degradations are present and how severe."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from restoregraph.core.settings import RunContext
from restoregraph.core.state import RestoreState
from restoregraph.core.timing import phase, timed
from restoregraph.imageio import load_image
from restoregraph.nodes.common import assess, carried_levels, emit, present_levels
from restoregraph.nodes.resources import get_store, run_context


@timed("perception")
def perception(state: RestoreState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    store = get_store(ctx)
    previous: dict[str, int] | None = None
    if "current" in state and state.get("current"):
        ref = state["current"]
        image = store.get(ref)
        update: dict[str, Any] = {}
        if ref != state.get("original"):  # an image made by steps: see carried_levels
            previous = dict(state.get("perception", {}))
    else:
        with phase("checkpoint_io"):
            image = load_image(state["image"], max_pixels=ctx.max_pixels)
        ref = store.put(image)
        update = {"original": ref, "current": ref}
    result, quality = assess(ctx, image, ref["sha256"])
    levels = carried_levels(present_levels(result, ctx.presence_threshold), previous)
    emit("perception", present=levels, quality=quality)
    update.update(perception=levels, severity=result.severity, quality=quality)
    return update
