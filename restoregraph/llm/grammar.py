"""Constrained decoding over the plan grammar: only answers ``parse_plan`` accepts can be generated.

Grammar (the template of ``restoregraph.planners.base.format_plan``)::

    plan := "Stop." | step (" " step)*
    step := N ". " TASK " " MODEL "."      N = 1, 2, ... in order; TASK MODEL a toolbox tool;
                                           each task at most once; at most max_steps steps;
                                           never a tool ``banned`` at that step number

``PlanGrammar.allowed_tokens_fn(tokenizer, prompt_len)`` gives a ``prefix_allowed_tokens_fn``
for ``model.generate``: at each step only the tokens whose text keeps the answer a prefix of
some plan are allowed, and the end token only once the answer is a whole plan. It works for
any tokenizer whose tokens decode to pieces of the plan text (byte-level BPE, SentencePiece).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from restoregraph.tools.registry import ToolRegistry

STOP = "Stop."


class PlanGrammar:
    def __init__(
        self,
        toolbox: ToolRegistry,
        max_steps: int = 8,
        required: Collection[str] = (),
        banned: Mapping[int, Collection[str]] | None = None,
    ) -> None:
        """``required``: tasks every whole plan must run (then ``Stop.`` is not a plan unless
        nothing is required): a planner that knows what is left to undo asks for all of it.
        ``banned``: step number (1 = the plan's first step) -> tool ids not allowed at that
        step (a tool rolled back at a position is ruled out there only)."""
        self.tools = [f"{s.task} {s.model}." for s in toolbox]
        self.task_of = {f"{s.task} {s.model}.": s.task for s in toolbox}
        text_of = {s.id: f"{s.task} {s.model}." for s in toolbox}
        self.banned = {
            int(step): frozenset(text_of[i] for i in ids if i in text_of)
            for step, ids in (banned or {}).items()
        }
        self.max_steps = max_steps
        self.required = frozenset(required)
        # every character a plan can hold: token pieces with any other one are never allowed
        self.alphabet = frozenset("".join(self.tools) + "0123456789. " + STOP)

    def _walk(self, text: str, i: int, step: int, used: frozenset[str]) -> tuple[bool, bool]:
        """(is a prefix of a plan, is a whole plan) for ``text[i:]`` after ``step - 1`` steps."""
        rest = text[i:]
        if step > 1:
            if not rest:
                return True, self.required <= used
            if not rest.startswith(" "):
                return False, False
            rest = rest[1:]
            i += 1
        if step > self.max_steps:
            return False, False
        head = f"{step}. "
        if len(rest) <= len(head):
            return head.startswith(rest), False
        if not rest.startswith(head):
            return False, False
        i += len(head)
        rest = text[i:]
        prefix = whole = False
        banned = self.banned.get(step, frozenset())
        for tool in self.tools:
            if self.task_of[tool] in used or tool in banned:
                continue
            if rest.startswith(tool):  # this tool, then the next step or the end
                p, w = self._walk(text, i + len(tool), step + 1, used | {self.task_of[tool]})
                prefix |= p
                whole |= w
            elif tool.startswith(rest):  # still inside this tool's name
                prefix = True
            if prefix and whole:
                break
        return prefix, whole

    def is_prefix(self, text: str) -> bool:
        stop = not self.required and STOP.startswith(text)
        return stop or self._walk(text, 0, 1, frozenset())[0]

    def is_complete(self, text: str) -> bool:
        if text == STOP:
            return not self.required
        return bool(text) and self._walk(text, 0, 1, frozenset())[1]

    def allowed_tokens_fn(
        self, tokenizer: Any, prompt_len: int, end_id: int
    ) -> Callable[[int, Any], list[int]]:
        """A ``prefix_allowed_tokens_fn`` for ``generate`` (batch rows share the grammar)."""
        pieces: list[tuple[int, str]] = []
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for tid in range(len(tokenizer)):
            if tid in special:
                continue
            piece = tokenizer.decode([tid])
            if piece and set(piece) <= self.alphabet:
                pieces.append((tid, piece))

        def fn(batch_id: int, input_ids: Any) -> list[int]:
            text = tokenizer.decode(list(input_ids[prompt_len:]), skip_special_tokens=True)
            allowed = [tid for tid, piece in pieces if self.is_prefix(text + piece)]
            if self.is_complete(text) or not allowed:
                allowed.append(end_id)
            return allowed

        return fn


__all__ = ["STOP", "PlanGrammar"]
