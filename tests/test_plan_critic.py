"""The plan critic (trained on final-image features of real search data) and the embedded
planner's verify mode: real tools on real pixels, tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from restoregraph.core.errors import OutputError, PlanError
from restoregraph.imageio import save_image

TOOLBOX = {
    "denoise": ["denoise.bilateral", "denoise.nlmeans"],
    "dejpeg": ["dejpeg.deblock"],
    "lowlight": ["lowlight.gamma"],
    "derain": ["derain.median"],
    "dehaze": ["dehaze.dcp"],
    "deblur": ["deblur.unsharp"],
    "sr": ["sr.lanczos.x2"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from restoregraph.lab.search.build import BuildConfig, run_build
    from restoregraph.lab.training import critic_train, embedded_train

    root = tmp_path_factory.mktemp("critic")
    src = root / "clean"
    src.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        save_image(getattr(skdata, name)()[:128, :128], src / f"{name}.png")
    data = root / "search"
    cfg = BuildConfig(str(src), str(data), 4, TOOLBOX, seed=1, crop=64, leaf_features=True)
    run_build(cfg, show_progress=False)
    planner = root / "planner.pt"
    args = ["--data", str(data), "--steps", "10", "--heldout-percent", "0"]
    assert embedded_train.main([*args, "--out", str(planner), "--eval-split", "all"]) == 0
    critic = root / "critic.pt"
    summary = root / "critic.json"
    rc = critic_train.main(
        [*args, "--out", str(critic), "--ensemble", "2", "--planner", str(planner)]
        + ["--eval-split", "all", "--json", str(summary)]
    )
    assert rc == 0
    return {"data": data, "planner": planner, "critic": critic, "summary": summary}


def test_leaf_features_are_stored_and_a_resume_must_match(trained: dict[str, Path]) -> None:
    from restoregraph.lab.search.build import BuildConfig, prepare
    from restoregraph.lab.search.dataset import load_samples, node_features

    data = trained["data"]
    assert json.loads((data / "manifest.json").read_text())["leaf_features"] is True
    for sample in load_samples(data):
        feats = node_features(data, sample)
        finals = [tuple(p["steps"]) for p in sample["pipelines"] if p["steps"]]
        assert finals and all(p in feats for p in finals)  # every final image's features
    with pytest.raises(OutputError, match="leaf_features"):
        prepare(BuildConfig("x", str(data), 4, TOOLBOX, seed=1, crop=64))


def test_critic_trains_loads_scores_and_evaluates(trained: dict[str, Path]) -> None:
    from restoregraph.lab.search.dataset import load_samples
    from restoregraph.lab.training.critic_train import sample_finals
    from restoregraph.planners.critic import load_critic

    critic = load_critic(trained["critic"])
    assert len(critic.nets) == 2 and critic.objective == "balanced"
    sample = load_samples(trained["data"])[0]
    got = sample_finals(trained["data"], sample)
    assert got is not None
    source, pipes, finals = got
    scores = critic.score(finals, source)
    assert scores.shape == (len(pipes),) and abs(scores.mean()) < 1e-6
    assert np.isfinite(scores).all() and np.ptp(scores) > 0  # it tells the finals apart
    summary = json.loads(trained["summary"].read_text())
    assert summary["n"] >= 1
    for key in ("critic_all", "embedded", "verify2", "verify3"):
        assert 0.0 <= summary["overall"][key] <= 100.0
    with pytest.raises(PlanError, match="not found"):
        load_critic(trained["critic"].parent / "missing.pt")


def test_embedded_planner_verifies_its_best_plans_with_the_critic(
    trained: dict[str, Path],
) -> None:
    from restoregraph.degrade import apply_mixture
    from restoregraph.planners import get_planner
    from restoregraph.planners.base import PlanRequest
    from restoregraph.planners.embedded import ranked_completions
    from restoregraph.tools import default_registry

    toolbox = default_registry().subset([t for v in TOOLBOX.values() for t in v])
    clean = skdata.astronaut()[100:196, 100:196].astype(np.float32) / 255
    degraded, _ = apply_mixture(clean, [("noise", 2), ("jpeg", 2)], seed=3)
    req = PlanRequest(
        perception={"noise": 2, "jpeg": 2}, toolbox=toolbox, load_image=lambda: degraded
    )
    plain = get_planner("embedded", weights=str(trained["planner"]))
    checked = get_planner(
        "embedded", weights=str(trained["planner"]), verify="3", critic=str(trained["critic"])
    )
    assert "verify" not in plain.plan(req).note
    plan = checked.plan(req)
    assert "verify: " in plan.note and " trials (" in plan.note
    from restoregraph.planners.features import image_features

    model = plain.model
    x = model.inputs(image_features(degraded), req.perception)
    allowed = lambda task, pos: [s.id for s in toolbox.for_task(task)]  # noqa: E731
    top3 = [c for c, _ in ranked_completions(model, x, ["dejpeg", "denoise"], allowed)[:3]]
    assert tuple(s["tool"] for s in plan.steps) in top3
    # the bench counts the verification's tool calls
    from restoregraph.lab.bench.agent import _trials

    calls = _trials([{"event": "plan", "note": plan.note}])
    assert calls >= 3  # three plans of two steps sharing at most one first step
    # another objective than the critic's: the plan is not verified, and says so
    other = checked.plan(
        PlanRequest(
            perception={"noise": 2, "jpeg": 2},
            toolbox=toolbox,
            load_image=lambda: degraded,
            objective="psnr",
        )
    )
    assert "not verified" in other.note
    with pytest.raises(PlanError, match="whole number"):
        get_planner("embedded", verify="some")
    with pytest.raises(PlanError, match="prior"):
        get_planner("embedded", prior="strong")
    led = get_planner(
        "embedded",
        weights=str(trained["planner"]),
        verify=3,
        critic=str(trained["critic"]),
        prior="100",
    )  # the planner's own values outweigh the critic: its first choice is kept
    assert tuple(s["tool"] for s in led.plan(req).steps) == top3[0]
    with pytest.raises(PlanError, match="not found"):
        get_planner("embedded", verify=2, critic=str(trained["critic"].parent / "none.pt"))


def test_bench_label_embedded_verify_is_the_embedded_planner_with_verify() -> None:
    from restoregraph.lab.bench.agent import FAIR_PLANNERS, resolve_planner

    assert "embedded-verify" in FAIR_PLANNERS
    assert resolve_planner("embedded-verify") == ("embedded", {"verify": 3})


def test_combine_pick_weighs_the_critic_against_the_planner() -> None:
    from restoregraph.planners.critic import combine_pick

    assert combine_pick([0.0, 1.0, 0.5], [3.0, 0.0, 1.0]) == 1  # the critic alone
    assert combine_pick([0.0, 1.0, 0.5], [3.0, 0.0, 1.0], prior=10.0) == 0
    assert combine_pick([0.2, 0.2], [1.0, 1.0]) == 0  # ties: the planner's first
