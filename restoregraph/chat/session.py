"""A chat conversation about one image, acting through ``Runner`` and its SQLite checkpointer.

>>> from restoregraph.runner import Runner                              # doctest: +SKIP
>>> chat = ChatSession(Runner(), "photo.png")                           # doctest: +SKIP
>>> chat.send("please remove the grain").text                           # doctest: +SKIP
>>> chat.send("less denoising").image                                   # doctest: +SKIP
>>> chat.undo(0)                                                        # doctest: +SKIP

One session is one run (one checkpointer thread): the first request starts it, every later
request continues from the current result (``Runner.continue_run``) or forks it
(``Runner.undo``), so the old branches stay readable (``restoregraph history RUN``) and step
numbers in the conversation are the accepted steps of the current branch (1-based; 0 = input).

What each routing decision (``restoregraph.chat.router.Route``) does:

* fast   -- only the named tasks: the toolbox is restricted to their tools and they are
  required (planned even when perception misses them), with the asked strength;
* agent  -- the full agent (perception decides), minus forbidden tasks, plus required ones;
  when a newly forbidden task was already applied, the run forks to before that step;
* undo   -- back to accepted step N (no replanning); "undo the denoising" forks to before the
  first denoise step, forbids denoise for the rest of the session and redoes the later tasks;
* adjust -- forks to before the last step of the task and redoes it (and the tasks after it)
  with strength 1 (milder: the same tool may be reused, at half effect) or 3 (stronger);
* help   -- a text answer, nothing runs.

A "don't <task>" stays in force for the session until the user asks for that task by name.

With ``approve="first"`` or ``"every"`` (docs/approval.md) a run stops at its plan and the reply
asks about it (``ChatReply.approval``); the next message is the answer: "yes", "no [reason]" or
the tool ids to run instead ("use denoise.tv, dejpeg.deblock"); anything else asks again.
``ChatSession.approve(answer)`` takes a structured answer (``True``, ``{"action": "edit",
"plan": [...]}``...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restoregraph.chat.router import Route, make_router
from restoregraph.core.errors import PlanError
from restoregraph.core.settings import RunContext
from restoregraph.runner import Runner, RunResult

EventFn = Callable[[dict[str, Any]], None]
# RunContext fields that are objects, not settings: passed again on every call.
_OBJECT_FIELDS = ("registry", "planner_obj", "perceiver")

HELP_TEXT = (
    "I restore photos. Tell me what bothers you: noise or grain, blur (sharpen), JPEG "
    "artifacts, rain, haze or fog, darkness (brighten), snow, or low resolution (upscale) -- or "
    "just say 'fix this image' and I will decide. You can add constraints ('keep the grain', "
    "'brighten it slightly') and follow up ('undo the last step', 'go back to step 1', "
    "'less sharpening')."
)


@dataclass
class ChatReply:
    """What one message produced.

    ``text``: the answer for the user; ``image``: the current image's path (the input before
    anything ran); ``run_id``: the session's run; ``steps``: the current branch's step records
    (every attempt, ``status`` accepted / rolled_back / failed); ``route``: the routing
    decision; ``route_seconds`` / ``seconds``: routing time and total time of the message.
    """

    text: str
    image: Path
    run_id: str | None
    steps: list[dict[str, Any]]
    route: Route | None = None
    route_seconds: float = 0.0
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    approval: dict[str, Any] | None = None  # the plan waiting for the user's answer, if any

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["status"] == "accepted"]


class ChatSession:
    """A conversation about one image (stable API, used by the web app and the CLI).

    ``ChatSession(runner, image_path, **settings)``: ``settings`` are ``RunContext`` fields
    (planner, objective, max_steps -- the step budget of *each* message --, seed, toolbox,
    registry, perceiver, ...) plus ``router=`` (an object with ``route(message) -> Route``) or
    ``llm={"base_url": ..., "model": ...}`` to route with an OpenAI-compatible endpoint.

    Not thread-safe: one session per conversation, one message at a time (a web app should
    serialise the calls of one conversation). Errors are the project's one-line classes
    (``InputError`` for a bad image at construction, ``ToolError`` ... from the run).
    """

    def __init__(self, runner: Runner, image_path: str | Path, **settings: Any) -> None:
        from restoregraph.imageio import load_image

        self.runner = runner
        self.image_path = Path(image_path)
        load_image(self.image_path)  # a clear one-line error now, not at the first message
        router = settings.pop("router", None)
        llm = settings.pop("llm", None)
        self.router = router if router is not None else make_router(llm)
        self.settings = dict(settings)
        self.base = RunContext(**self.settings)  # validates the settings
        self.run_id: str | None = None
        self.forbidden: set[str] = set(self.base.forbidden_tasks)
        self._turns: list[dict[str, Any]] = []
        self._last_objects: dict[str, Any] = {}  # the settings of the last runner call

    # ---- public API ---------------------------------------------------------------------------
    @property
    def current_image(self) -> Path:
        """The path of the current result (the input image before anything ran)."""
        if self.run_id is None:
            return self.image_path
        current = self.runner.state(self.run_id).get("current")
        return Path(current["uri"]) if current else self.image_path

    def steps(self) -> list[dict[str, Any]]:
        """Every step record of the current branch (empty before the first run)."""
        return [dict(h) for h in self.runner.history(self.run_id)] if self.run_id else []

    def history(self) -> list[dict[str, Any]]:
        """The conversation so far: one dict per message (message, route, reply, seconds)."""
        return [dict(t) for t in self._turns]

    @property
    def approval(self) -> dict[str, Any] | None:
        """The plan waiting for the user's answer (``approve`` first / every), or None."""
        return self.runner.approval_request(self.run_id) if self.run_id else None

    def approve(self, answer: Any, on_event: EventFn | None = None) -> ChatReply:
        """Answer the waiting plan: ``True``, ``{"action": "edit", "plan": [tool ids]}``,
        ``{"action": "reject", "reason": ...}`` (``restoregraph.nodes.approval``)."""
        t0 = time.perf_counter()
        reply = self._approve(answer, on_event)
        reply.seconds = time.perf_counter() - t0
        self._turns.append(
            {
                "message": f"(plan answer: {answer!r})",
                "route": None,
                "reply": reply.text,
                "run_id": reply.run_id,
                "seconds": round(reply.seconds, 3),
            }
        )
        return reply

    def send(self, message: str, on_event: EventFn | None = None) -> ChatReply:
        """Route ``message`` and act on the image; ``on_event`` gets the graph's progress events.
        While a plan waits for approval, the message is the answer to it."""
        t0 = time.perf_counter()
        if self.approval is not None:
            from restoregraph.nodes.approval import answer_from_text

            answer = answer_from_text(message)
            if answer is None:
                reply = self._reply("I need an answer to the plan first. " + self._question())
                reply.approval = self.approval
            else:
                reply = self._approve(answer, on_event)
            reply.seconds = time.perf_counter() - t0
            self._turns.append(
                {
                    "message": message,
                    "route": None,
                    "reply": reply.text,
                    "run_id": reply.run_id,
                    "seconds": round(reply.seconds, 3),
                }
            )
            return reply
        route = self.router.route(message)
        route_seconds = time.perf_counter() - t0
        reply = self._act(route, message, on_event)
        reply.route, reply.route_seconds = route, route_seconds
        reply.seconds = time.perf_counter() - t0
        self._turns.append(
            {
                "message": message,
                "route": route.to_dict(),
                "reply": reply.text,
                "run_id": reply.run_id,
                "seconds": round(reply.seconds, 3),
            }
        )
        return reply

    def undo(self, to_step: int, on_event: EventFn | None = None) -> ChatReply:
        """Go back to the image after accepted step ``to_step`` (0 = the input); no replanning."""
        t0 = time.perf_counter()
        route = Route(action="undo", step=int(to_step), source="user")
        reply = self._undo(route, on_event)
        reply.route, reply.seconds = route, time.perf_counter() - t0
        self._turns.append(
            {
                "message": f"(undo to step {to_step})",
                "route": route.to_dict(),
                "reply": reply.text,
                "run_id": reply.run_id,
                "seconds": round(reply.seconds, 3),
            }
        )
        return reply

    # ---- actions ------------------------------------------------------------------------------
    def _act(self, route: Route, message: str, on_event: EventFn | None) -> ChatReply:
        if route.action == "help":
            return self._reply(HELP_TEXT)
        if route.action == "undo":
            return self._undo(route, on_event)
        if route.action == "adjust":
            return self._adjust(route, message, on_event)
        if route.action == "fast":
            return self._fast(route, message, on_event)
        return self._agent(route, message, on_event)

    def _fast(self, route: Route, message: str, on_event: EventFn | None) -> ChatReply:
        tasks = tuple(route.tasks)
        self.forbidden -= set(tasks)  # asking for a task by name lifts an earlier "don't"
        self.forbidden |= set(route.forbidden)
        toolbox = self._tools_for(tasks)
        keep = len(self.steps())
        if not toolbox:
            return self._reply(f"No tool in the toolbox can do {', '.join(tasks)}.")
        result = self._run(
            message,
            on_event,
            toolbox=toolbox,
            required_tasks=tasks,
            forbidden_tasks=self._forbidden(tasks),
            strength=dict(route.strength),
        )
        return self._result_reply(result, f"Fast path: {', '.join(tasks)}", keep)

    def _agent(self, route: Route, message: str, on_event: EventFn | None) -> ChatReply:
        self.forbidden |= set(route.forbidden)
        self.forbidden -= set(route.tasks)
        objects: dict[str, Any] = {
            "toolbox": self.base.toolbox,
            "required_tasks": tuple(route.tasks),
            "forbidden_tasks": self._forbidden(route.tasks),
            "strength": dict(route.strength),
        }
        head = "Full agent" + (
            f" (never {', '.join(sorted(self.forbidden))})" if self.forbidden else ""
        )
        accepted = self._accepted()
        bad = [i for i, h in enumerate(accepted, 1) if h["task"] in self.forbidden]
        if self.run_id is not None and bad:
            to = bad[0] - 1
            keep = self._kept(to)
            result = self.runner.undo(
                self.run_id, to, on_event=on_event, **self._objects(objects, to)
            )
            return self._result_reply(result, head + f"; went back to step {to}", keep)
        keep = len(self.steps())
        result = self._run(message, on_event, **objects)
        return self._result_reply(result, head, keep)

    def _undo(self, route: Route, on_event: EventFn | None) -> ChatReply:
        accepted = self._accepted()
        if self.run_id is None or not accepted:
            if route.step == 0:
                return self._reply("This is already the original image.")
            return self._reply("Nothing to undo yet.")
        n = len(accepted)
        if route.forbidden:  # "undo the denoising": go back before it and redo what followed
            self.forbidden |= set(route.forbidden)
            hits = [i for i, h in enumerate(accepted, 1) if h["task"] in route.forbidden]
            if not hits:
                return self._reply(f"No {', '.join(route.forbidden)} step to undo.")
            to = hits[0] - 1
            keep = self._kept(to)
            redo = tuple(
                dict.fromkeys(h["task"] for h in accepted[to:] if h["task"] not in self.forbidden)
            )
            result = self.runner.undo(
                self.run_id,
                to,
                on_event=on_event,
                **self._objects(
                    {
                        "toolbox": self._tools_for(redo) if redo else (),
                        "required_tasks": redo,
                        "forbidden_tasks": self._forbidden(()),
                        "strength": {},
                    },
                    to,
                ),
            )
            head = f"Undid {', '.join(route.forbidden)} (went back to step {to})"
            return self._result_reply(result, head, keep)
        to = n - 1 if route.step is None else route.step
        if not 0 <= to <= n:
            return self._reply(f"There is no step {to}: the current result has {n} step(s).")
        if to == n:
            return self._reply(f"The current result is already step {n}.")
        result = self.runner.undo(
            self.run_id,
            to,
            on_event=on_event,
            **self._objects(
                {"toolbox": (), "required_tasks": (), "strength": {}, "planner": "fixed"}, to
            ),
        )
        what = "the original image" if to == 0 else f"step {to}"
        return self._result_reply(result, f"Went back to {what}", self._kept(to), list_new=False)

    def _adjust(self, route: Route, message: str, on_event: EventFn | None) -> ChatReply:
        accepted = self._accepted()
        hits = [i for i, h in enumerate(accepted, 1) if h["task"] in route.tasks]
        if self.run_id is None or not hits:  # nothing to redo: apply it with that strength
            return self._fast(route, message, on_event)
        to = hits[-1] - 1
        redo = tuple(dict.fromkeys(h["task"] for h in accepted[to:]))
        redo = tuple(t for t in redo if t not in self.forbidden or t in route.tasks)
        self.forbidden -= set(route.tasks)
        keep = self._kept(to)
        result = self.runner.undo(
            self.run_id,
            to,
            on_event=on_event,
            forbid_undone=False,
            **self._objects(
                {
                    "toolbox": self._tools_for(redo),
                    "required_tasks": redo,
                    "forbidden_tasks": self._forbidden(redo),
                    "strength": dict(route.strength),
                },
                to,
            ),
        )
        word = "milder" if 1 in route.strength.values() else "stronger"
        head = f"Redid {', '.join(route.tasks)} {word} (from step {to})"
        return self._result_reply(result, head, keep)

    def _approve(self, answer: Any, on_event: EventFn | None) -> ChatReply:
        from restoregraph.nodes.approval import parse_answer
        from restoregraph.nodes.resources import get_registry

        if self.run_id is None or self.approval is None:
            return self._reply("No plan is waiting for an answer.")
        objects = self._last_objects or {k: getattr(self.base, k) for k in _OBJECT_FIELDS}
        try:
            action = parse_answer(
                answer, get_registry(self.runner.context_for(self.run_id, **objects))
            )[0]
        except PlanError as exc:
            reply = self._reply(f"{exc}. " + self._question())
            reply.approval = self.approval
            return reply
        keep = len(self.steps())
        result = self.runner.approve(self.run_id, answer, on_event=on_event, **objects)
        head = {"accept": "Plan accepted", "edit": "Plan edited", "reject": "Plan rejected"}[action]
        return self._result_reply(result, head, keep)

    def _question(self, request: dict[str, Any] | None = None) -> str:
        """The plan a run waits on, as a question."""
        from restoregraph.nodes.approval import question_text

        request = request if request is not None else self.approval
        return question_text(request) if request is not None else ""

    # ---- helpers ------------------------------------------------------------------------------
    def _accepted(self) -> list[dict[str, Any]]:
        return [h for h in self.steps() if h["status"] == "accepted"]

    def _kept(self, to_step: int) -> int:
        """How many step records a fork back to accepted step ``to_step`` keeps."""
        accepted = self._accepted()
        return int(accepted[to_step - 1]["index"]) if to_step else 0

    def _forbidden(self, allowed: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        return tuple(sorted(self.forbidden - set(allowed)))

    def _registry(self) -> Any:
        if self.base.registry is not None:
            return self.base.registry
        from restoregraph.tools import default_registry

        return default_registry()

    def _tools_for(self, tasks: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        ids = [s.id for s in self._registry() if s.task in tasks]
        if self.base.toolbox is not None:
            ids = [i for i in ids if i in self.base.toolbox]
        return tuple(ids)

    def _objects(self, overrides: dict[str, Any], kept_steps: int | None = None) -> dict[str, Any]:
        """Settings for a continued or forked run: the session's objects, the overrides, and a
        step budget / round limit counted from where the run goes on."""
        out = {k: getattr(self.base, k) for k in _OBJECT_FIELDS}
        out.update(overrides)
        state = self.runner.state(self.run_id) if self.run_id else {}
        history = state.get("history", [])
        if kept_steps is not None:
            accepted = [h for h in history if h["status"] == "accepted"]
            done = accepted[kept_steps - 1]["index"] if kept_steps else 0
        else:
            done = len(history)
        out["max_steps"] = min(RunContext.bounds("max_steps")[1], done + self.base.max_steps)
        out["max_rounds"] = int(state.get("rounds", 0)) + self.base.max_rounds
        self._last_objects = dict(out)  # an approval resumes the run with the same settings
        return out

    def _run(self, message: str, on_event: EventFn | None, **overrides: Any) -> RunResult:
        if self.run_id is None:
            self._last_objects = {k: getattr(self.base, k) for k in _OBJECT_FIELDS}
            settings = {**self.settings, **overrides}
            result = self.runner.start(
                self.image_path,
                None,
                RunContext(**settings),
                instruction=message,
                on_event=on_event,
            )
            self.run_id = result.run_id
            return result
        return self.runner.continue_run(
            self.run_id, instruction=message, on_event=on_event, **self._objects(overrides)
        )

    def _reply(self, text: str) -> ChatReply:
        return ChatReply(text, self.current_image, self.run_id, self.steps())

    def _result_reply(
        self, result: RunResult, head: str, keep: int, list_new: bool = True
    ) -> ChatReply:
        """The answer: what happened to each new attempt, then the current chain of steps."""
        steps: list[dict[str, Any]] = [dict(h) for h in result.history]
        accepted = [h for h in steps if h["status"] == "accepted"]
        lines = [head + "."]
        if list_new:
            new = steps[keep:]
            for h in new:
                if h["status"] == "accepted":
                    n = accepted.index(h) + 1
                    lines.append(f"Step {n}: {h['tool']} accepted ({h['reason']}).")
                else:
                    lines.append(f"{h['tool']} {h['status'].replace('_', ' ')}: {h['reason']}.")
            if not new and result.approval is None:
                stop = result.state.get("stop_reason") or "no step ran"
                lines.append(f"Nothing ran: {stop}.")
        chain = ", ".join(f"{i}. {h['tool']}" for i, h in enumerate(accepted, 1)) or "none"
        lines.append(f"Current result: {len(accepted)} step(s) ({chain}).")
        if result.approval is not None:
            lines.append(self._question(result.approval))
        current = result.state.get("current")
        image = Path(current["uri"]) if current else self.image_path
        return ChatReply(
            " ".join(lines),
            image,
            result.run_id,
            steps,
            events=result.events,
            approval=result.approval,
        )


def route_instruction(ctx: RunContext, instruction: str, router: Any = None) -> Route:
    """Route a one-shot instruction (``restoregraph restore --instruction``) and write its
    constraints into ``ctx``: fast -> the toolbox restricted to the named tasks, which are
    required; agent -> required / forbidden tasks; a strength for either. A follow-up (undo,
    adjust without a previous result) or help has no run to act on: adjust counts as fast,
    the others leave ``ctx`` as it is (the full agent)."""
    route = (router if router is not None else make_router()).route(instruction)
    if route.action in ("fast", "adjust", "agent"):
        registry = ctx.registry
        if registry is None:
            from restoregraph.tools import default_registry

            registry = default_registry()
        if route.action in ("fast", "adjust"):
            ids = [s.id for s in registry if s.task in route.tasks]
            if ctx.toolbox is not None:
                ids = [i for i in ids if i in ctx.toolbox]
            ctx.toolbox = tuple(ids)
        tasks = set(route.tasks)
        ctx.required_tasks = tuple(dict.fromkeys([*ctx.required_tasks, *route.tasks]))
        ctx.forbidden_tasks = tuple(
            t for t in dict.fromkeys([*ctx.forbidden_tasks, *route.forbidden]) if t not in tasks
        )
        ctx.strength = {**ctx.strength, **route.strength}
    return route
