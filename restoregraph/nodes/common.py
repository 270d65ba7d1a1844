"""Small helpers shared by the nodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from restoregraph.core.settings import RunContext
from restoregraph.nodes.resources import get_perceiver
from restoregraph.perception.base import PerceptionResult


def emit(event: str, **data: Any) -> None:
    """Send a custom stream event (``stream_mode="custom"``); a no-op outside a stream."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except Exception:
        return
    writer({"event": event, **data})


def assess(ctx: RunContext, image: np.ndarray) -> tuple[PerceptionResult, float]:
    """Perception result and no-reference quality (higher is better) of an image."""
    from restoregraph.metrics import quality_score

    result = get_perceiver(ctx).perceive(image)
    return result, float(quality_score(image))


def present_levels(result: PerceptionResult, threshold: int) -> dict[str, int]:
    return {t: lvl for t, lvl in result.levels.items() if lvl >= threshold}
