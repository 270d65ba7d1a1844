"""Execution: run the next plan step's tool on the current image, isolated.

An exception, a time-out, NaN/inf output or a wrong shape is a failed step (reflection rolls it
back), never a crashed run. A task the user asked for mildly (``RunContext.strength``) keeps
half of the tool's change (``apply_strength``).
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from restoregraph.core.errors import ToolError
from restoregraph.core.settings import RunContext
from restoregraph.core.state import RestoreState
from restoregraph.core.timing import timed, tool_run
from restoregraph.nodes.common import emit
from restoregraph.nodes.resources import get_registry, get_store, run_context
from restoregraph.store.images import quantise
from restoregraph.tools.run import run_tool
from restoregraph.tools.tiling import tile_progress

MILD_MIX = 0.5  # a mild step keeps this share of the tool's change
TILE_EVENT_EVERY_S = 0.5  # a long tiled tool reports its progress at most this often


def apply_strength(image: np.ndarray, out: np.ndarray, strength: int) -> np.ndarray:
    """A mild (strength 1) step moves only ``MILD_MIX`` of the way from the input to the tool's
    output ("brighten, but keep the mood"); normal and strong steps keep the output as it is.
    Tools that change the size (super-resolution) are never blended."""
    if strength != 1 or out.shape != image.shape:
        return out
    return (image + MILD_MIX * (out - image)).astype(np.float32)


def run_with_timeout(
    spec: Any, image: np.ndarray, timeout: float, *, owned: bool = False
) -> np.ndarray:
    """``run_tool`` in a daemon thread of its own, waited for at most ``timeout`` seconds.

    A Python thread cannot be killed: a tool that hangs keeps its thread, which is abandoned.
    One thread per call (not a fixed pool) means abandoned threads never make the next tools
    queue behind them and time out too; daemon threads do not keep the process alive.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    # the thread runs in a copy of this context: stream events (tile progress) reach the run
    context = contextvars.copy_context()
    started, cpu0 = time.perf_counter(), time.process_time()

    def target() -> None:
        try:
            with tile_progress(on_tiles):
                box["out"] = run_tool(spec, image, owned=owned)
        except BaseException as exc:  # handed to the caller below
            box["exc"] = exc
        finally:
            done.set()

    def on_tiles(n: int, total: int) -> None:
        now = time.perf_counter()
        if n < total and now - box.get("told", 0.0) < TILE_EVENT_EVERY_S:
            return
        box["told"] = now
        spent = now - started
        emit("tile", tool=spec.id, done=n, total=total, seconds=spent, eta=spent / n * (total - n))

    threading.Thread(
        target=context.run, args=(target,), name=f"rg-tool-{spec.id}", daemon=True
    ).start()
    finished = done.wait(timeout)
    megapixels = image.shape[0] * image.shape[1] / 1e6
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    tool_run(spec.id, seconds, cpu, megapixels, finished and "exc" not in box)
    if not finished:
        raise ToolError(f"{spec.id}: timed out after {timeout:g} s")
    if "exc" in box:
        raise box["exc"]
    out: np.ndarray = box["out"]
    return out


@timed("tools")
def execution(state: RestoreState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    store = get_store(ctx)
    plan = list(state.get("plan", []))
    step = plan.pop(0)
    index = len(state.get("history", [])) + 1
    emit("step_start", index=index, tool=step["tool"], task=step["task"])
    started = time.perf_counter()
    candidate = None
    error = ""
    # outside the try: a damaged or changed stored image (StoreError) stops the run, it is
    # not the tool's failure
    image = store.get(state["current"])
    try:
        spec = get_registry(ctx).get(step["tool"])
        strength = ctx.strength.get(step["task"], 2)
        # a mild step blends with the input afterwards; any other hands the image to the tool
        out = run_with_timeout(spec, image, ctx.tool_timeout, owned=strength != 1)
        # quantised, then the float images are dropped before the PNG is encoded (48 MP: the
        # encoder's peak no longer holds the input and the output, 1.15 GB of float32)
        pixels = quantise(apply_strength(image, out, strength))
        del image, out
        candidate = store.put_quantised(pixels)
    except Exception as exc:  # isolated: any failure is a failed step
        error = str(exc) or type(exc).__name__
    seconds = time.perf_counter() - started
    emit("step_end", index=index, tool=step["tool"], seconds=seconds, error=error)
    return {
        "plan": plan,
        "pending": step,
        "candidate": candidate,
        "pending_error": error,
        "pending_seconds": seconds,
    }
