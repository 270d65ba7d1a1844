"""The web app's logic, without any UI code: uploads, conversations, runs, undo, step views.

``Workspace`` is shared by every browser tab of one server; each tab has a ``Conversation``
(one uploaded photo and the runs made on it). Everything here is plain Python, so it is tested
without a browser (tests/test_web.py); ``restoregraph.web.app`` only lays it out in gradio.

Uploads:

* are refused above ``max_upload_bytes`` before a byte is copied;
* are copied under a generated name into ``<home>/runs/<run-id>/`` (the uploaded file's name is
  never used as a path; only an allow-listed extension is kept);
* are decoded with ``restoregraph.imageio.load_image``: a file that is not a usable image gives
  an ``InputError`` with a one-line message, and its run directory is removed again;
* count against their browser session's quota (``upload_quota_bytes``, with gradio's temporary
  copies that ``note_raw_upload`` records); an upload no message was sent about is deleted
  after ``unused_ttl_s`` (``sweep``).

A browser session (a cookie, ``restoregraph.web.guard``) sees only the runs it created:
``session_file`` serves their files, other run ids are unknown to it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError, RestoreGraphError
from restoregraph.core.settings import RunContext
from restoregraph.core.state import ImageRef, StepRecord
from restoregraph.imageio import load_image, save_image, to_uint8
from restoregraph.runner import Runner, pending_approval
from restoregraph.store.images import ImageStore

EventFn = Callable[[dict[str, Any]], None]

DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_UPLOAD_QUOTA_MB = 200.0  # per browser session: the uploads the server holds for it
DEFAULT_UNUSED_UPLOAD_MINUTES = 60.0  # an upload no message was sent about is deleted after this
PREVIEW_SIDE = 1600  # longest side of the images the page shows (the download is full size)
MAX_CONVERSATIONS = 200  # per server; the oldest are forgotten (their runs stay on disk)

# Extensions kept for a stored upload; anything else is stored as ".img" (Pillow reads by content).
UPLOAD_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def chat_session_available() -> bool:
    """Whether the chat router (``restoregraph.chat.session.ChatSession``) is installed."""
    try:
        return importlib.util.find_spec("restoregraph.chat.session") is not None
    except ImportError:
        return False


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@dataclass
class StepView:
    """One executed step as the page shows it."""

    index: int
    tool: str
    status: str
    reason: str
    before: ImageRef
    after: ImageRef | None

    @property
    def caption(self) -> str:
        return f"{self.index}. {self.tool} ({self.status.replace('_', ' ')})"


@dataclass
class RunView:
    """What the page shows of a conversation's current run."""

    run_id: str
    original: ImageRef | None
    current: ImageRef | None
    steps: list[StepView]
    accepted: list[StepView]
    stop_reason: str
    plan_text: str
    abandoned: list[str]
    result: Path | None
    finished: bool
    approval: dict[str, Any] | None = None  # the plan waiting for an answer (approve setting)
    perceived: dict[str, int] = field(default_factory=dict)  # degradation -> level, of `current`

    @property
    def stop_text(self) -> str:
        """Why the run stopped; on a branch with no accepted step (the input itself, e.g. after
        an undo to step 0) what was perceived in the input instead: nothing was restored, so a
        planner's "no remaining degradation" would be wrong there."""
        if self.accepted or self.current is None or self.current != self.original:
            return self.stop_reason
        present = [f"{k} (level {v})" for k, v in self.perceived.items() if v > 0]
        seen = ", ".join(present) if present else "no degradation"
        return f"nothing restored: this is the input; perceived in it: {seen}"


@dataclass
class Reply:
    text: str
    run_id: str | None  # None when nothing has run yet (a help answer)
    seconds: float
    approval: dict[str, Any] | None = None  # the plan waiting for an answer (approve setting)


@dataclass
class _Ledger:
    """What one browser session holds on the server: its stored uploads (run id -> bytes), gradio's
    temporary copies of its uploads not yet stored (path -> (time, bytes)), and its runs."""

    stored: dict[str, int] = field(default_factory=dict)
    raw: dict[Path, tuple[float, int]] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)


# The files of a run that its browser session may fetch (``/runs/<id>/<name>``).
SERVED_FILES = ("restored.png", "report.html", "run.json")


@dataclass
class Conversation:
    """One uploaded photo and the runs made on it (one browser tab)."""

    id: str
    input_path: Path
    run_id: str  # the first run's id; also the directory that holds the upload
    shape: tuple[int, ...]
    runs: list[str] = field(default_factory=list)  # runs made so far, the current one last
    chat: Any = None  # a restoregraph.chat.session.ChatSession once the first message is sent
    download_sha: str = ""  # the image restored.png holds
    session: str = ""  # the browser session (cookie) that uploaded it
    created: float = field(default_factory=time.monotonic)
    used: bool = False  # a message or an undo was sent: the upload is kept

    @property
    def current_run(self) -> str | None:
        return self.runs[-1] if self.runs else None


class Workspace:
    """Shared by every tab: the runner, the settings, the upload limit and the conversations."""

    def __init__(
        self,
        runner: Runner,
        settings: dict[str, Any] | None = None,
        *,
        max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024),
        use_chat: bool | None = None,
        upload_quota_bytes: int = int(DEFAULT_UPLOAD_QUOTA_MB * 1024 * 1024),
        unused_ttl_s: float = DEFAULT_UNUSED_UPLOAD_MINUTES * 60,
    ) -> None:
        self.runner = runner
        self.settings = dict(settings or {})
        RunContext(**self.settings)  # validate now, not on the first message
        self.max_upload_bytes = int(max_upload_bytes)
        self.use_chat = chat_session_available() if use_chat is None else use_chat
        self.lock = threading.RLock()  # one run at a time: the runner shares one SQLite connection
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._previews: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.upload_quota_bytes = int(upload_quota_bytes)
        self.unused_ttl_s = float(unused_ttl_s)
        self._ledgers: dict[str, _Ledger] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()  # conversations swept as unused
        self._uploads_lock = threading.RLock()  # the ledgers, the sweep, marking "used"

    # ---- uploads --------------------------------------------------------------------------
    def new_run_id(self) -> str:
        return f"web-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"

    def accept_upload(
        self, uploaded: str | os.PathLike[str], original_name: str = "", session: str = ""
    ) -> Conversation:
        """Validate an uploaded file and store it in a new run directory; start a conversation.

        ``uploaded`` is the server-side temporary file; ``original_name`` (the name the browser
        sent) only chooses an allow-listed extension and is never part of a path. ``session``
        (the browser session) is charged for it and is the only one that sees its run.
        """
        src = Path(uploaded)
        self.sweep()
        try:
            size = src.stat().st_size
        except OSError:
            raise InputError("the upload did not arrive; please try again") from None
        if size > self.max_upload_bytes:
            raise InputError(
                f"the file is too large ({format_bytes(size)}); the limit is "
                f"{format_bytes(self.max_upload_bytes)} (restoregraph serve --max-upload-mb)"
            )
        if size == 0:
            raise InputError("the file is empty (0 bytes); please upload a photo")
        self.check_quota(session, size, exclude=src)
        suffix = Path(original_name or src.name).suffix.lower()
        suffix = suffix if suffix in UPLOAD_SUFFIXES else ".img"
        run_id = self.new_run_id()
        run_dir = self.runner.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=False)
        dest = run_dir / f"input{suffix}"
        try:
            part = run_dir / "input.part"
            _copy_limited(src, part, self.max_upload_bytes)
            os.replace(part, dest)
            image = load_image(dest)
        except RestoreGraphError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise InputError(_without_path(str(exc), dest)) from None
        except OSError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise InputError(f"the upload could not be stored: {exc.strerror or exc}") from None
        conv = Conversation(
            id=secrets.token_hex(8),
            input_path=dest,
            run_id=run_id,
            shape=tuple(image.shape),
            session=session,
        )
        with self._uploads_lock:
            ledger = self._ledgers.setdefault(session, _Ledger())
            ledger.stored[run_id] = size
            ledger.runs.add(run_id)
            self._conversations[conv.id] = conv
            while len(self._conversations) > MAX_CONVERSATIONS:
                _, old = self._conversations.popitem(last=False)
                if not old.used:  # forgotten before any message: nothing can use it any more
                    self._remove_upload(old)
        return conv

    def conversation(self, conv_id: str | None) -> Conversation:
        conv = self._conversations.get(conv_id or "")
        if conv is None:
            if conv_id and conv_id in self._expired:
                minutes = self.unused_ttl_s / 60
                raise InputError(
                    f"this photo was deleted after {minutes:g} minutes without a message; "
                    "please upload it again"
                )
            raise InputError("upload a photo first")
        return conv

    # ---- per-session quota and cleanup ----------------------------------------------------
    def session_usage(self, session: str, exclude: Path | None = None) -> int:
        """Bytes the server holds for ``session``: its stored uploads and gradio's temporary
        copies of its uploads that still exist (``exclude``: the copy being stored now)."""
        with self._uploads_lock:
            ledger = self._ledgers.get(session)
            if ledger is None:
                return 0
            total = sum(ledger.stored.values())
            for path, (_, size) in list(ledger.raw.items()):
                if exclude is not None and path == exclude.resolve():
                    continue
                if path.exists():
                    total += size
                else:
                    del ledger.raw[path]
            return total

    def quota_error(self, session: str, incoming: int, exclude: Path | None = None) -> str | None:
        """Why ``incoming`` more bytes would take ``session`` over its quota (None: they fit)."""
        used = self.session_usage(session, exclude=exclude)
        if used + incoming <= self.upload_quota_bytes:
            return None
        return (
            f"upload quota reached: this browser session already has {format_bytes(used)} of "
            f"uploads on the server and the limit is {format_bytes(self.upload_quota_bytes)} "
            "(restoregraph serve --upload-quota-mb); uploads without a message are deleted "
            f"after {self.unused_ttl_s / 60:g} minutes"
        )

    def check_quota(self, session: str, size: int, exclude: Path | None = None) -> None:
        why = self.quota_error(session, size, exclude=exclude)
        if why is not None:
            raise InputError(why)

    def note_raw_upload(self, session: str, paths: list[Path]) -> None:
        """Charge ``session`` for gradio's temporary copies of its uploads (deleted once stored,
        or by ``sweep`` when never used)."""
        now = time.monotonic()
        with self._uploads_lock:
            ledger = self._ledgers.setdefault(session, _Ledger())
            for path in paths:
                try:
                    ledger.raw[path.resolve()] = (now, path.stat().st_size)
                except OSError:
                    continue

    def mark_used(self, conv: Conversation) -> None:
        """A message or an undo is about to run on ``conv``: keep its upload from now on."""
        with self._uploads_lock:
            if self._conversations.get(conv.id) is not conv:
                self.conversation(conv.id)  # raises: swept or forgotten
                raise InputError("upload a photo first")
            conv.used = True

    def sweep(self, now: float | None = None) -> int:
        """Delete the uploads older than ``unused_ttl_s`` that no message was sent about, and
        gradio's temporary copies of uploads never stored; return how many were deleted."""
        now = time.monotonic() if now is None else now
        deleted = 0
        with self._uploads_lock:
            for conv in list(self._conversations.values()):
                if not conv.used and now - conv.created > self.unused_ttl_s:
                    del self._conversations[conv.id]
                    self._expired[conv.id] = None
                    while len(self._expired) > 10 * MAX_CONVERSATIONS:
                        self._expired.popitem(last=False)
                    self._remove_upload(conv)
                    deleted += 1
            newest: dict[Path, float] = {}  # gradio names a copy by its content: shared paths
            for ledger in self._ledgers.values():
                for path, (when, _) in ledger.raw.items():
                    newest[path] = max(when, newest.get(path, when))
            for ledger in self._ledgers.values():
                for path, (when, _) in list(ledger.raw.items()):
                    if now - when > self.unused_ttl_s or not path.exists():
                        del ledger.raw[path]
                        if path.exists() and now - newest[path] > self.unused_ttl_s:
                            _remove_raw(path)
                            deleted += 1
        return deleted

    def _remove_upload(self, conv: Conversation) -> None:
        """Delete an unused upload's run directory (never one a run has written to)."""
        run_dir = conv.input_path.parent
        ledger = self._ledgers.get(conv.session)
        if ledger is not None:
            ledger.stored.pop(conv.run_id, None)
            ledger.runs.discard(conv.run_id)
        if (run_dir / "run.json").exists():
            return
        shutil.rmtree(run_dir, ignore_errors=True)

    # ---- the files a browser session may fetch --------------------------------------------
    def owns_run(self, session: str, run_id: str) -> bool:
        with self._uploads_lock:
            ledger = self._ledgers.get(session)
            return ledger is not None and run_id in ledger.runs

    def session_file(self, session: str, run_id: str, name: str) -> tuple[Path, bytes | None]:
        """The file ``name`` of run ``run_id`` if ``session`` created that run, else
        ``FileNotFoundError``: (its path, None), or (path, the text without the server's
        absolute paths) for ``run.json`` and ``report.html``."""
        if not session or not self.owns_run(session, run_id):
            raise FileNotFoundError(run_id)
        run_dir = self.runner.run_dir(run_id)
        inputs = [p.name for p in run_dir.glob("input.*") if p.suffix != ".part"]
        if name not in (*SERVED_FILES, *inputs):
            raise FileNotFoundError(name)
        path = run_dir / name
        if not path.is_file():
            raise FileNotFoundError(name)
        if name == "run.json":
            data = json.loads(path.read_text())
            clean = _relative_paths(data, self.runner.home.resolve())
            return path, json.dumps(clean, indent=2).encode()
        if name == "report.html":
            return path, _strip_home(path.read_text(), self.runner.home.resolve()).encode()
        return path, None

    # ---- conversation ---------------------------------------------------------------------
    def context(self) -> RunContext:
        return RunContext(**self.settings)

    def send(self, conv: Conversation, message: str, on_event: EventFn | None = None) -> Reply:
        """Act on a chat message: restore the photo, follow up on the result, undo, or answer."""
        message = " ".join(message.split())[:MAX_MESSAGE_CHARS]
        if not message:
            raise InputError("type what you want, for example: remove the grain")
        self.mark_used(conv)
        with self.lock:
            t0 = time.perf_counter()
            if self.use_chat:
                reply = self._chat(conv).send(message, on_event=on_event)
                self._note_run(conv, reply.run_id)
                text = reply.text
            else:
                text = self._send_runner(conv, message, on_event)
            return Reply(text, conv.current_run, time.perf_counter() - t0, self.approval(conv))

    def undo(self, conv: Conversation, to_step: int, on_event: EventFn | None = None) -> Reply:
        """Go back to the image after accepted step ``to_step`` (0 = the input)."""
        if conv.current_run is None:
            raise InputError("nothing to undo yet: send a message first")
        self.mark_used(conv)
        with self.lock:
            t0 = time.perf_counter()
            if self.use_chat:
                reply = self._chat(conv).undo(int(to_step), on_event=on_event)
                self._note_run(conv, reply.run_id)
                text = reply.text
            else:
                text = self._undo_runner(conv, int(to_step), on_event)
            return Reply(text, conv.current_run, time.perf_counter() - t0)

    def approval(self, conv: Conversation) -> dict[str, Any] | None:
        """The plan the conversation's run waits on (``approve`` first / every), or None."""
        run_id = conv.current_run
        return self.runner.approval_request(run_id) if run_id else None

    def approve(self, conv: Conversation, answer: Any, on_event: EventFn | None = None) -> Reply:
        """Answer the waiting plan (the approve/edit panel): ``True``, ``{"action": "edit",
        "plan": [tool ids]}`` or ``{"action": "reject"}`` (``restoregraph.nodes.approval``)."""
        with self.lock:
            if self.approval(conv) is None:
                raise InputError("no plan is waiting for an answer")
            t0 = time.perf_counter()
            if self.use_chat:
                reply = self._chat(conv).approve(answer, on_event=on_event)
                self._note_run(conv, reply.run_id)
                text = reply.text
            else:
                text = self._approve_runner(conv, answer, on_event)
            return Reply(text, conv.current_run, time.perf_counter() - t0, self.approval(conv))

    def _approve_runner(self, conv: Conversation, answer: Any, on_event: EventFn | None) -> str:
        from restoregraph.api import summarise
        from restoregraph.nodes.approval import parse_answer, question_text
        from restoregraph.nodes.resources import get_registry

        assert conv.current_run is not None
        ctx = self.runner.context_for(conv.current_run)
        action = parse_answer(answer, get_registry(ctx))[0]
        result = self.runner.approve(conv.current_run, answer, on_event=on_event)
        head = {"accept": "Plan accepted.", "edit": "Plan edited.", "reject": "Plan rejected."}
        text = f"{head[action]} {summarise(result)}"
        return f"{text} {question_text(result.approval)}" if result.approval else text

    def _chat(self, conv: Conversation) -> Any:
        """The conversation's ChatSession; its run is named after the upload's directory."""
        if conv.chat is None:
            from restoregraph.chat.session import ChatSession

            conv.chat = ChatSession(
                _RunNamed(self.runner, conv.run_id),  # type: ignore[arg-type]
                conv.input_path,
                **self.settings,
            )
        return conv.chat

    def _note_run(self, conv: Conversation, run_id: str | None) -> None:
        if run_id and conv.current_run != run_id:
            conv.runs.append(run_id)
            with self._uploads_lock:
                self._ledgers.setdefault(conv.session, _Ledger()).runs.add(run_id)

    def _send_runner(self, conv: Conversation, message: str, on_event: EventFn | None) -> str:
        """Without the chat router: the message is the run's instruction; a later message
        continues the run from its current result."""
        from restoregraph.api import summarise
        from restoregraph.nodes.approval import answer_from_text, question_text

        request = self.approval(conv)
        if request is not None:  # the message answers the waiting plan
            answer = answer_from_text(message)
            if answer is None:
                return "I need an answer to the plan first. " + question_text(request)
            return self._approve_runner(conv, answer, on_event)
        if conv.current_run is None:
            result = self.runner.start(
                conv.input_path,
                None,
                self.context(),
                run_id=conv.run_id,
                instruction=message,
                on_event=on_event,
            )
            conv.runs.append(result.run_id)
        else:
            result = self.runner.continue_run(
                conv.current_run, instruction=message, on_event=on_event
            )
        if result.approval is not None:
            return question_text(result.approval)
        return summarise(result)

    def _undo_runner(self, conv: Conversation, to_step: int, on_event: EventFn | None) -> str:
        from restoregraph.api import summarise

        assert conv.current_run is not None
        result = self.runner.undo(conv.current_run, to_step, on_event=on_event)
        undone = "; ".join(result.state.get("abandoned", [])[-1:])
        return f"Went back to step {to_step} ({undone}) and replanned. " + summarise(result)

    # ---- what the page shows --------------------------------------------------------------
    def view(self, conv: Conversation) -> RunView | None:
        """The current branch of the conversation's run; also writes the download file."""
        run_id = conv.current_run
        if run_id is None:
            return None
        with self.lock:
            snapshot = self.runner.graph.get_state(self.runner.config(run_id))
            state = dict(snapshot.values)
            result = self._download_file(conv, state.get("current"))
        history: list[StepRecord] = list(state.get("history", []))
        steps = [
            StepView(h["index"], h["tool"], h["status"], h["reason"], h["input"], h["output"])
            for h in history
        ]
        return RunView(
            run_id=run_id,
            original=state.get("original"),
            current=state.get("current"),
            steps=steps,
            accepted=[s for s in steps if s.status == "accepted"],
            stop_reason=str(state.get("stop_reason", "")),
            plan_text=str(state.get("plan_text", "")),
            abandoned=list(state.get("abandoned", [])),
            result=result,
            finished=not snapshot.next,
            approval=pending_approval(snapshot),
            perceived={str(k): int(v) for k, v in dict(state.get("perception") or {}).items()},
        )

    def _download_file(self, conv: Conversation, current: ImageRef | None) -> Path | None:
        """The current image as an 8-bit PNG in the run directory (rewritten when it changes)."""
        if current is None:
            return None
        path = conv.input_path.parent / "restored.png"
        if conv.download_sha != current["sha256"] or not path.exists():
            image = self._store().get(current)
            save_image(image, path, protect=(conv.input_path,), overwrite=True)
            conv.download_sha = current["sha256"]
        return path

    def _store(self) -> ImageStore:
        return ImageStore(self.context().store_dir or self.runner.store_dir)

    def preview(self, ref: ImageRef, side: int = PREVIEW_SIDE) -> np.ndarray:
        """An 8-bit RGB copy of a stored image, its longest side at most ``side`` pixels."""
        key = (ref["sha256"], side)
        cached = self._previews.get(key)
        if cached is not None:
            self._previews.move_to_end(key)
            return cached
        image = self._store().get(ref)
        h, w = image.shape[:2]
        if max(h, w) > side:
            from PIL import Image

            pil = Image.fromarray(to_uint8(image))
            pil.thumbnail((side, side), Image.Resampling.LANCZOS)
            arr = np.asarray(pil)
        else:
            arr = to_uint8(image)
        self._previews[key] = arr
        while len(self._previews) > 64:
            self._previews.popitem(last=False)
        return arr


MAX_MESSAGE_CHARS = 2000


class _RunNamed:
    """The runner as a ChatSession sees it: the run it starts gets the upload's run id, so the
    upload, the run's metadata, its report and the download share one directory."""

    def __init__(self, runner: Runner, run_id: str) -> None:
        self._runner = runner
        self._run_id = run_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def start(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("run_id"):
            kwargs["run_id"] = self._run_id
        return self._runner.start(*args, **kwargs)


def _copy_limited(src: Path, dest: Path, limit: int) -> None:
    """Copy ``src`` to ``dest``, refusing to write more than ``limit`` bytes."""
    copied = 0
    with src.open("rb") as fin, dest.open("wb") as fout:
        while chunk := fin.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                raise InputError(
                    f"the file is too large; the limit is {format_bytes(limit)} "
                    "(restoregraph serve --max-upload-mb)"
                )
            fout.write(chunk)


def _without_path(message: str, path: Path) -> str:
    """An imageio error message without the server-side path (the user never saw it)."""
    for prefix in (f"{path}: ", str(path)):
        message = message.replace(prefix, "")
    return message.strip() or "the file is not a usable image"


def _remove_raw(path: Path) -> None:
    """Delete gradio's temporary copy of an upload, and its folder when that is left empty."""
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass


def _relative_paths(value: Any, home: Path) -> Any:
    """``value`` (run.json) with every absolute path made relative to ``home``, or reduced to
    its file name when it lies outside ``home``."""
    if isinstance(value, dict):
        return {k: _relative_paths(v, home) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, home) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(value)
        try:
            return path.resolve().relative_to(home).as_posix()
        except ValueError:
            return path.name
    return value


def _strip_home(text: str, home: Path) -> str:
    """``text`` (report.html) without the home directory's absolute path."""
    import html

    for prefix in (str(home), html.escape(str(home))):
        text = text.replace(prefix + os.sep, "").replace(prefix, ".")
    return text
