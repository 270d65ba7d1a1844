"""``restoregraph adapt --add-tool``: extend real (tiny) search data for a new tool and
fine-tune the embedded planner from its current weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.errors import InputError
from restoregraph.imageio import as_float_image, save_image

TOOLBOX = {"denoise": ["denoise.bilateral"], "dejpeg": ["dejpeg.deblock"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Search data from the real builder (3 samples, 48 px) and a tiny embedded planner."""
    import skimage.data
    import torch

    from restoregraph.lab.search.build import BuildConfig, run_build
    from restoregraph.lab.search.dataset import load_samples
    from restoregraph.lab.training.embedded_train import build_nodes, train

    root = tmp_path_factory.mktemp("adapt")
    src = root / "src"
    src.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        save_image(as_float_image(getattr(skimage.data, name)())[:96, :96], src / f"{name}.png")
    data = root / "data"
    cfg = BuildConfig(source=str(src), out=str(data), n=4, toolbox=TOOLBOX, crop=48)
    run_build(cfg, show_progress=False)
    vocab = [i for v in TOOLBOX.values() for i in v]
    nodes = build_nodes(data, load_samples(data), vocab, 0)
    blob = train(nodes, vocab, steps=5, seed=0, hidden=4, batch=8, log_every=0)
    weights = root / "planner.pt"
    torch.save(blob, weights)
    return data, weights


def test_warm_start_keeps_the_old_tools_values(built: tuple[Path, Path]) -> None:
    import torch

    from restoregraph.lab.training.adapt import warm_start
    from restoregraph.planners.embedded import Scorer

    _, weights = built
    old = torch.load(weights, weights_only=True)
    vocab = ["denoise.bilateral", "denoise.tv", "dejpeg.deblock"]
    new = {**old, "state": warm_start(old, vocab), "meta": {**old["meta"], "vocab": vocab}}
    new.pop("members", None)
    a, b = Scorer(old), Scorer(new)
    feats = np.random.default_rng(0).normal(size=len(old["feat_mean"])).astype(np.float32)
    olds = [["denoise.bilateral", "dejpeg.deblock"], ["dejpeg.deblock", "denoise.bilateral"]]
    assert np.allclose(b.score(feats, [], olds), a.score(feats, [], olds), atol=1e-5)
    # the new denoiser starts as its task's (only) other tool
    tv = b.score(feats, [], [["denoise.tv", "dejpeg.deblock"]])
    assert np.allclose(tv, a.score(feats, [], olds[:1]), atol=1e-5)


def test_adapt_extends_data_and_finetunes(built: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    import torch

    from restoregraph.lab.search.dataset import iter_samples, node_features
    from restoregraph.lab.training.adapt import adapt
    from restoregraph.planners.embedded import Scorer

    src_data, weights = built
    data = tmp_path / "data"
    shutil.copytree(src_data, data)
    before = {s["id"]: s for s in iter_samples(data)}
    out = tmp_path / "adapted.pt"
    s = adapt("denoise.tv", data, weights, out, steps=5, show_progress=False)
    after = {x["id"]: x for x in iter_samples(data)}
    assert set(after) == set(before)
    with_denoise = [i for i, x in before.items() if "denoise" in x["tasks"]]
    assert with_denoise and s.extended == len(with_denoise)
    assert s.new_pipelines == sum(len(before[i]["pipelines"]) for i in with_denoise)
    for i, x in after.items():
        if i not in with_denoise:
            assert x == before[i]
            continue
        steps = [p["steps"] for p in x["pipelines"]]
        assert len(steps) == 2 * len(before[i]["pipelines"])  # two denoisers now
        assert sum("denoise.tv" in p for p in steps) == len(before[i]["pipelines"])
        ranks = sorted(p["rank"] for p in x["pipelines"])
        assert ranks[0] == 1 and all(0 <= p["percentile"] <= 100 for p in x["pipelines"])
        scores = [p["score"] for p in x["pipelines"]]
        assert scores == sorted(scores, reverse=True)  # best first
        n_tasks = len(x["tasks"])
        decisions = {tuple(n["path"]) for n in x["nodes"] if len(n["path"]) < n_tasks}
        assert set(node_features(data, x)) == decisions  # features of every decision point
        best = x["pipelines"][0]["steps"]
        paths = {tuple(n["path"]): n for n in x["nodes"]}
        assert all(paths[tuple(best[:k])]["image"] for k in range(len(best) + 1))
        assert all((data / n["image"]).is_file() for n in x["nodes"] if n["image"])
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["toolbox"]["denoise"] == ["denoise.bilateral", "denoise.tv"]
    assert manifest["adapted"][-1]["tool"] == "denoise.tv"
    model = Scorer(torch.load(out, weights_only=True))
    assert "denoise.tv" in model.vocab and model.meta["finetuned_from"] == str(weights)
    assert s.data_seconds > 0 and s.train_seconds > 0
    assert set(s.eval_after) == {"samples", "mean_pct", "uses_new_tool"}
    with pytest.raises(InputError, match="already holds"):
        adapt("denoise.tv", data, weights, tmp_path / "again.pt", steps=1, show_progress=False)


def test_adapt_new_task_builds_samples_that_need_it(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    from restoregraph.lab.search.dataset import iter_samples
    from restoregraph.lab.training.adapt import extend_data

    data = tmp_path / "data"
    shutil.copytree(built[0], data)
    n0 = len(list(iter_samples(data)))
    s = extend_data(data, "deblur.unsharp", new_samples=1, show_progress=False)
    samples = list(iter_samples(data))
    assert len(samples) == n0 + s.new_samples and s.new_samples >= 1
    assert any("deblur" in x["tasks"] for x in samples[n0:]) or s.new_samples == 6
    assert json.loads((data / "manifest.json").read_text())["toolbox"]["deblur"] == [
        "deblur.unsharp"
    ]


def test_cli_adapt_unknown_tool_is_one_line(
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from restoregraph.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["adapt", "--add-tool", "denoise.nope", "--data", str(built[0]), "--no-train"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown tool" in err and err.count("\n") == 1


def test_cli_adapt_reports_wall_time(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from restoregraph.cli.main import main

    data = tmp_path / "data"
    shutil.copytree(built[0], data)
    doc = tmp_path / "BENCH.md"
    argv = ["adapt", "--add-tool", "denoise.tv", "--data", str(data), "--weights", str(built[1])]
    argv += ["-o", str(tmp_path / "w.pt"), "--steps", "2", "--doc", str(doc)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code in (0, None), err
    assert "adapt wall time:" in err and (tmp_path / "w.pt").is_file()
    text = doc.read_text()
    assert "<!-- bench:adapt:start -->" in text and "- command: `restoregraph adapt" in text
    assert "| **total** |" in text and "new pipelines" in text and "Held-out check:" in text
