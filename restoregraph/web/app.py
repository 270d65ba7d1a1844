"""The gradio page: upload, chat, live plan, step gallery with before/after, undo, download.

Only layout and wiring live here; the handlers are ``restoregraph.web.handlers`` and the logic
is ``restoregraph.web.session.Workspace``. Import this module only through
``restoregraph.web.serve`` / ``build_app``: gradio must be imported after its privacy settings
(no analytics, local cache directory) are in the environment, which
``restoregraph.web.server.prepare_environment`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from restoregraph.web.approval import build_panel, wire_panel
from restoregraph.web.handlers import Handlers, error_text, status_error
from restoregraph.web.session import Workspace, format_bytes

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


@dataclass
class Page:
    """The page's components that events read or update."""

    conv_state: Any
    upload: Any
    status: Any
    chatbot: Any
    message: Any
    send: Any
    progress: Any
    compare: Any
    gallery: Any
    undo_to: Any
    undo: Any
    download: Any
    steps: Any
    approval: Any = None  # restoregraph.web.approval.ApprovalPanel

    @property
    def view_outputs(self) -> list[Any]:
        """What :meth:`Handlers.render` updates, in its order."""
        return [self.compare, self.gallery, self.steps, self.undo_to, self.undo, self.download]


def _conversation_column(limit: str) -> dict[str, Any]:
    """The left column: upload, status, chat, message box, Send, progress."""
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
        approval = build_panel()  # the approve/edit panel, shown while a plan waits
    return {
        "approval": approval,
        "upload": upload,
        "status": status,
        "chatbot": chatbot,
        "message": message,
        "send": send,
        "progress": progress,
    }


def _result_column() -> dict[str, Any]:
    """The right column: before/after slider, step gallery, undo, download, steps table."""
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
    return {
        "compare": compare,
        "gallery": gallery,
        "undo_to": undo_to,
        "undo": undo,
        "download": download,
        "steps": steps,
    }


def _layout(limit: str) -> Page:
    """The page's components (inside an open ``gr.Blocks``)."""
    conv_state = gr.State(None)
    gr.Markdown("# RestoreGraph\n" + INTRO)
    with gr.Row():
        left = _conversation_column(limit)
        right = _result_column()
    return Page(conv_state=conv_state, **left, **right)


def _wire(page: Page, handlers: Handlers) -> None:
    """Connect the page's events to the handlers (inside the open ``gr.Blocks``)."""
    view_outputs = page.view_outputs
    page.upload.upload(
        handlers.on_upload,
        inputs=[page.upload],
        outputs=[
            page.conv_state,
            page.status,
            page.chatbot,
            page.progress,
            *view_outputs,
            page.upload,
        ],
        show_progress="hidden",
    )
    chat_outputs = [page.chatbot, page.message, page.progress, page.status, *view_outputs]
    events = []
    for trigger in (page.send.click, page.message.submit):
        events.append(
            trigger(
                handlers.on_send,
                inputs=[page.message, page.conv_state, page.chatbot],
                outputs=chat_outputs,
                show_progress="hidden",
            )
        )
    events.append(
        page.undo.click(
            handlers.on_undo,
            inputs=[page.undo_to, page.conv_state, page.chatbot],
            outputs=chat_outputs,
            show_progress="hidden",
        )
    )
    if page.approval is not None:
        wire_panel(page.approval, handlers, page.conv_state, page.chatbot, chat_outputs, events)
    page.gallery.select(
        handlers.on_select,
        inputs=[page.conv_state],
        outputs=[page.compare],
        show_progress="hidden",
    )


def build_app(workspace: Workspace) -> gr.Blocks:
    """The page for one server; every tab gets its own conversation."""
    handlers = Handlers(workspace)
    with gr.Blocks(
        title="RestoreGraph", analytics_enabled=False, delete_cache=(3600, 86400)
    ) as demo:
        page = _layout(format_bytes(workspace.max_upload_bytes))
        _wire(page, handlers)
    return demo


__all__ = ["CSS", "INTRO", "Handlers", "Page", "build_app", "error_text", "status_error"]
