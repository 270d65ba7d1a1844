"""``restoregraph bench backends``: the learned tools' inference backends, measured."""

from __future__ import annotations

from typing import Any

import click

from restoregraph.cli.cmd_bench import DOC, Clock, finish_section


@click.command("backends")
@click.option(
    "--variants",
    default=None,
    help="Comma-separated variants (default: all whose package is installed).",
)
@click.option("--repeats", type=int, default=3, show_default=True, help="Fresh processes each.")
@click.option("--calls", type=int, default=3, show_default=True, help="Steady calls per tool.")
@click.option("--size", type=int, default=512, show_default=True, help="Image side (px).")
@click.option("--no-agent", is_flag=True, help="Skip the agent-decision comparison.")
@DOC
@click.pass_context
def backends_cmd(ctx: click.Context, **kw: Any) -> None:
    """Load, steady speed, output gap and agent decisions of each inference backend."""
    from restoregraph.lab.bench.backends import (
        VARIANTS,
        BackendsConfig,
        backends_markdown,
        run_backends_bench,
    )
    from restoregraph.lab.common import parse_list

    variants = parse_list(kw["variants"], "--variants") if kw["variants"] else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown: {', '.join(unknown)}", param_hint="--variants")
    if "torch" not in variants:
        variants.insert(0, "torch")  # the reference
    clock = Clock()
    cfg = BackendsConfig(
        variants=variants,
        repeats=kw["repeats"],
        calls=kw["calls"],
        size=kw["size"],
        agent=not kw["no_agent"],
    )
    result = run_backends_bench(cfg, log=lambda m: click.echo(m, err=True))
    body = backends_markdown(result)
    finish_section(ctx, "backends", "Inference backends of the learned tools", body, clock)
