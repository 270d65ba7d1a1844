"""Every run setting is written once, in RunContext's field metadata: its validation, the
serialised settings and the CLI options are derived from it; objectives are one tuple."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from restoregraph.cli.main import app, main
from restoregraph.cli.options import OBJECTIVE_NAMES as CLI_OBJECTIVES
from restoregraph.cli.options import run_option_kwargs
from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.objectives import OBJECTIVE_METRICS, OBJECTIVE_NAMES
from restoregraph.core.settings import RUN_FIELDS, SERIALISED, RunContext

LIBRARY_OBJECTS = {"registry", "planner_obj", "perceiver"}


def test_every_field_has_help_and_settings_are_the_serialisable_fields() -> None:
    for f in dataclasses.fields(RunContext):
        assert isinstance(f.metadata.get("help"), str) and f.metadata["help"], f.name
    serialisable = [
        f.name for f in dataclasses.fields(RunContext) if f.metadata.get("serialise", True)
    ]
    assert set(RUN_FIELDS) - set(serialisable) == LIBRARY_OBJECTS
    assert list(RunContext().settings()) == serialisable == list(SERIALISED)


def test_settings_convert_tuples_to_lists_and_round_trip() -> None:
    ctx = RunContext(
        toolbox=("denoise.tv", "deblur.wiener"),
        forbidden_tasks=("denoise",),
        required_tasks=("dehaze",),
        strength={"deblur": 3},
        planner_options={"model": "m"},
        registry=object(),
    )
    s = ctx.settings()
    assert s["toolbox"] == ["denoise.tv", "deblur.wiener"]
    assert s["forbidden_tasks"] == ["denoise"] and s["required_tasks"] == ["dehaze"]
    assert s["strength"] == {"deblur": 3} and s["strength"] is not ctx.strength
    assert RunContext().settings()["toolbox"] is None
    back = RunContext.from_settings(s)
    assert back.toolbox == ctx.toolbox and back.settings() == s


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_steps": 0}, "max_steps must be within 1..100, got 0"),
        ({"max_steps": 101}, "max_steps must be within 1..100, got 101"),
        ({"mode": "greedy"}, "mode must be 'plan' or 'stepwise', got 'greedy'"),
        ({"objective": "lpips"}, "unknown objective 'lpips'"),
    ],
)
def test_validation_comes_from_the_metadata(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RestoreGraphError) as exc:
        RunContext(**kwargs)  # type: ignore[arg-type]
    assert str(exc.value) == message


def test_bounds_and_choices_are_in_the_metadata() -> None:
    assert RunContext.bounds("max_steps") == (1, 100)
    assert RUN_FIELDS["max_steps"].default == 8
    assert RUN_FIELDS["objective"].metadata["choices"] == OBJECTIVE_NAMES
    # a Literal annotation is the type of the field's choices, nothing more
    hints = typing.get_type_hints(RunContext)
    for name, f in RUN_FIELDS.items():
        if typing.get_origin(hints[name]) is typing.Literal:
            assert typing.get_args(hints[name]) == tuple(f.metadata["choices"]), name


def test_graph_recursion_bound_follows_the_step_bound() -> None:
    from restoregraph.graph.builder import MAX_STEPS_LIMIT

    assert RunContext.bounds("max_steps")[1] == MAX_STEPS_LIMIT


def _option(command: list[str], flag: str) -> click.Option:
    ctx = click.Context(app)
    cmd: click.Command | None = app
    for name in command:
        assert isinstance(cmd, click.Group)
        cmd = cmd.get_command(ctx, name)
    assert cmd is not None
    found = [p for p in cmd.params if isinstance(p, click.Option) and flag in p.opts]
    assert found, f"{' '.join(command)} has no {flag}"
    return found[0]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["restore"], "max_steps"),
        (["restore"], "mode"),
        (["restore"], "objective"),
        (["restore"], "planner"),
        (["restore"], "seed"),
        (["restore"], "toolbox"),
        (["restore"], "reference"),
        (["chat"], "max_steps"),
        (["chat"], "objective"),
        (["serve"], "max_steps"),
        (["serve"], "objective"),
        (["serve"], "planner"),
        (["data", "build"], "objective"),
        (["bench", "chat"], "max_steps"),
        (["degrade"], "max_pixels"),
        (["metrics"], "max_pixels"),
    ],
)
def test_cli_options_follow_the_metadata(command: list[str], name: str) -> None:
    opt = _option(command, "--" + name.replace("_", "-"))
    f = RUN_FIELDS[name]
    assert opt.default == f.default
    meta = f.metadata
    if "bounds" in meta:
        assert isinstance(opt.type, click.IntRange)
        assert (opt.type.min, opt.type.max) == meta["bounds"]
    if "choices" in meta:
        assert isinstance(opt.type, click.Choice)
        assert tuple(opt.type.choices) == tuple(meta["choices"])
    assert run_option_kwargs(name)["help"] == meta["help"]


def test_restore_help_shows_the_max_steps_range_and_default() -> None:
    result = CliRunner().invoke(app, ["restore", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "--max-steps" in x)
    assert "1<=x<=100" in line and "default: 8" in line
    assert "Step budget (tool calls)." in line


@pytest.mark.parametrize("bad", ["0", "101"])
def test_out_of_range_max_steps_is_a_usage_error(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["restore", "sample:astronaut", "-o", str(tmp_path / "o.png"), "--max-steps", bad]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--home", str(tmp_path / "h")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--max-steps" in err and "1<=x<=100" in err
    assert not (tmp_path / "o.png").exists()


def test_objectives_come_from_one_tuple() -> None:
    import restoregraph.metrics as metrics

    assert tuple(OBJECTIVE_METRICS) == OBJECTIVE_NAMES
    assert CLI_OBJECTIVES is OBJECTIVE_NAMES
    assert metrics.OBJECTIVES is OBJECTIVE_METRICS
    assert RUN_FIELDS["objective"].metadata["choices"] is OBJECTIVE_NAMES
    for command in (["restore"], ["chat"], ["serve"], ["data", "build"]):
        choice = _option(command, "--objective").type
        assert isinstance(choice, click.Choice)
        assert tuple(choice.choices) == OBJECTIVE_NAMES
