"""The gradio page's event handlers and rendering (``restoregraph.web.app`` lays them out).

The logic is ``restoregraph.web.session.Workspace``; here a workspace's views become gradio
updates, and a run streams its progress to the page. Like ``restoregraph.web.app``, import this
module only after ``restoregraph.web.server.prepare_environment`` (gradio's privacy settings).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from restoregraph.core.errors import RestoreGraphError
from restoregraph.web.progress import ProgressLog, _md
from restoregraph.web.session import Conversation, Reply, RunView, Workspace

log = logging.getLogger("restoregraph.web")

KEEP_VIEW = 6  # the view outputs: compare, gallery, steps, undo_to, undo, download


def error_text(exc: BaseException) -> str:
    """A one-line message for the page; never a traceback (that goes to the server log)."""
    if isinstance(exc, RestoreGraphError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller image"
    log.error("internal error in the web app", exc_info=exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error ({type(exc).__name__}: {first}); the server log has the details"


def status_error(message: str) -> str:
    return f'<p class="rg-error" role="alert">⚠ Error: {_md(message)}</p>'


def _run_streaming(
    call: Callable[[Callable[[dict[str, Any]], None]], Reply], progress: ProgressLog
) -> Iterator[Reply | BaseException | None]:
    """Run ``call(on_event)`` in a thread; yield None after each event, then the outcome."""
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    outcome: dict[str, Reply | BaseException] = {}

    def target() -> None:
        try:
            outcome["value"] = call(events.put)
        except BaseException as exc:  # reported on the page, never raised into gradio
            outcome["value"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=target, name="restoregraph-web-run", daemon=True)
    thread.start()
    while (ev := events.get()) is not None:
        progress(ev)
        yield None
    thread.join()
    yield outcome["value"]


def _forget_upload(file_path: str) -> None:
    """Delete gradio's temporary copy of an upload: the stored copy is in the run directory."""
    from gradio.utils import get_upload_folder

    path = Path(file_path).resolve()
    folder = Path(get_upload_folder()).resolve()
    if folder not in path.parents:
        return
    try:
        path.unlink(missing_ok=True)
        if path.parent != folder:
            path.parent.rmdir()
    except OSError:
        pass


def session_of(request: gr.Request | None) -> str:
    """The browser session of a request (the cookie ``restoregraph.web.guard`` sets)."""
    from restoregraph.web.guard import session_from_cookies

    if request is None:
        return ""
    try:
        cookies = dict(request.cookies)
    except (AttributeError, TypeError):
        return ""
    return session_from_cookies(cookies)


def _download_copy(conv: Conversation, result: Path) -> str:
    """A copy of ``result`` in gradio's upload folder, which gradio serves: the run directories
    are not served (only ``/runs/<id>/...`` to the session that made the run). The folder is
    named after the conversation's random id, which never leaves the server."""
    from gradio.utils import get_upload_folder

    dest = Path(get_upload_folder()) / "restoregraph-downloads" / conv.id / "restored.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".part")
    shutil.copyfile(result, part)
    part.replace(dest)
    return str(dest)


def steps_markdown(view: RunView | None) -> str:
    """The table of steps (tool, decision, why) of ``view``, with its run id and stop reason."""
    if view is None:
        return "_No steps yet._"
    rows = ["| # | tool | decision | why |", "|---|---|---|---|"]
    for s in view.steps:
        rows.append(f"| {s.index} | `{s.tool}` | {s.status.replace('_', ' ')} | {_md(s.reason)} |")
    if not view.steps:
        rows.append("| – | – | no steps on this branch | the input is the current image |")
    text = "\n".join(rows)
    text += f"\n\n**run:** `{view.run_id}` · **stop:** {_md(view.stop_text or '–')}"
    text += f" · [report](runs/{view.run_id}/report.html)"
    for a in view.abandoned:
        text += f"\n\n**abandoned branch:** {_md(a)}"
    return text


def _keep() -> tuple[Any, ...]:
    """No change to the view outputs."""
    return (gr.update(),) * KEEP_VIEW


class Handlers:
    """The page's event handlers for one server's workspace (every tab: its own conversation).

    Outputs: ``on_upload`` -> (conversation id, status, chat, progress, *view, upload);
    ``on_send`` / ``on_undo`` -> (chat, message, progress, status, *view); ``on_select`` ->
    compare; the view is (compare, gallery, steps, undo_to, undo_btn, download)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def conv_of(self, conv_id: str | None) -> Conversation:
        return self.workspace.conversation(conv_id)

    # ---- rendering ------------------------------------------------------------------------
    def _render_input(self, conv: Conversation) -> tuple[Any, ...]:
        """The view of a conversation with no run yet: the input, no steps."""
        from restoregraph.imageio import load_image, to_uint8

        image = to_uint8(load_image(conv.input_path))
        return (
            (image, image),
            [(image, "0. input")],
            steps_markdown(None),
            gr.update(choices=[("0: the input", 0)], value=0),
            gr.update(interactive=False),
            gr.update(value=None, interactive=False),
        )

    def render(self, conv: Conversation) -> tuple[Any, ...]:
        """Updates for (compare, gallery, steps, undo_to, undo_btn, download)."""
        workspace = self.workspace
        view = workspace.view(conv)
        if view is None or view.original is None:
            return self._render_input(conv)
        original = workspace.preview(view.original)
        current = workspace.preview(view.current or view.original)
        items: list[tuple[Any, str]] = [(original, "0. input")]
        for s in view.steps:
            if s.after is not None:
                items.append((workspace.preview(s.after), s.caption))
        choices = [("0: the input", 0)] + [
            (f"{i}: after {s.tool}", i) for i, s in enumerate(view.accepted, start=1)
        ]
        return (
            (original, current),
            items,
            steps_markdown(view),
            gr.update(choices=choices, value=len(view.accepted)),
            gr.update(interactive=True),
            gr.update(
                value=_download_copy(conv, view.result) if view.result else None,
                interactive=view.result is not None,
            ),
        )

    # ---- handlers -------------------------------------------------------------------------
    def on_upload(
        self, file_path: str | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        empty_chat: list[dict[str, str]] = []
        unchanged = _keep()
        if not file_path:
            return (None, "Upload a photo to start.", empty_chat, "", *unchanged, gr.update())
        try:
            conv = self.workspace.accept_upload(file_path, session=session_of(request))
        except BaseException as exc:  # the current conversation (if any) stays as it was
            return (
                gr.update(),
                status_error(f"upload refused: {error_text(exc)}"),
                gr.update(),
                gr.update(),
                *unchanged,
                gr.update(value=None),
            )
        finally:
            _forget_upload(file_path)
        h, w = conv.shape[:2]
        status = f"Photo loaded ({w}×{h} px). Tell me what to fix."
        return (conv.id, status, empty_chat, "", *self.render(conv), gr.update(value=None))

    def on_send(
        self, message: str, conv_id: str | None, chat: list[dict[str, str]]
    ) -> Iterator[Any]:
        chat = list(chat or [])
        keep = _keep()
        try:
            conv = self.conv_of(conv_id)
        except RestoreGraphError as exc:
            yield chat, message, "", status_error(str(exc)), *keep
            return
        if not message.strip():
            yield chat, "", "", status_error("type what you want, e.g. remove the grain"), *keep
            return
        chat.append({"role": "user", "content": message})
        progress = ProgressLog("Restoring")
        yield chat, "", progress.markdown(), "Working…", *keep
        outcome: Reply | BaseException | None = None
        for outcome in _run_streaming(
            lambda on_event: self.workspace.send(conv, message, on_event), progress
        ):
            if outcome is None:
                yield chat, "", progress.markdown(), "Working…", *keep
        yield from self._finish(conv, chat, progress, outcome)

    def on_undo(
        self, to_step: int | None, conv_id: str | None, chat: list[dict[str, str]]
    ) -> Iterator[Any]:
        chat = list(chat or [])
        keep = _keep()
        try:
            conv = self.conv_of(conv_id)
        except RestoreGraphError as exc:
            yield chat, gr.update(), "", status_error(str(exc)), *keep
            return
        step = int(to_step or 0)
        chat.append({"role": "user", "content": f"(undo to step {step})"})
        progress = ProgressLog(f"Undo to step {step}")
        yield chat, gr.update(), progress.markdown(), "Working…", *keep
        outcome: Reply | BaseException | None = None
        for outcome in _run_streaming(
            lambda on_event: self.workspace.undo(conv, step, on_event), progress
        ):
            if outcome is None:
                yield chat, gr.update(), progress.markdown(), "Working…", *keep
        yield from self._finish(conv, chat, progress, outcome, message_update=gr.update())

    def _finish(
        self,
        conv: Conversation,
        chat: list[dict[str, str]],
        progress: ProgressLog,
        outcome: Reply | BaseException | None,
        message_update: Any = "",
    ) -> Iterator[Any]:
        if isinstance(outcome, Reply):
            progress.finish(f"{outcome.seconds:.1f} s")
            chat.append({"role": "assistant", "content": outcome.text})
            status = f"Done in {outcome.seconds:.1f} s. Compare the steps on the right, undo, or download."
            try:
                rendered = self.render(conv)
            except BaseException as exc:
                yield (
                    chat,
                    message_update,
                    progress.markdown(),
                    status_error(error_text(exc)),
                    *_keep(),
                )
                return
            yield chat, message_update, progress.markdown(), status, *rendered
            return
        text = error_text(outcome) if outcome is not None else "the run ended without a result"
        progress.finish("failed")
        chat.append({"role": "assistant", "content": f"Sorry, that did not work: {text}"})
        yield chat, message_update, progress.markdown(), status_error(text), *_keep()

    def on_select(self, conv_id: str | None, evt: gr.SelectData) -> Any:
        workspace = self.workspace
        try:
            conv = self.conv_of(conv_id)
            view = workspace.view(conv)
        except BaseException:
            return gr.update()
        if view is None or view.original is None:
            return gr.update()
        shown = [s for s in view.steps if s.after is not None]
        index = int(evt.index) if isinstance(evt.index, int) else 0
        if index == 0 or index > len(shown):
            current = view.current or view.original
            return (workspace.preview(view.original), workspace.preview(current))
        step = shown[index - 1]
        assert step.after is not None
        return (workspace.preview(step.before), workspace.preview(step.after))
