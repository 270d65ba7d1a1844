"""Runs on disk: start, stream, resume, undo, history — one SQLite thread per image.

Layout under ``$RESTOREGRAPH_HOME`` (default ``~/.restoregraph``)::

    checkpoints.sqlite   every checkpoint of every run (one thread per run)
    store/               content-addressed images (never overwritten)
    runs/<run-id>/       run.json (input, output, settings), report.html

A home can be copied or moved: run.json records the image store relative to the home
(``META_FORMAT`` 2), and the store finds an image by its hash, whatever path a checkpoint
recorded. Homes written before (absolute or working-folder-relative ``store_dir``) still resume:
see ``Runner.store_dir_of``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from restoregraph.core.errors import InputError, OutputError, RestoreGraphError
from restoregraph.core.settings import RunContext, home_dir
from restoregraph.core.state import FailedAttempt, StepRecord
from restoregraph.graph.builder import RECURSION_LIMIT, compile_graph
from restoregraph.imageio import check_output_path, load_image, save_image
from restoregraph.nodes.approval import KIND as APPROVAL_KIND
from restoregraph.nodes.approval import parse_answer
from restoregraph.nodes.resources import get_registry
from restoregraph.store.checkpointer import make_checkpointer
from restoregraph.store.images import ImageStore

EventFn = Callable[[dict[str, Any]], None]
GC_GRACE_S = 600.0  # gc keeps unreferenced images younger than this (runs in progress)
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
META_FORMAT = 2  # run.json "format": 2 = settings.store_dir relative to the home when inside it


@dataclass
class RunResult:
    run_id: str
    state: dict[str, Any]
    output: Path | None
    report: Path | None
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)
    approval: dict[str, Any] | None = None
    """The plan waiting for a person (``RunContext.approve``): the approval interrupt's value
    (plan, perception, tools, error); answer it with ``Runner.approve``. None otherwise."""

    @property
    def history(self) -> list[StepRecord]:
        return list(self.state.get("history", []))


def pending_approval(snapshot: Any) -> dict[str, Any] | None:
    """The value of the approval interrupt a thread's latest checkpoint waits on, if any."""
    for item in getattr(snapshot, "interrupts", ()) or ():
        value = getattr(item, "value", None)
        if isinstance(value, dict) and value.get("kind") == APPROVAL_KIND:
            return value
    return None


def reached_end(snapshot: Any) -> bool:
    """Whether a thread's latest checkpoint is the end of the graph.

    ``snapshot.next`` alone is not enough: a process killed after a node saved its writes but
    before the next checkpoint leaves a task whose writes are pending, and ``next`` is then
    empty although the run is not finished (``stream(None)`` applies the writes and goes on).
    """
    return not snapshot.next and not snapshot.tasks


def undo_output_path(output: str | os.PathLike[str], to_step: int) -> Path:
    """Where ``undo --to STEP`` writes without ``-o``: ``<stem>.undo-<STEP><ext>`` beside the
    run's output, or ``<stem>.undo-<STEP>-<n><ext>`` for the first ``n`` not taken: an earlier
    file is never overwritten."""
    out = Path(output)
    for n in range(1, 1000):
        extra = f"-{n}" if n > 1 else ""
        candidate = out.with_name(f"{out.stem}.undo-{to_step}{extra}{out.suffix}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise OutputError(f"{out.parent}: too many undo outputs of {out.name}; choose one with -o")


def new_run_id(input_path: str | os.PathLike[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(input_path).stem)[:40].strip("-") or "image"
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}-{stem}"


class Runner:
    """Owns the home directory, the checkpointer and the compiled graph."""

    def __init__(self, home: str | os.PathLike[str] | None = None, checkpointer: str | None = None):
        # absolute (not resolved: symlinks kept), so nothing recorded depends on the
        # working folder
        self.home = Path(os.path.abspath(home if home else home_dir()))
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "runs").mkdir(exist_ok=True)
        self.checkpointer = make_checkpointer(checkpointer or self.home / "checkpoints.sqlite")
        self.graph = compile_graph(self.checkpointer)
        self.store_dir = str(self.home / "store")

    # ---- run metadata -------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        if not RUN_ID_RE.match(run_id):
            raise InputError(f"invalid run id {run_id!r}")
        return self.home / "runs" / run_id

    def meta(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / "run.json"
        if not path.exists():
            raise InputError(f"no run named {run_id!r} in {self.home / 'runs'}")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _write_meta(self, run_id: str, data: dict[str, Any]) -> None:
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "run.json.part"
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, d / "run.json")

    def list_runs(self) -> list[str]:
        return sorted(p.parent.name for p in (self.home / "runs").glob("*/run.json"))

    def store_dir_of(self, run_id: str, meta: dict[str, Any]) -> str:
        """The absolute image store of run ``run_id`` (its metadata ``meta``).

        Format 2 records it relative to the home when it is inside. Earlier homes recorded the
        path as given (absolute, or relative to the working folder of the time); such a path
        that is missing now, or that is the store of a home holding this run (the original of
        a copied home), means this home's store; any other existing folder is a store the
        caller chose and stays.
        """
        raw = str(meta.get("settings", {}).get("store_dir") or "")
        if not raw:
            return self.store_dir
        if meta.get("format", 1) >= META_FORMAT:
            return str(self.home / raw) if not os.path.isabs(raw) else raw
        old = Path(raw)
        if not old.is_dir():
            return self.store_dir
        if old.name == "store" and (old.parent / "runs" / run_id / "run.json").is_file():
            return self.store_dir
        return os.path.abspath(old)

    def _portable_settings(self, ctx: RunContext) -> dict[str, Any]:
        """``ctx.settings()`` with the store relative to the home when it is inside."""
        settings = ctx.settings()
        store = Path(os.path.abspath(settings["store_dir"] or self.store_dir))
        if store.is_relative_to(self.home):
            settings["store_dir"] = store.relative_to(self.home).as_posix() or "."
        return settings

    def context_for(self, run_id: str, **objects: Any) -> RunContext:
        meta = self.meta(run_id)
        ctx = RunContext.from_settings(meta["settings"])
        ctx.store_dir = self.store_dir_of(run_id, meta)
        for k, v in objects.items():
            setattr(ctx, k, v)
        return ctx

    @staticmethod
    def config(run_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": run_id}, "recursion_limit": RECURSION_LIMIT}

    # ---- running --------------------------------------------------------------------------
    def _stream(
        self,
        inp: Any,
        run_id: str,
        ctx: RunContext,
        on_event: EventFn | None,
        config: RunnableConfig | None = None,
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        # Test hooks: die like `kill -9` right after the N-th checkpointed step
        # (RESTOREGRAPH_CRASH_AFTER_STEPS), or at the N-th progress event, which can be in the
        # middle of a node, before its checkpoint is written (RESTOREGRAPH_CRASH_AT_EVENT).
        crash_after = int(os.environ.get("RESTOREGRAPH_CRASH_AFTER_STEPS", "0") or 0)
        crash_at_event = int(os.environ.get("RESTOREGRAPH_CRASH_AT_EVENT", "0") or 0)
        steps_done = 0
        stream: Iterator[Any] = self.graph.stream(
            inp,
            config or self.config(run_id),
            context=ctx,
            stream_mode="custom",
            durability="sync",
        )
        for chunk in stream:
            if isinstance(chunk, dict):
                events.append(chunk)
                if crash_at_event and len(events) >= crash_at_event:
                    os.kill(os.getpid(), signal.SIGKILL)
                if on_event is not None:
                    on_event(chunk)
                if chunk.get("event") == "reflection":
                    steps_done += 1
                    if crash_after and steps_done >= crash_after:
                        # Test hook: die like `kill -9` right after a checkpointed step.
                        os.kill(os.getpid(), signal.SIGKILL)
        return events

    def start(
        self,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str] | None,
        ctx: RunContext,
        *,
        run_id: str | None = None,
        instruction: str = "",
        overwrite: bool = False,
        on_event: EventFn | None = None,
    ) -> RunResult:
        src = Path(input_path)
        load_image(src, max_pixels=ctx.max_pixels)  # validate first: a clear error, nothing written
        out = None
        if output_path is not None:
            out = check_output_path(output_path, protect=(src,), overwrite=overwrite)
        run_id = run_id or new_run_id(src)
        if (self.run_dir(run_id) / "run.json").exists():
            raise InputError(f"run {run_id!r} already exists (use `resume` to continue it)")
        if not ctx.store_dir:
            ctx.store_dir = self.store_dir
        self._write_meta(
            run_id,
            {
                "run_id": run_id,
                "format": META_FORMAT,
                "input": str(src.resolve()),
                "output": str(out.resolve()) if out else None,
                "overwrite": overwrite,
                "instruction": instruction,
                "settings": self._portable_settings(ctx),
                "created": datetime.now(UTC).isoformat(),
            },
        )
        inp: dict[str, Any] = {"image": str(src.resolve())}
        if instruction:
            inp["instruction"] = instruction
        return self._run(run_id, inp, ctx, on_event)

    def _run(
        self,
        run_id: str,
        inp: Any,
        ctx: RunContext,
        on_event: EventFn | None,
        config: RunnableConfig | None = None,
    ) -> RunResult:
        t0 = time.perf_counter()
        events = self._stream(inp, run_id, ctx, on_event, config)
        return self.finish(run_id, ctx, events, time.perf_counter() - t0)

    def finish(
        self, run_id: str, ctx: RunContext, events: list[dict[str, Any]], seconds: float
    ) -> RunResult:
        snapshot = self.graph.get_state(self.config(run_id))
        state = dict(snapshot.values)
        meta = self.meta(run_id)
        store = ImageStore(ctx.store_dir or self.store_dir)
        out = None
        done = reached_end(snapshot)
        # an undo writes its branch's result to its own file (Runner.undo), never over the
        # run's earlier output
        target = meta.get("branch_output") or meta.get("output")
        if target and state.get("current") and done:
            image = store.get(state["current"])
            out = save_image(image, target, protect=(meta["input"],), overwrite=True)
            del image  # the report reads small previews; a 48 MP float image is 576 MB
        from restoregraph.report import write_report

        report = write_report(
            self.run_dir(run_id) / "report.html", run_id, meta, state, store, events=events
        )
        meta["finished"] = done
        self._write_meta(run_id, meta)
        approval = pending_approval(snapshot)
        return RunResult(run_id, state, out, report, seconds, events, approval)

    def resume(self, run_id: str, on_event: EventFn | None = None, **objects: Any) -> RunResult:
        ctx = self.context_for(run_id, **objects)
        snapshot = self.graph.get_state(self.config(run_id))
        if not snapshot.values:
            meta = self.meta(run_id)
            inp: dict[str, Any] = {"image": meta["input"]}
            if meta.get("instruction"):
                inp["instruction"] = meta["instruction"]
            return self._run(run_id, inp, ctx, on_event)
        if reached_end(snapshot) or pending_approval(snapshot) is not None:
            return self.finish(run_id, ctx, [], 0.0)  # finished, or waiting for `approve`
        return self._run(run_id, None, ctx, on_event)

    def approval_request(self, run_id: str) -> dict[str, Any] | None:
        """The plan run ``run_id`` waits on (the approval interrupt's value), or None."""
        self.meta(run_id)
        return pending_approval(self.graph.get_state(self.config(run_id)))

    def approve(
        self, run_id: str, answer: Any, on_event: EventFn | None = None, **objects: Any
    ) -> RunResult:
        """Answer the plan run ``run_id`` waits on (``RunResult.approval``) and go on: accept
        (``True``), edit (``{"action": "edit", "plan": [tool ids]}``) or reject
        (``{"action": "reject", "reason": ...}``); see ``restoregraph.nodes.approval``. The
        thread resumes with ``Command(resume=answer)``; a wrong answer is a ``PlanError`` and
        nothing runs."""
        ctx = self.context_for(run_id, **objects)
        snapshot = self.graph.get_state(self.config(run_id))
        if pending_approval(snapshot) is None:
            raise InputError(f"run {run_id!r} is not waiting for a plan approval")
        parse_answer(answer, get_registry(ctx))  # a clear error now, not a silent re-ask
        return self._run(run_id, Command(resume=answer), ctx, on_event)

    # ---- time travel ----------------------------------------------------------------------
    def state(self, run_id: str) -> dict[str, Any]:
        self.meta(run_id)
        return dict(self.graph.get_state(self.config(run_id)).values)

    def history(self, run_id: str) -> list[StepRecord]:
        return list(self.state(run_id).get("history", []))

    def branches(self, run_id: str) -> list[list[StepRecord]]:
        """Every final step list reachable in the thread (the current branch first)."""
        seen: list[list[StepRecord]] = []
        keys: set[tuple[str, ...]] = set()
        for snap in self.graph.get_state_history(self.config(run_id)):
            hist = list(snap.values.get("history", []))
            key = tuple(f"{h['tool']}:{h['status']}" for h in hist)
            if not any(k[: len(key)] == key for k in keys):
                keys.add(key)
                seen.append(hist)
        return seen

    def branch(self, run_id: str) -> list[Any]:
        """The checkpoints of the current branch, newest first. An undo forks the thread: the
        old branch's checkpoints stay in it but are not ancestors of the head."""
        snaps = list(self.graph.get_state_history(self.config(run_id)))
        by_id = {s.config["configurable"]["checkpoint_id"]: s for s in snaps}
        chain = []
        snap = snaps[0] if snaps else None
        while snap is not None:
            chain.append(snap)
            parent = snap.parent_config
            snap = by_id.get(parent["configurable"]["checkpoint_id"]) if parent else None
        return chain

    def continue_run(
        self, run_id: str, instruction: str = "", on_event: EventFn | None = None, **objects: Any
    ) -> RunResult:
        """Plan again from a finished run's current image, with settings overridden by
        ``objects`` (a chat follow-up such as "now remove the grain"); earlier steps stay."""
        ctx = self.context_for(run_id, **objects)
        head = self.graph.get_state(self.config(run_id))
        if not head.values:
            raise InputError(f"run {run_id!r} has no checkpoint to continue from")
        if not reached_end(head):
            raise InputError(f"run {run_id!r} is not finished; resume it first")
        update: dict[str, Any] = {"plan": [], "stop_reason": ""}
        if instruction:
            update["instruction"] = instruction
        if ctx.approve != "off":
            update["approved_round"] = 0  # a new request: approve="first" asks again
        new_config = self.graph.update_state(head.config, update, as_node="perception")
        t0 = time.perf_counter()
        events = self._stream(None, run_id, ctx, on_event, config=new_config)
        return self.finish(run_id, ctx, events, time.perf_counter() - t0)

    def undo(
        self,
        run_id: str,
        to_step: int,
        on_event: EventFn | None = None,
        *,
        forbid_undone: bool = True,
        output: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        **objects: Any,
    ) -> RunResult:
        """Fork from the image after accepted step ``to_step`` (0 = the input) and replan.

        The first undone tool is not retried at that point unless ``forbid_undone`` is false
        (a chat "less sharpening" redoes the same tool, milder). ``objects`` override settings.

        The new result goes to ``output`` (an existing file only with ``overwrite``); without
        it, when the run has an output file, to ``undo_output_path`` beside it (``restored.
        undo-1.png``): the run's earlier output is never overwritten. Checked before anything
        runs (``OutputError``).
        """
        ctx = self.context_for(run_id, **objects)
        current = self.history(run_id)
        accepted = [h for h in current if h["status"] == "accepted"]
        if to_step < 0 or to_step > len(accepted):
            raise InputError(f"--to must be within 0..{len(accepted)} (accepted steps of {run_id})")
        target_len = accepted[to_step - 1]["index"] if to_step else 0
        fork = None
        for snap in self.branch(run_id):
            hist = snap.values.get("history", [])
            if len(hist) == target_len and snap.next in (("rescheduling",), ("planning",)):
                fork = snap
        if fork is None:
            raise RestoreGraphError(f"no checkpoint found after step {to_step} of {run_id}")
        meta = self.meta(run_id)
        if output is not None:
            out: Path | None = check_output_path(
                output, protect=(meta["input"],), overwrite=overwrite
            )
        elif meta.get("output"):
            out = check_output_path(undo_output_path(meta["output"], to_step))
        else:
            out = None
        if out is not None or meta.get("branch_output"):
            meta["branch_output"] = str(out.resolve()) if out is not None else None
            self._write_meta(run_id, meta)
        undone = [h for h in current[target_len:] if h["status"] == "accepted"]
        summary = f"user undid steps after {to_step}: " + (
            ", ".join(h["tool"] for h in undone) or "nothing accepted"
        )
        values = dict(fork.values)
        update: dict[str, Any] = {
            "plan": [],
            "abandoned": list(values.get("abandoned", [])) + [summary],
        }
        if undone and forbid_undone:
            update["failed"] = [
                FailedAttempt(tool=undone[0]["tool"], position=to_step, reason="undone by the user")
            ]
        if ctx.approve != "off":
            update["approved_round"] = 0  # a new request: approve="first" asks again
        new_config = self.graph.update_state(fork.config, update, as_node="perception")
        t0 = time.perf_counter()
        events = self._stream(None, run_id, ctx, on_event, config=new_config)
        return self.finish(run_id, ctx, events, time.perf_counter() - t0)

    # ---- housekeeping ---------------------------------------------------------------------
    def referenced_images(self) -> set[str]:
        """Hashes of every image any checkpoint of any run points to."""
        keep: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                if "sha256" in value and "uri" in value:
                    keep.add(str(value["sha256"]))
                for v in value.values():
                    walk(v)
            elif isinstance(value, list | tuple):
                for v in value:
                    walk(v)

        for tup in self.checkpointer.list(None):
            walk(tup.checkpoint.get("channel_values", {}))
        return keep

    def collect_garbage(self, min_age_s: float = GC_GRACE_S) -> int:
        """Delete stored images that no checkpoint references and that are older than
        ``min_age_s`` (so a run in progress keeps the image it has just written but not yet
        checkpointed); return how many were removed."""
        store = ImageStore(self.store_dir)
        return store.collect_garbage(self.referenced_images(), min_age_s=min_age_s)
