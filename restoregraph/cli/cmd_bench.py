"""The ``restoregraph bench`` command group (registered by ``restoregraph.cli.main``).

Heavy modules are imported inside the commands, so ``restoregraph --help`` stays fast.
"""

from __future__ import annotations

import datetime as _dt
import shlex
import time
from pathlib import Path
from typing import Any

import click

from restoregraph.cli.options import OBJECTIVE, run_option
from restoregraph.lab.common import DEFAULT_DATA
from restoregraph.lab.report import DEFAULT_DOC

DATA = click.option(
    "--data",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder of test sets (relative to the current directory).",
)
DOC = click.option(
    "--doc",
    default=DEFAULT_DOC,
    show_default=True,
    type=click.Path(path_type=Path),
    help="Markdown file whose bench section is replaced (or appended).",
)


# options the agent and plans benchmarks share
SUITE = click.option(
    "--suite",
    default="restoreagent,agenticir",
    show_default=True,
    help="Mixture suites: restoreagent (its seven mixtures), agenticir (groups A, B, C).",
)
MIXTURES = click.option(
    "--mixtures",
    default=None,
    help="Only these mixtures (comma-separated, e.g. noise+jpeg; default: the --suite ones).",
)
TOOLBOX = click.option(
    "--toolbox",
    type=click.Choice(["search", "all"]),
    default="all",
    show_default=True,
    help="The tools every planner and the oracle may use: every tool, or the search toolbox "
    "(restoregraph.lab.search.toolbox's default: the planner's earlier, mostly learned tools).",
)


def command_line(ctx: click.Context) -> str:
    """The command with every option spelled out (what reproduces the section exactly)."""
    parts = ctx.command_path.split()
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        value = ctx.params.get(param.name)
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                parts.append(flag)
            elif param.secondary_opts:  # an on/off pair switched off: --no-x
                parts.append(max(param.secondary_opts, key=len))
        elif value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)


class Clock:
    """When a benchmark started, and the machine as it was then (load average included)."""

    def __init__(self) -> None:
        from restoregraph.lab.report import machine

        self.started = _dt.datetime.now(_dt.UTC)
        self.t0 = time.perf_counter()
        self.machine = machine()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def finish_section(ctx: click.Context, name: str, title: str, body: str, clock: Clock) -> None:
    from restoregraph.lab.report import header, write_section

    doc: Path = ctx.params["doc"]
    head = header(title, command_line(ctx), clock.started, clock.seconds, clock.machine)
    text = head + "\n" + body
    path = write_section(doc, name, text)
    click.echo(f"wrote section {name!r} of {path} ({clock.seconds:.0f} s)", err=True)


def _section(kw: dict[str, Any]) -> str:
    """``--section``: the doc section's name (letters, digits, '-' and '_')."""
    section = str(kw["section"]).strip()
    if not section or not section.replace("-", "").replace("_", "").isalnum():
        raise click.BadParameter("letters, digits, '-' and '_' only", param_hint="--section")
    return section


def _mixtures(kw: dict[str, Any]) -> list[str]:
    """``--mixtures`` when given, else the mixtures of ``--suite``."""
    from restoregraph.lab.bench.agent import suite_mixtures
    from restoregraph.lab.common import parse_list

    if kw["mixtures"]:
        return parse_list(kw["mixtures"], "--mixtures")
    return suite_mixtures(parse_list(kw["suite"], "--suite"))


@click.group()
def bench() -> None:
    """Measure the tools, the agent and perception; write docs/BENCHMARKS.md sections."""


@bench.command("tools")
@DATA
@click.option("--sets", default="CBSD68,Kodak24", show_default=True, help="Test sets.")
@click.option("--n", "n", type=int, default=10, show_default=True, help="First N images per set.")
@click.option("--levels", default="1,2,3", show_default=True, help="Degradation levels.")
@click.option("--tasks", default=None, help="Only these tasks (comma-separated; default all).")
@click.option(
    "--rain-pairs",
    type=int,
    default=100,
    show_default=True,
    help="Rain100L pairs for derain (0: none).",
)
@click.option(
    "--timing-size",
    type=int,
    default=512,
    show_default=True,
    help="Side of the timing image (0: no timing).",
)
@DOC
@click.pass_context
def tools_cmd(ctx: click.Context, **kw: Any) -> None:
    """Every tool on its own task's degradation: PSNR / SSIM per level, and speed."""
    from restoregraph.lab.bench.tools import (
        TASK_DEGRADATIONS,
        ToolsConfig,
        run_tools_bench,
        tools_markdown,
    )
    from restoregraph.lab.common import data_dir, parse_levels, parse_list

    clock = Clock()
    cfg = ToolsConfig(
        data=data_dir(kw["data"]),
        sets=parse_list(kw["sets"], "--sets"),
        n=kw["n"],
        levels=parse_levels(kw["levels"]),
        tasks=parse_list(kw["tasks"], "--tasks") if kw["tasks"] else list(TASK_DEGRADATIONS),
        timing_size=kw["timing_size"],
        rain_pairs=kw["rain_pairs"],
    )
    result = run_tools_bench(cfg)
    body = tools_markdown(result)
    finish_section(ctx, "tools", "Tools: each task's tools on its own degradation", body, clock)


@bench.command("agent")
@DATA
@click.option("--set", "set_name", default="CBSD68", show_default=True, help="Test set.")
@click.option(
    "--n", "n", type=int, default=1, show_default=True, help="First N images per mixture."
)
@click.option(
    "--planners",
    default="random,random-order,random-model,fixed,explore,embedded,llm",
    show_default=True,
    help="Planners to compare (llm: the openai planner when OPENAI_BASE_URL answers, else a "
    "local SmolLM2 planner when registered; one not available here is listed as not run).",
)
@SUITE
@TOOLBOX
@click.option(
    "--switch-objectives",
    default="psnr,perceptual",
    show_default=True,
    help="Objective switch table: rerun under these objectives ('' = none).",
)
@click.option(
    "--switch-planners",
    default="fixed,explore,embedded",
    show_default=True,
    help="Planners of the objective switch table.",
)
@click.option(
    "--switch-n",
    type=int,
    default=0,
    show_default=True,
    help="Also re-run the whole agent under each switch objective on this many images per "
    "RestoreAgent mixture (0: the switch is measured on the plans only).",
)
@OBJECTIVE
@click.option(
    "--level",
    type=click.Choice(["1", "2", "3", "sample"]),
    default="2",
    show_default=True,
    help="Level of every type of a mixture (sample: drawn per image from its seed).",
)
@click.option("--short", type=int, default=192, show_default=True, help="Crop: short side (px).")
@click.option("--long", type=int, default=256, show_default=True, help="Crop: long side (px).")
@run_option("max_steps", help="Agent step budget.")
@MIXTURES
@click.option("--oracle/--no-oracle", default=True, show_default=True, help="Rank pipelines.")
@click.option(
    "--oracle-cap", type=int, default=120, show_default=True, help="Max pipelines per image."
)
@click.option(
    "--heldout",
    is_flag=True,
    help="Only images of the planners' held-out split (search.dataset.is_heldout): validate "
    "on a training set (e.g. --data ../shared/data/train --set CBSD432) without the test sets.",
)
@click.option(
    "--section",
    default="agent",
    show_default=True,
    help="Name of the doc section written: another name keeps a second run (e.g. more images, "
    "fewer planners) beside the main one.",
)
@DOC
@click.pass_context
def agent_cmd(ctx: click.Context, **kw: Any) -> None:
    """The fair planner benchmark: RestoreAgent's seven mixtures and AgenticIR's groups A/B/C,
    one toolbox and one image set for every planner, ranked against every pipeline."""
    from restoregraph.lab.bench.agent import (
        MIXTURES,
        AgentConfig,
        agent_markdown,
        estimate_seconds,
        run_agent_bench,
    )
    from restoregraph.lab.common import data_dir, parse_list

    section = _section(kw)
    clock = Clock()
    cfg = AgentConfig(
        data=data_dir(kw["data"]),
        set_name=kw["set_name"],
        heldout=kw["heldout"],
        n=kw["n"],
        planners=parse_list(kw["planners"], "--planners"),
        objective=kw["objective"],
        level=None if kw["level"] == "sample" else int(kw["level"]),
        short=kw["short"],
        long=kw["long"],
        max_steps=kw["max_steps"],
        mixtures=_mixtures(kw),
        oracle=kw["oracle"],
        oracle_cap=kw["oracle_cap"],
        toolbox=kw["toolbox"],
        switch_objectives=[o for o in (t.strip() for t in kw["switch_objectives"].split(",")) if o],
        switch_planners=parse_list(kw["switch_planners"], "--switch-planners"),
        switch_mixtures=list(MIXTURES),
        switch_n=kw["switch_n"],
    )
    from restoregraph.lab.bench.agent import metric_names

    for o in cfg.switch_objectives:
        metric_names(o)  # an unknown objective is a one-line error before anything runs
    from restoregraph.tools import default_registry

    est, runs, pipes = estimate_seconds(cfg, default_registry())
    click.echo(
        f"bench agent: {runs} agent runs and {pipes} oracle pipelines; "
        f"estimated {est / 60:.0f}-{est / 60 * 1.5:.0f} min on a shared 2-core CPU",
        err=True,
    )
    result = run_agent_bench(cfg)
    body = agent_markdown(result)
    title = "Agent: the fair planner benchmark (RestoreAgent's seven mixtures, AgenticIR A/B/C)"
    if section != "agent":
        title += f" -- {section}"
    finish_section(ctx, section, title, body, clock)


@bench.command("plans")
@DATA
@click.option("--set", "set_name", default="CBSD68", show_default=True, help="Test set.")
@click.option(
    "--n", "n", type=int, default=30, show_default=True, help="First N images per mixture."
)
@click.option(
    "--planners",
    default="random,random-order,random-model,fixed,embedded",
    show_default=True,
    help="Planners to compare (the labels of `bench agent`).",
)
@click.option(
    "--baseline", default="fixed", show_default=True, help="The planner others are paired with."
)
@SUITE
@MIXTURES
@TOOLBOX
@OBJECTIVE
@click.option(
    "--level",
    type=click.Choice(["1", "2", "3", "sample"]),
    default="2",
    show_default=True,
    help="Level of every type of a mixture (sample: drawn per image from its seed).",
)
@click.option("--short", type=int, default=192, show_default=True, help="Crop: short side (px).")
@click.option("--long", type=int, default=256, show_default=True, help="Crop: long side (px).")
@click.option(
    "--oracle-cap", type=int, default=120, show_default=True, help="Max pipelines per image."
)
@click.option(
    "--heldout",
    is_flag=True,
    help="Only images of the planners' held-out split (validation on a training set).",
)
@click.option("--section", default="plans", show_default=True, help="Doc section written.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write every case and plan as JSON here.",
)
@DOC
@click.pass_context
def plans_cmd(ctx: click.Context, **kw: Any) -> None:
    """Planning only, many images per mixture: every planner plans once from the true
    degradations; each plan is ranked among every pipeline and paired with the baseline."""
    from restoregraph.lab.bench.plans import (
        PlanBenchConfig,
        estimate,
        plan_bench_markdown,
        run_plan_bench,
        write_json,
    )
    from restoregraph.lab.common import data_dir, parse_list
    from restoregraph.tools import default_registry

    section = _section(kw)
    clock = Clock()
    cfg = PlanBenchConfig(
        data=data_dir(kw["data"]),
        set_name=kw["set_name"],
        heldout=kw["heldout"],
        n=kw["n"],
        planners=parse_list(kw["planners"], "--planners"),
        baseline=kw["baseline"],
        objective=kw["objective"],
        level=None if kw["level"] == "sample" else int(kw["level"]),
        short=kw["short"],
        long=kw["long"],
        mixtures=_mixtures(kw),
        oracle_cap=kw["oracle_cap"],
        toolbox=kw["toolbox"],
    )
    registry = default_registry()
    est, pipes = estimate(cfg, registry)
    click.echo(
        f"bench plans: {pipes} oracle pipelines; estimated {est / 60:.0f}-{est / 60 * 1.5:.0f} "
        "min on a shared 2-core CPU",
        err=True,
    )
    result = run_plan_bench(cfg, registry)
    if kw["json_path"] is not None:
        click.echo(f"wrote {write_json(result, kw['json_path'])}", err=True)
    title = "Planning only: RestoreAgent Table 1 on many images, paired with the fixed rules"
    if section != "plans":
        title += f" -- {section}"
    finish_section(ctx, section, title, plan_bench_markdown(result), clock)


@bench.command("perception")
@DATA
@click.option("--set", "set_name", default="CBSD68", show_default=True, help="Held-out set.")
@click.option("--n", "n", type=int, default=300, show_default=True, help="Samples.")
@click.option("--seed", type=int, default=123, show_default=True)
@click.option("--weights", default=None, help="State dict (default: the shipped weights).")
@DOC
@click.pass_context
def perception_cmd(ctx: click.Context, **kw: Any) -> None:
    """The perception CNN's held-out evaluation (restoregraph.lab.training.perception_eval)."""
    from restoregraph.lab.bench.perception import (
        PerceptionConfig,
        perception_markdown,
        run_perception_bench,
    )
    from restoregraph.lab.common import data_dir

    clock = Clock()
    cfg = PerceptionConfig(
        data=data_dir(kw["data"]),
        set_name=kw["set_name"],
        n=kw["n"],
        seed=kw["seed"],
        weights=kw["weights"],
    )
    body = perception_markdown(run_perception_bench(cfg))
    finish_section(ctx, "perception", "Perception: held-out detection and severity", body, clock)


@bench.command("reliability")
@click.option(
    "--crashes", type=int, default=6, show_default=True, help="Seeded kill -9 points per run."
)
@click.option(
    "--fuzz-examples", type=int, default=500, show_default=True, help="Examples per fuzz test."
)
@click.option(
    "--slow/--no-slow",
    default=True,
    show_default=True,
    help="Include the slow tests (kill -9 at random times).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="pytest -n workers.")
@click.option(
    "--features/--no-features",
    default=True,
    show_default=True,
    help="Also run other features' reliability tests (batch, loading, tiling, web) if present.",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Source checkout holding tests/ (default: the current directory).",
)
@DOC
@click.pass_context
def reliability_cmd(ctx: click.Context, **kw: Any) -> None:
    """Run the reliability tests (bad input, failing parts, kill -9 + resume, bounds, fuzz)
    and report what they counted."""
    from restoregraph.core.errors import RestoreGraphError
    from restoregraph.lab.bench.reliability import (
        reliability_markdown,
        run_reliability,
        source_root,
    )

    clock = Clock()
    root = source_root(kw["root"])
    result = run_reliability(
        root,
        crashes=kw["crashes"],
        fuzz_examples=kw["fuzz_examples"],
        slow=kw["slow"],
        workers=kw["workers"],
        features=kw["features"],
    )
    body = reliability_markdown(result, kw["crashes"], kw["fuzz_examples"])
    title = "Reliability: bad input, failing parts, crashes, bounds, fuzz"
    finish_section(ctx, "reliability", title, body, clock)
    if result.failures:
        raise RestoreGraphError(
            f"{len(result.failures)} reliability test(s) failed (listed in {kw['doc']})"
        )
