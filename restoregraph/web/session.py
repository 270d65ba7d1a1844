"""The web app's logic, without any UI code: uploads, conversations, runs, undo, step views.

``Workspace`` is shared by every browser tab of one server; each tab has a ``Conversation``
(one uploaded photo and the runs made on it). Everything here is plain Python, so it is tested
without a browser (tests/test_web.py); ``restoregraph.web.app`` only lays it out in gradio.

Uploads:

* are refused above ``max_upload_bytes`` before a byte is copied;
* are copied under a generated name into ``<home>/runs/<run-id>/`` (the uploaded file's name is
  never used as a path; only an allow-listed extension is kept);
* are decoded with ``restoregraph.imageio.load_image``: a file that is not a usable image gives
  an ``InputError`` with a one-line message, and its run directory is removed again.
"""

from __future__ import annotations

import importlib.util
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


@dataclass
class Reply:
    text: str
    run_id: str | None  # None when nothing has run yet (a help answer)
    seconds: float
    approval: dict[str, Any] | None = None  # the plan waiting for an answer (approve setting)


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
    ) -> None:
        self.runner = runner
        self.settings = dict(settings or {})
        RunContext(**self.settings)  # validate now, not on the first message
        self.max_upload_bytes = int(max_upload_bytes)
        self.use_chat = chat_session_available() if use_chat is None else use_chat
        self.lock = threading.RLock()  # one run at a time: the runner shares one SQLite connection
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._previews: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    # ---- uploads --------------------------------------------------------------------------
    def new_run_id(self) -> str:
        return f"web-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"

    def accept_upload(
        self, uploaded: str | os.PathLike[str], original_name: str = ""
    ) -> Conversation:
        """Validate an uploaded file and store it in a new run directory; start a conversation.

        ``uploaded`` is the server-side temporary file; ``original_name`` (the name the browser
        sent) only chooses an allow-listed extension and is never part of a path.
        """
        src = Path(uploaded)
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
            id=secrets.token_hex(8), input_path=dest, run_id=run_id, shape=tuple(image.shape)
        )
        with self.lock:
            self._conversations[conv.id] = conv
            while len(self._conversations) > MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
        return conv

    def conversation(self, conv_id: str | None) -> Conversation:
        conv = self._conversations.get(conv_id or "")
        if conv is None:
            raise InputError("upload a photo first")
        return conv

    # ---- conversation ---------------------------------------------------------------------
    def context(self) -> RunContext:
        return RunContext(**self.settings)

    def send(self, conv: Conversation, message: str, on_event: EventFn | None = None) -> Reply:
        """Act on a chat message: restore the photo, follow up on the result, undo, or answer."""
        message = " ".join(message.split())[:MAX_MESSAGE_CHARS]
        if not message:
            raise InputError("type what you want, for example: remove the grain")
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

    @staticmethod
    def _note_run(conv: Conversation, run_id: str | None) -> None:
        if run_id and conv.current_run != run_id:
            conv.runs.append(run_id)

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
