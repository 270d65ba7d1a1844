"""``restore --approve first|every`` and ``resume`` on a run that waits for a plan approval.

On a terminal the plan is shown and the answer asked: ``[a]ccept``, ``[e]dit`` (then the tool
ids) or ``[r]eject``. Without a terminal (a pipe, a script) one answer is read per plan from
standard input, one line each: ``a``, ``e ID,ID,...`` or ``r [reason]``; when standard input
ends first the command stops with a one-line error and the run waits, checkpointed, for
``restoregraph resume RUN``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import click
from rich.console import Console

from restoregraph.core.errors import InputError, PlanError

EventFn = Callable[[dict[str, Any]], None]
ANSWERS = "a (accept), e ID,ID,... (edit), r [reason] (reject)"


def is_terminal() -> bool:
    return sys.stdin.isatty()


def show_request(console: Console, request: dict[str, Any]) -> None:
    perceived = ", ".join(f"{k} {v}" for k, v in request.get("perception", {}).items()) or "none"
    plan = " → ".join(s["tool"] for s in request.get("plan", []))
    console.print(f"[bold]plan to approve[/bold] (round {request.get('round')}): {plan}")
    console.print(f"  perceived: {perceived}")
    if request.get("note"):
        console.print(f"  [yellow]note: {request['note']}[/yellow]")
    if request.get("error"):
        console.print(f"  [red]{request['error']}[/red]")


def _read_line(run_id: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise InputError(
            f"--approve: run {run_id!r} waits for a plan approval and standard input ended; "
            f"answer {ANSWERS} on standard input, or run `restoregraph resume {run_id}` in a "
            "terminal"
        )
    return line


def ask(console: Console, request: dict[str, Any], registry: Any, run_id: str) -> Any:
    """The person's answer, checked against the run's toolbox (a wrong one is asked again)."""
    from restoregraph.nodes.approval import answer_from_text, parse_answer

    tty = is_terminal()
    while True:
        if tty:
            text = click.prompt("[a]ccept, [e]dit or [r]eject", default="a", err=True)
            if text.strip().lower() in ("e", "edit"):
                console.print(f"  tools: {', '.join(request.get('tools', []))}")
                text = "e " + click.prompt("tool ids, in order (comma separated)", err=True)
        else:
            text = _read_line(run_id)
        answer = answer_from_text(text)
        if answer is None:
            console.print(f"[red]not an answer: {text.strip()!r}; answer {ANSWERS}[/red]")
            continue
        try:
            parse_answer(answer, registry)
        except PlanError as exc:
            console.print(f"[red]{exc}[/red]")
            continue
        return answer


def until_approved(
    runner: Any,
    result: Any,
    console: Console,
    display: Callable[[], AbstractContextManager[EventFn]],
) -> Any:
    """Ask for every plan the run waits on and resume it, until it ends."""
    from restoregraph.nodes.resources import get_registry

    while result.approval is not None:
        registry = get_registry(runner.context_for(result.run_id))
        show_request(console, result.approval)
        answer = ask(console, result.approval, registry, result.run_id)
        with display() as show:
            result = runner.approve(result.run_id, answer, on_event=show)
    return result
