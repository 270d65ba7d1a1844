"""The gradio page: upload, chat, live plan, step gallery with before/after, undo, download.

Only layout and wiring live here; the logic is ``restoregraph.web.session.Workspace``.
Import this module only through ``restoregraph.web.serve`` / ``build_app``: gradio must be
imported after its privacy settings (no analytics, local cache directory) are in the
environment, which ``restoregraph.web.server.prepare_environment`` does.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from restoregraph.core.errors import RestoreGraphError
from restoregraph.web.progress import ProgressLog, _md
from restoregraph.web.session import Conversation, Reply, RunView, Workspace, format_bytes

log = logging.getLogger("restoregraph.web")

CSS = """
#status p { margin: 0.2em 0; }
#status .rg-error { color: #b00020; font-weight: 600; }
#progress { min-height: 4em; }
#steps td:nth-child(3), #steps th:nth-child(3) { white-space: nowrap; }
footer { display: none !important; }
"""

INTRO = (
    "Upload a photo, then say what is wrong with it (for example *remove the grain*, "
    "*it is too dark*, or just *fix this photo*). The agent perceives the degradations, plans "
    "a sequence of restoration tools, runs them one by one and keeps only the steps that help."
)


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


def build_app(workspace: Workspace) -> gr.Blocks:
    """The page for one server; every tab gets its own conversation."""
    limit = format_bytes(workspace.max_upload_bytes)

    def conv_of(conv_id: str | None) -> Conversation:
        return workspace.conversation(conv_id)

    # ---- rendering ------------------------------------------------------------------------
    def steps_markdown(view: RunView | None) -> str:
        if view is None:
            return "_No steps yet._"
        rows = ["| # | tool | decision | why |", "|---|---|---|---|"]
        for s in view.steps:
            rows.append(
                f"| {s.index} | `{s.tool}` | {s.status.replace('_', ' ')} | {_md(s.reason)} |"
            )
        if not view.steps:
            rows.append("| – | – | no steps on this branch | the input is the current image |")
        text = "\n".join(rows)
        text += f"\n\n**run:** `{view.run_id}` · **stop:** {_md(view.stop_reason or '–')}"
        for a in view.abandoned:
            text += f"\n\n**abandoned branch:** {_md(a)}"
        return text

    def render(conv: Conversation) -> tuple[Any, ...]:
        """Updates for (compare, gallery, steps, undo_to, undo_btn, download)."""
        view = workspace.view(conv)
        if view is None or view.original is None:
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
                value=str(view.result) if view.result else None,
                interactive=view.result is not None,
            ),
        )

    # ---- handlers -------------------------------------------------------------------------
    def on_upload(file_path: str | None) -> tuple[Any, ...]:
        empty_chat: list[dict[str, str]] = []
        unchanged = (gr.update(),) * 6
        if not file_path:
            return (None, "Upload a photo to start.", empty_chat, "", *unchanged, gr.update())
        try:
            conv = workspace.accept_upload(file_path)
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
        return (conv.id, status, empty_chat, "", *render(conv), gr.update(value=None))

    def on_send(message: str, conv_id: str | None, chat: list[dict[str, str]]) -> Iterator[Any]:
        chat = list(chat or [])
        keep = (gr.update(),) * 6
        try:
            conv = conv_of(conv_id)
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
            lambda on_event: workspace.send(conv, message, on_event), progress
        ):
            if outcome is None:
                yield chat, "", progress.markdown(), "Working…", *keep
        yield from _finish(conv, chat, progress, outcome)

    def on_undo(
        to_step: int | None, conv_id: str | None, chat: list[dict[str, str]]
    ) -> Iterator[Any]:
        chat = list(chat or [])
        keep = (gr.update(),) * 6
        try:
            conv = conv_of(conv_id)
        except RestoreGraphError as exc:
            yield chat, gr.update(), "", status_error(str(exc)), *keep
            return
        step = int(to_step or 0)
        chat.append({"role": "user", "content": f"(undo to step {step})"})
        progress = ProgressLog(f"Undo to step {step}")
        yield chat, gr.update(), progress.markdown(), "Working…", *keep
        outcome: Reply | BaseException | None = None
        for outcome in _run_streaming(
            lambda on_event: workspace.undo(conv, step, on_event), progress
        ):
            if outcome is None:
                yield chat, gr.update(), progress.markdown(), "Working…", *keep
        yield from _finish(conv, chat, progress, outcome, message_update=gr.update())

    def _finish(
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
                rendered = render(conv)
            except BaseException as exc:
                yield (
                    chat,
                    message_update,
                    progress.markdown(),
                    status_error(error_text(exc)),
                    *((gr.update(),) * 6),
                )
                return
            yield chat, message_update, progress.markdown(), status, *rendered
            return
        text = error_text(outcome) if outcome is not None else "the run ended without a result"
        progress.finish("failed")
        chat.append({"role": "assistant", "content": f"Sorry, that did not work: {text}"})
        yield chat, message_update, progress.markdown(), status_error(text), *((gr.update(),) * 6)

    def on_select(conv_id: str | None, evt: gr.SelectData) -> Any:
        try:
            conv = conv_of(conv_id)
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

    # ---- layout ---------------------------------------------------------------------------
    with gr.Blocks(
        title="RestoreGraph", analytics_enabled=False, delete_cache=(3600, 86400)
    ) as demo:
        conv_state = gr.State(None)
        gr.Markdown("# RestoreGraph\n" + INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(
                    label=f"Photo (at most {limit})",
                    file_count="single",
                    type="filepath",
                    elem_id="upload",
                    height=120,
                )
                status = gr.Markdown("Upload a photo to start.", elem_id="status")
                chatbot = gr.Chatbot(label="Conversation", elem_id="chat", height=260)
                with gr.Row():
                    message = gr.Textbox(
                        placeholder="e.g. remove the grain",
                        show_label=False,
                        lines=1,
                        max_lines=4,
                        elem_id="message",
                        scale=4,
                        max_length=2000,
                    )
                    send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
                progress = gr.Markdown("", elem_id="progress")
            with gr.Column(scale=3):
                compare = gr.ImageSlider(
                    label="Before / after (drag the slider; pick a step below)",
                    type="numpy",
                    format="png",
                    elem_id="compare",
                    interactive=False,
                    max_height=520,
                )
                gallery = gr.Gallery(
                    label="Every step (click one to compare it with the image before it)",
                    format="png",
                    columns=5,
                    height=200,
                    allow_preview=False,
                    fit_columns=False,
                    elem_id="gallery",
                )
                with gr.Row():
                    undo_to = gr.Dropdown(
                        choices=[("0: the input", 0)],
                        value=0,
                        label="Undo: keep the accepted steps up to",
                        elem_id="undo-to",
                        scale=3,
                    )
                    undo = gr.Button("Undo", elem_id="undo", interactive=False, scale=1)
                    download = gr.DownloadButton(
                        "Download result", elem_id="download", interactive=False, scale=1
                    )
                steps = gr.Markdown("_No steps yet._", elem_id="steps")

        view_outputs = [compare, gallery, steps, undo_to, undo, download]
        upload.upload(
            on_upload,
            inputs=[upload],
            outputs=[conv_state, status, chatbot, progress, *view_outputs, upload],
            show_progress="hidden",
        )
        chat_outputs = [chatbot, message, progress, status, *view_outputs]
        send.click(
            on_send,
            inputs=[message, conv_state, chatbot],
            outputs=chat_outputs,
            show_progress="hidden",
        )
        message.submit(
            on_send,
            inputs=[message, conv_state, chatbot],
            outputs=chat_outputs,
            show_progress="hidden",
        )
        undo.click(
            on_undo,
            inputs=[undo_to, conv_state, chatbot],
            outputs=chat_outputs,
            show_progress="hidden",
        )
        gallery.select(on_select, inputs=[conv_state], outputs=[compare], show_progress="hidden")
    return demo


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
