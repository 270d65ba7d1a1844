"""``restoregraph chat IMAGE``: talk to the agent about one image (reads lines from stdin);
``restoregraph bench chat``: its routing accuracy and latency."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from restoregraph.cli.options import HOME, OBJECTIVE, OVERWRITE, PLANNER, run_option


@click.command("chat")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the final result here when the conversation ends.",
)
@OVERWRITE
@PLANNER
@OBJECTIVE
@run_option("max_steps", help="Step budget of each message.")
@click.option(
    "--llm-url",
    default=None,
    help="Route with an OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1); "
    "the offline router takes over on any failure.",
)
@click.option("--llm-model", default=None, help="Model name at --llm-url.")
@HOME
@click.option("--json", "as_json", is_flag=True, help="One JSON object per reply on stdout.")
def chat_cmd(
    image: Path,
    output: Path | None,
    overwrite: bool,
    planner: str,
    objective: str,
    max_steps: int,
    llm_url: str | None,
    llm_model: str | None,
    home: Path | None,
    as_json: bool,
) -> None:
    """Chat about IMAGE: "remove the grain", "fix this image", "undo the last step", "less
    sharpening"... One message per line; an empty line, `quit` or end of input stops.

    Works with piped input: `printf 'brighten it\\nundo\\n' | restoregraph chat photo.png`.
    """
    import json

    from restoregraph.chat.session import ChatSession
    from restoregraph.core.errors import InputError
    from restoregraph.imageio import check_output_path, save_image
    from restoregraph.planners import PLANNERS
    from restoregraph.runner import Runner

    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; choose from {', '.join(sorted(PLANNERS))}")
    if output is not None:
        check_output_path(output, protect=(image,), overwrite=overwrite)
    llm = {"base_url": llm_url, "model": llm_model} if llm_url else None
    session = ChatSession(
        Runner(home), image, planner=planner, objective=objective, max_steps=max_steps, llm=llm
    )
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo("Say what to do with the photo (empty line or 'quit' to stop).", err=True)
    while True:
        if interactive:
            click.echo("> ", nl=False, err=True)
        line = sys.stdin.readline()
        message = line.strip()
        if not line or not message or message.lower() in ("quit", "exit", "bye", "q"):
            break
        reply = session.send(message)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "message": message,
                        "route": reply.route.to_dict() if reply.route else None,
                        "reply": reply.text,
                        "image": str(reply.image),
                        "run_id": reply.run_id,
                        "steps": [s["tool"] for s in reply.accepted],
                        "route_seconds": round(reply.route_seconds, 4),
                        "seconds": round(reply.seconds, 3),
                    }
                )
            )
        else:
            route = reply.route.describe() if reply.route else ""
            click.echo(f"[{route}; {reply.seconds:.2f} s] {reply.text}")
            click.echo(f"  image: {reply.image}")
    if output is not None:
        from restoregraph.imageio import load_image

        out = save_image(
            load_image(session.current_image), output, protect=(image,), overwrite=overwrite
        )
        click.echo(f"wrote {out}", err=True)
    if session.run_id:
        click.echo(f"run id: {session.run_id} (restoregraph history {session.run_id})", err=True)


@click.command("chat")
@click.option(
    "--data",
    default="../shared/data/test",
    show_default=True,
    help="Folder of test sets (relative to the current directory).",
)
@click.option("--set", "set_name", default="Kodak24", show_default=True, help="Test set.")
@click.option("-n", "n", type=click.IntRange(1, 100), default=4, show_default=True, help="Images.")
@click.option(
    "--size", type=click.IntRange(64, 2048), default=512, show_default=True, help="Crop (px)."
)
@click.option(
    "--phrasings",
    type=click.Path(path_type=Path),
    default=Path("tests/data/chat_phrasings.jsonl"),
    show_default=True,
    help="Labelled phrasings (JSON lines).",
)
@run_option("planner", default="fixed", help="Planner of the full agent.")
@run_option("max_steps")
@click.option(
    "--doc",
    default=Path("docs/BENCHMARKS.md"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Markdown file whose bench section is replaced (or appended).",
)
@click.pass_context
def bench_chat_cmd(
    ctx: click.Context,
    data: str,
    set_name: str,
    n: int,
    size: int,
    phrasings: Path,
    planner: str,
    max_steps: int,
    doc: Path,
) -> None:
    """Chat routing accuracy per category on the phrasing set, and fast-path latency (router +
    the named task only) beside the full agent on 512 px images."""
    import torch

    from restoregraph.cli.cmd_bench import Clock, finish_section
    from restoregraph.lab.bench.chat import run_bench
    from restoregraph.lab.common import data_dir

    torch.set_num_threads(1)
    clock = Clock()
    root = data_dir(data)
    body = run_bench(
        root, set_name, n, size, phrasings, {"planner": planner, "max_steps": max_steps}
    )
    finish_section(ctx, "chat", "Chat: routing accuracy and fast-path latency", body, clock)
