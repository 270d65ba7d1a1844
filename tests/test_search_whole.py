"""Search over the whole toolbox (issue #21): the capped whole toolbox, realistic samples in the
build, raindrop in the random mixtures, and the bench default toolbox."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data as skdata

from restoregraph.core.errors import InputError
from restoregraph.core.tasks import TASK_FOR_DEGRADATION, TASK_FOR_PERCEPTION_TYPE
from restoregraph.imageio import save_image
from restoregraph.lab.search.build import (
    BuildConfig,
    build_sample,
    degrade_sample,
    list_sources,
    run_build,
)
from restoregraph.lab.search.mixtures import sample_mixture
from restoregraph.lab.search.toolbox import (
    WHOLE_TOOLBOX,
    default_toolbox,
    load_toolbox,
    validate_toolbox,
    whole_toolbox,
)
from restoregraph.tools import builtin_registry

CHEAP = {
    "denoise": ["denoise.bilateral"],
    "dejpeg": ["dejpeg.deblock"],
    "derain": ["derain.median"],
}


def test_whole_toolbox_caps_at_three_and_mixes_kinds() -> None:
    reg = builtin_registry()
    tb = whole_toolbox(reg)
    assert load_toolbox("whole", reg) == tb
    assert validate_toolbox(tb, reg) == tb
    assert all(1 <= len(ids) <= 3 for ids in tb.values())
    # every task a perceived type maps onto has candidates, deraindrop included
    assert set(tb) == set(TASK_FOR_PERCEPTION_TYPE.values())
    kinds = {reg.get(i).kind for ids in tb.values() for i in ids}
    assert kinds == {"learned", "classical"}
    # the classical tools the learned benchmark ranks first where they win
    for tool in ("denoise.oidn", "dehaze.dcp", "lowlight.gamma", "sr.lanczos.x2"):
        assert tool in tb[reg.get(tool).task]
    # today's search toolbox is left as it was: the learned tools first
    default = default_toolbox(reg)
    assert default["denoise"] == ["denoise.nafnet.low", "denoise.nafnet.mid", "denoise.nafnet.high"]
    assert default["dehaze"] == ["dehaze.nafnet"]


def test_whole_toolbox_drops_missing_tools() -> None:
    reg = builtin_registry().subset(["denoise.oidn", "dehaze.dcp", "dehaze.nafnet"])
    assert whole_toolbox(reg) == {
        "denoise": ["denoise.oidn"],
        "dehaze": ["dehaze.dcp", "dehaze.nafnet"],
    }
    assert set(WHOLE_TOOLBOX) <= set(TASK_FOR_PERCEPTION_TYPE.values())


def test_random_mixtures_draw_raindrop_in_lens_order() -> None:
    from restoregraph.lab.search.mixtures import _order

    tasks = {t: [] for t in set(TASK_FOR_DEGRADATION.values())}
    drawn = [sample_mixture(np.random.default_rng(i), tasks) for i in range(600)]
    assert sum(any(t == "raindrop" for t, _ in mix) for mix in drawn) > 10
    # physical order: the scene's weather, then drops on the lens, then exposure and optics
    for i in range(20):
        types = ["jpeg", "noise", "low_light", "raindrop", "haze", "motion_blur"]
        order = _order(types, np.random.default_rng(i), shuffle=False)
        assert order == ["haze", "raindrop", "low_light", "motion_blur", "noise", "jpeg"]


def test_realistic_degradation_keeps_types_and_levels() -> None:
    clean = np.full((64, 64, 3), 0.5, np.float32)
    clean[16:48, 16:48] = 0.8
    mix = [("haze", 2), ("noise", 1), ("jpeg", 3)]
    out, applied = degrade_sample(clean, mix, seed=5, realistic=True)
    again, _ = degrade_sample(clean, mix, seed=5, realistic=True)
    project, infos = degrade_sample(clean, mix, seed=5, realistic=False)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.array_equal(out, again)
    assert not np.allclose(out, project)
    assert [(a["type"], a["level"]) for a in applied] == mix
    assert all(a["synthesis"] == "realistic" and a["params"] for a in applied)
    json.dumps(applied)  # stored in samples.jsonl
    assert [(a["type"], a["level"]) for a in infos] == mix


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    for name in ("astronaut", "chelsea"):
        save_image(getattr(skdata, name)()[:128, :128], root / f"{name}.png")
    return root


def test_build_with_realistic_share(sources: Path, tmp_path: Path) -> None:
    def cfg(share: float, out: str) -> BuildConfig:
        return BuildConfig(
            source=str(sources),
            out=str(tmp_path / out),
            n=6,
            toolbox=CHEAP,
            seed=4,
            crop=48,
            features=False,
            realistic=share,
        )

    srcs = list_sources(sources)
    every = [build_sample(cfg(1.0, "a"), srcs, i).record for i in range(3)]
    none = [build_sample(cfg(0.0, "b"), srcs, i).record for i in range(3)]
    assert all(r["synthesis"] == "realistic" for r in every)
    assert all(r["synthesis"] == "project" for r in none)
    # the same mixture and crop either way: only the synthesis differs
    assert [r["mixture"] for r in every] == [r["mixture"] for r in none]
    summary = run_build(cfg(0.5, "half"), show_progress=False)
    assert summary.built == 6
    manifest = json.loads((tmp_path / "half" / "manifest.json").read_text())
    assert manifest["realistic"] == 0.5
    with pytest.raises(InputError, match="realistic"):
        run_build(cfg(1.5, "bad"), show_progress=False)


def test_data_build_cli_whole_and_realistic(sources: Path, tmp_path: Path) -> None:
    from restoregraph.cli.cmd_data import build_cmd

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        build_cmd,
        [
            "--data",
            str(sources),
            "-o",
            str(out),
            "--n",
            "1",
            "--crop",
            "48",
            "--toolbox",
            "whole",
            "--realistic",
            "1",
            "--mixtures",
            "noise+jpeg",
            "--no-features",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["toolbox"]["denoise"] == list(WHOLE_TOOLBOX["denoise"])
    assert manifest["realistic"] == 1.0
    sample = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert sample["synthesis"] == "realistic"
    assert len(sample["pipelines"]) == 2 * 3 * 3  # 2 orders x 3 denoisers x 3 JPEG tools


def test_bench_default_toolbox_is_all() -> None:
    from restoregraph.cli.cmd_bench import agent_cmd, plans_cmd
    from restoregraph.lab.bench.agent import AgentConfig
    from restoregraph.lab.bench.plans import PlanBenchConfig

    for cmd in (agent_cmd, plans_cmd):
        opt = next(p for p in cmd.params if p.name == "toolbox")
        assert opt.default == "all"
        assert list(opt.type.choices) == ["search", "all"]  # type: ignore[attr-defined]
    assert PlanBenchConfig(data=Path(".")).toolbox == "all"
    assert AgentConfig.__dataclass_fields__["toolbox"].default == "all"
