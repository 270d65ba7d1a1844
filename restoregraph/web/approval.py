"""The approve/edit panel of the web app (``restore --approve`` for the browser).

With ``restoregraph serve --approve first|every`` a run stops at its plan; the panel shows the
plan and what perception saw, with the plan's tool ids in an editable box, and three buttons:
*Accept*, *Run edited plan* (the ids in the box, in order) and *Reject*. In chat mode the next
chat message answers too ("yes", "no", tool ids). Import only after
``restoregraph.web.server.prepare_environment`` (gradio), like ``restoregraph.web.handlers``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from restoregraph.core.errors import InputError, RestoreGraphError
from restoregraph.web.handlers import Handlers, _keep, _run_streaming, status_error
from restoregraph.web.progress import ProgressLog, _md
from restoregraph.web.session import Reply

ACTIONS = ("accept", "edit", "reject")


@dataclass
class ApprovalPanel:
    """The panel's components."""

    box: Any
    plan: Any
    tools: Any
    accept: Any
    edit: Any
    reject: Any

    @property
    def outputs(self) -> list[Any]:
        """What :func:`panel_update` updates, in its order."""
        return [self.box, self.plan, self.tools]


def build_panel() -> ApprovalPanel:
    """The panel (inside an open ``gr.Blocks``), hidden until a plan waits."""
    with gr.Group(visible=False, elem_id="approval") as box:
        plan = gr.Markdown("", elem_id="approval-plan")
        tools = gr.Textbox(
            label="Tools to run, in order (edit the ids to change the plan)",
            elem_id="approval-tools",
            lines=1,
            max_length=2000,
        )
        with gr.Row():
            accept = gr.Button("Accept", variant="primary", elem_id="approval-accept")
            edit = gr.Button("Run edited plan", elem_id="approval-edit")
            reject = gr.Button("Reject", variant="stop", elem_id="approval-reject")
    return ApprovalPanel(box, plan, tools, accept, edit, reject)


def plan_markdown(request: dict[str, Any]) -> str:
    plan = " → ".join(f"`{s['tool']}`" for s in request.get("plan", []))
    seen = ", ".join(f"{k} {v}" for k, v in request.get("perception", {}).items()) or "nothing"
    text = (
        f"**Plan to approve** (round {request.get('round')}): {plan}\n\n**Perceived:** {_md(seen)}"
    )
    if request.get("note"):
        text += f"\n\n_{_md(request['note'])}_"
    text += f"\n\n<details><summary>tools</summary>{', '.join(request.get('tools', []))}</details>"
    return text


def panel_update(handlers: Handlers, conv_id: str | None) -> tuple[Any, Any, Any]:
    """Show the panel with the waiting plan, or hide it."""
    try:
        request = handlers.workspace.approval(handlers.conv_of(conv_id))
    except BaseException:
        request = None
    if request is None:
        return gr.update(visible=False), gr.update(value=""), gr.update(value="")
    tools = ", ".join(s["tool"] for s in request.get("plan", []))
    return gr.update(visible=True), gr.update(value=plan_markdown(request)), gr.update(value=tools)


def answer_of(action: str, tools_text: str) -> Any:
    """The resume value of a button: accept, edit (the ids in the box) or reject."""
    if action == "accept":
        return True
    if action == "reject":
        return {"action": "reject"}
    ids = [t for t in re.split(r"[\s,;→>]+", tools_text or "") if t]
    if not ids:
        raise InputError("type at least one tool id to run, or reject the plan")
    return {"action": "edit", "plan": ids}


def on_approve(
    handlers: Handlers,
    action: str,
    tools_text: str,
    conv_id: str | None,
    chat: list[dict[str, str]],
) -> Iterator[Any]:
    """Like ``Handlers.on_undo``: outputs (chat, message, progress, status, *view)."""
    chat = list(chat or [])
    keep = _keep()
    try:
        conv = handlers.conv_of(conv_id)
        answer = answer_of(action, tools_text)
    except RestoreGraphError as exc:
        yield chat, gr.update(), "", status_error(str(exc)), *keep
        return
    label = {"accept": "accept the plan", "reject": "reject the plan"}.get(action)
    chat.append({"role": "user", "content": f"({label or 'run: ' + tools_text.strip()})"})
    progress = ProgressLog("Running the plan" if action != "reject" else "Rejecting the plan")
    yield chat, gr.update(), progress.markdown(), "Working…", *keep
    outcome: Reply | BaseException | None = None
    for outcome in _run_streaming(
        lambda on_event: handlers.workspace.approve(conv, answer, on_event), progress
    ):
        if outcome is None:
            yield chat, gr.update(), progress.markdown(), "Working…", *keep
    yield from handlers._finish(conv, chat, progress, outcome, message_update=gr.update())


def wire_panel(
    panel: ApprovalPanel,
    handlers: Handlers,
    conv_state: Any,
    chatbot: Any,
    chat_outputs: list[Any],
    after: list[Any],
) -> None:
    """Connect the buttons; refresh the panel after each of ``after`` (the events that may
    leave a plan waiting: send, undo) and after every answer."""

    def refresh(conv_id: str | None) -> tuple[Any, Any, Any]:
        return panel_update(handlers, conv_id)

    def answer(action: str) -> Any:
        def run(tools: str, conv_id: str | None, chat: list[dict[str, str]]) -> Iterator[Any]:
            yield from on_approve(handlers, action, tools, conv_id, chat)

        return run

    events = list(after)
    for button, action in (
        (panel.accept, "accept"),
        (panel.edit, "edit"),
        (panel.reject, "reject"),
    ):
        events.append(
            button.click(
                answer(action),
                inputs=[panel.tools, conv_state, chatbot],
                outputs=chat_outputs,
                show_progress="hidden",
            )
        )
    for event in events:
        event.then(refresh, inputs=[conv_state], outputs=panel.outputs, show_progress="hidden")
