"""The learned step critic: its data builder, its weights, and reflection's use of it
(docs/step_critic.md). No ../shared data needed: the photos are scikit-image's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.errors import ToolError
from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import save_image
from restoregraph.lab.common import is_heldout
from restoregraph.lab.training import step_critic_data as scd
from restoregraph.metrics import step_critic as sc
from restoregraph.runner import Runner
from restoregraph.tools import builtin_registry

FAST_TOOLS = [
    "denoise.bilateral",
    "denoise.tv",
    "deblur.unsharp",
    "deblur.wiener",
    "lowlight.gamma",
    "dehaze.dcp",
    "derain.median",
    "sr.bicubic.x2",
    "dejpeg.deblock",
]


def _features(task: str, before: np.ndarray, after: np.ndarray, seen: bool = True) -> np.ndarray:
    from restoregraph.metrics import quality_score
    from restoregraph.perception import default_perceiver

    p = default_perceiver()
    return sc.step_features(
        task,
        before,
        after,
        p.perceive(before).severity,
        p.perceive(after).severity,
        quality_score(before),
        quality_score(after),
        seen,
    )


def test_features_have_the_declared_names_and_handle_a_scale_change(
    astronaut_192: np.ndarray,
) -> None:
    img = astronaut_192[:96, :96]
    same = _features("denoise", img, img)
    assert same.shape == (len(sc.FEATURE_NAMES),) and np.isfinite(same).all()
    f = dict(zip(sc.FEATURE_NAMES, same, strict=True))
    assert f["task_denoise"] == 1.0 and f["abs_change"] == 0.0 and f["log2_scale"] == 0.0
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    g = dict(zip(sc.FEATURE_NAMES, _features("sr", img, big), strict=True))
    assert g["log2_scale"] == pytest.approx(1.0) and g["task_sr"] == 1.0
    assert g["abs_change"] < 0.05  # nearest-neighbour x2, back on the input grid: ~ the input


def test_builder_records_steps_with_the_true_gain(astronaut_192: np.ndarray) -> None:
    from restoregraph.metrics import psnr
    from restoregraph.metrics.fullref import match_size
    from restoregraph.perception import default_perceiver

    reg = builtin_registry().subset(FAST_TOOLS)
    rng = np.random.default_rng(3)
    clean = scd.random_crop(astronaut_192, rng)
    assert 96 <= clean.shape[0] <= 128 and 96 <= clean.shape[1] <= 128
    recs = scd.build_sample(clean, rng, reg, default_perceiver(), realistic=0.0)
    assert recs, "no step recorded"
    assert recs[0]["degraded_for_task"]  # the first step always undoes an applied degradation
    for r in recs:
        assert r["tool"] in FAST_TOOLS and len(r["features"]) == len(sc.FEATURE_NAMES)
        assert r["gain"] == pytest.approx(r["psnr_after"] - r["psnr_before"], abs=2e-4)
        assert r["round"] in (1, 2) and r["synthesis"] == "project"
    # the true gain is against the clean crop (an SR input brought to its size first)
    noisy, _ = apply_mixture(clean, [("noise", 2)], seed=0)
    assert scd.psnr_to(noisy, clean) == pytest.approx(psnr(noisy, clean))
    half = clean[::2, ::2]
    assert scd.psnr_to(half, clean) == pytest.approx(psnr(match_size(half, clean), clean))
    degraded, mixture, synthesis = scd.degrade_crop(clean, np.random.default_rng(5), 1.0)
    assert synthesis == "realistic" and 1 <= len(mixture) <= 3 and degraded.shape == clean.shape


def test_build_writes_steps_split_by_source(
    tmp_path: Path, astronaut_192: np.ndarray, chelsea_192: np.ndarray
) -> None:
    data = tmp_path / "train"
    (data / "CBSD432").mkdir(parents=True)
    for i, img in enumerate([astronaut_192, chelsea_192]):
        save_image(img, data / "CBSD432" / f"img{i}.png")
    (data / "PolyU_real_noise_cropped").mkdir()  # never a source
    assert scd.list_sources(data) == ["CBSD432/img0.png", "CBSD432/img1.png"]
    manifest = scd.build(data, tmp_path / "out", seed=1, max_samples=2, log=lambda _: None)
    recs = scd.load_steps(tmp_path / "out")
    assert manifest["samples"] == 2 and manifest["steps"] == len(recs) > 0
    assert manifest["features"] == list(sc.FEATURE_NAMES) and manifest["steps_per_s"] > 0
    for r in recs:
        assert r["heldout"] == is_heldout(r["source"])
    with pytest.raises(Exception, match="no such data folder"):
        scd.list_sources(tmp_path / "missing")


def test_shipped_weights_load_and_are_in_the_manifest() -> None:
    from restoregraph.weightfiles import sha256_of

    critic = sc.load_step_critic()
    assert critic.mean.shape == (len(sc.FEATURE_NAMES),)
    entries = json.loads((sc.WEIGHTS_DIR / "MANIFEST.json").read_text())
    entry = next(e for e in entries if e["id"] == "reflection.step_critic")
    assert entry["file"] == sc.DEFAULT_WEIGHTS.name
    assert entry["sha256"] == sha256_of(sc.DEFAULT_WEIGHTS)
    assert sc.DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    assert "step_critic_train" in entry["command"] and entry["seed"] == 0


def test_critic_tells_a_helpful_step_from_a_harmful_one(astronaut_192: np.ndarray) -> None:
    """Denoising a noisy photo gains ~6 dB; brightening it (no low light there) loses ~0.6 dB."""
    from restoregraph.tools.classical.denoise import tv
    from restoregraph.tools.classical.lowlight import gamma

    noisy, _ = apply_mixture(astronaut_192, [("noise", 2)], seed=0)
    critic = sc.load_step_critic()
    good = float(critic.predict(_features("denoise", noisy, tv(noisy))))
    bad = float(critic.predict(_features("lowlight", noisy, gamma(noisy), seen=False)))
    assert good > 1.0 and bad < critic.veto_threshold < critic.threshold < good
    batch = critic.predict(np.stack([_features("denoise", noisy, noisy)] * 2))
    assert batch.shape == (2,) and batch[0] == batch[1]


def test_bad_weights_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="not found.*step_critic_train"):
        sc.load_step_critic(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ToolError, match="unreadable"):
        sc.load_step_critic(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"arch": sc.ARCH, "features": ["a", "b"]}))
    with pytest.raises(ToolError, match="other features"):
        sc.load_step_critic(other)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"arch": "x"}))
    with pytest.raises(ToolError, match="unknown architecture"):
        sc.load_step_critic(wrong)


def _requested_run(
    tmp_path: Path, home: Path, img: np.ndarray, tool: str, mode: str, name: str
) -> dict[str, object]:
    """One requested step of ``tool`` (its task in ``required_tasks``) on ``img``."""
    src = save_image(img, tmp_path / f"{name}_in.png")
    reg = builtin_registry()
    task = reg.get(tool).task
    ctx = RunContext(planner="fixed", max_steps=1, required_tasks=(task,), step_critic=mode)  # type: ignore[arg-type]
    ctx.registry = reg.subset([tool])
    result = Runner(home).start(src, tmp_path / f"{name}.png", ctx)
    return dict(result.history[0])


def test_requested_step_vetoed_by_the_critic_names_it(
    tmp_path: Path, home: Path, astronaut_192: np.ndarray
) -> None:
    """ "Make it brighter" on a noisy, well-exposed photo: it passes the safety checks (kept
    today), the critic predicts a loss (true: -0.6 dB) and vetoes it; brightening a dark photo
    is kept."""
    noisy, _ = apply_mixture(astronaut_192, [("noise", 2)], seed=0)
    off = _requested_run(tmp_path, home, noisy, "lowlight.gamma", "off", "off")
    assert off["status"] == "accepted"
    veto = _requested_run(tmp_path, home, noisy, "lowlight.gamma", "veto", "veto")
    assert veto["status"] == "rolled_back"
    assert "requested, but not kept: the step critic predicts a loss" in str(veto["reason"])
    dark, _ = apply_mixture(astronaut_192, [("low_light", 2)], seed=0)
    kept = _requested_run(tmp_path, home, dark, "lowlight.gamma", "decide", "kept")
    assert kept["status"] == "accepted" and "step critic predicts +" in str(kept["reason"])


def test_decide_uses_the_critic_only_for_its_tasks(
    tmp_path: Path, home: Path, astronaut_192: np.ndarray
) -> None:
    critic = sc.load_step_critic()
    assert "lowlight" in critic.decide_tasks and "denoise" not in critic.decide_tasks
    dark, _ = apply_mixture(astronaut_192, [("low_light", 2)], seed=0)
    src = save_image(dark, tmp_path / "dark.png")
    ctx = RunContext(planner="fixed", max_steps=2, step_critic="decide")
    ctx.registry = builtin_registry().subset(["lowlight.gamma", "denoise.tv"])
    history = Runner(home).start(src, tmp_path / "out.png", ctx).history
    assert any(rec["task"] == "lowlight" for rec in history)
    for rec in history:
        by_critic = "step critic predicts" in rec["reason"]
        assert by_critic == (rec["task"] in critic.decide_tasks), rec


def test_missing_critic_falls_back_with_the_reason(
    tmp_path: Path, home: Path, astronaut_192: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sc, "DEFAULT_WEIGHTS", tmp_path / "gone.json")
    noisy, _ = apply_mixture(astronaut_192, [("noise", 2)], seed=0)
    rec = _requested_run(tmp_path, home, noisy, "lowlight.gamma", "veto", "gone")
    assert rec["status"] == "accepted" and "step critic unavailable" in str(rec["reason"])


def test_trainer_learns_a_gain_and_writes_loadable_weights(tmp_path: Path) -> None:
    """On made-up steps whose gain is a function of two features, the trainer's critic ranks
    held-out steps far better than the rule (which reads only the severities and qualities)."""
    from restoregraph.lab.training import step_critic_train as sct

    rng = np.random.default_rng(0)
    width = len(sc.FEATURE_NAMES)
    tasks = ["denoise", "deblur", "sr"]
    lines = []
    for i in range(600):
        f = rng.normal(size=width)
        gain = float(1.5 * f[20] - f[30])
        task = tasks[i % 3]
        sev = {"noise": float(rng.uniform(0, 3))}
        lines.append(
            {
                "sample": i // 3,
                "round": 1,
                "source": f"CBSD432/{i // 6}.png",
                "heldout": is_heldout(f"CBSD432/{i // 6}.png"),
                "task": task,
                "seen": True,
                "gain": round(gain, 4),
                "severity_before": sev,
                "severity_after": {"noise": float(rng.uniform(0, 3))},
                "quality_before": 0.5,
                "quality_after": float(rng.uniform(0.4, 0.6)),
                "safety_problem": "",
                "features": f.tolist(),
            }
        )
    data = tmp_path / "steps"
    data.mkdir()
    (data / scd.STEPS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "critic.json"
    report = sct.train([data], out, seed=0, write_manifest=False)
    held = report["heldout"]
    assert held["critic"]["spearman"] > 0.8 > held["rule"]["spearman"]
    assert held["critic"]["accuracy"] > held["rule"]["accuracy"]
    critic = sc.load_step_critic(out)
    assert "sr" not in critic.decide_tasks and set(critic.decide_tasks) <= set(tasks)
    assert critic.veto_threshold <= critic.threshold
