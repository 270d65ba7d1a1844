"""Small helpers shared by the nodes."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
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


QUALITY_MAX_PIXELS = 1 << 20  # above this, the quality score reads crops (bounded cost)
QUALITY_CROP = 512
ASSESS_CACHE = 16  # assessments kept per process, by image hash (chat and web reuse them)
# (hash, id(perceiver)) -> (perceiver, result, quality); holding the perceiver keeps its id unique
_assessed: OrderedDict[tuple[str, int], tuple[Any, PerceptionResult, float]] = OrderedDict()
_assess_lock = threading.Lock()


def quality_crops(image: np.ndarray, crop: int = QUALITY_CROP) -> list[np.ndarray]:
    """Native-resolution views the quality score reads: the whole image up to
    ``QUALITY_MAX_PIXELS``, else four ``crop``-pixel squares centred in the image's quarters
    (NR metrics look at pixel-level statistics: a downscale would hide noise and blocking)."""
    h, w = image.shape[:2]
    if h * w <= QUALITY_MAX_PIXELS:
        return [image]
    ch, cw = min(crop, h), min(crop, w)
    boxes = {
        (min(max(0, cy - ch // 2), h - ch), min(max(0, cx - cw // 2), w - cw))
        for cy in (h // 4, 3 * h // 4)
        for cx in (w // 4, 3 * w // 4)
    }
    return [image[y : y + ch, x : x + cw] for y, x in sorted(boxes)]


def bounded_quality(image: np.ndarray) -> float:
    """``restoregraph.metrics.quality_score`` at a bounded cost: its mean over
    ``quality_crops`` (the whole image when it is at most ``QUALITY_MAX_PIXELS``)."""
    from restoregraph.metrics import quality_score

    return float(np.mean([quality_score(c) for c in quality_crops(image)]))


def assess(
    ctx: RunContext, image: np.ndarray, key: str | None = None
) -> tuple[PerceptionResult, float]:
    """Perception result and no-reference quality (higher is better) of an image.

    ``key`` (the image's store hash) caches the answer per process for this perceiver: the
    same image state is assessed once (a chat's next message starts from the last result)."""
    perceiver = get_perceiver(ctx)
    cache_key = (key, id(perceiver)) if key else None
    if cache_key is not None:
        with _assess_lock:
            hit = _assessed.get(cache_key)
            if hit is not None and hit[0] is perceiver:
                _assessed.move_to_end(cache_key)
                return copy.deepcopy(hit[1]), hit[2]
    result = perceiver.perceive(image)
    answer = (result, bounded_quality(image))
    if cache_key is not None:
        with _assess_lock:
            _assessed[cache_key] = (perceiver, copy.deepcopy(result), answer[1])
            while len(_assessed) > ASSESS_CACHE:
                _assessed.popitem(last=False)
    return answer


def present_levels(result: PerceptionResult, threshold: int) -> dict[str, int]:
    return {t: lvl for t, lvl in result.levels.items() if lvl >= threshold}


# Degradations no restoration step can introduce: read after a step that the previous reading
# did not have, they are the step's side effect misread (a denoiser's or brightener's smoothing
# read as a low resolution), which the matching tool would not undo (upscaling a full-resolution
# photo only makes it bigger). They are kept only while the image had them all along.
NOT_INTRODUCED_BY_STEPS = ("low_resolution",)


def carried_levels(levels: dict[str, int], previous: dict[str, int] | None) -> dict[str, int]:
    """``levels`` of an image made by restoration steps, without the types of
    ``NOT_INTRODUCED_BY_STEPS`` that ``previous`` (the reading before, None: the input) did not
    report."""
    if previous is None:
        return levels
    return {
        t: lvl for t, lvl in levels.items() if t not in NOT_INTRODUCED_BY_STEPS or t in previous
    }
