"""Pipeline search: the prefix tree, the data build (format, resume, workers, Ray), the CLI."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from restoregraph.imageio import save_image
from restoregraph.lab.search.build import BuildConfig, build_sample, list_sources, run_build
from restoregraph.lab.search.dataset import best_reachable, is_heldout, load_samples, node_features
from restoregraph.lab.search.mixtures import mixture_kind, mixture_tasks, sample_mixture
from restoregraph.lab.search.toolbox import default_toolbox, load_toolbox, validate_toolbox
from restoregraph.planners.tree import (
    TreeStats,
    count_prefixes,
    enumerate_pipelines,
    pipeline_total,
    tree_size,
    walk_tree,
)
from restoregraph.tools import builtin_registry
from restoregraph.tools.registry import ToolRegistry, ToolSpec
from restoregraph.tools.run import run_tool

# cheap classical tools: a build of a few samples takes seconds
TINY_TOOLBOX = {
    "denoise": ["denoise.bilateral", "denoise.nlmeans"],
    "deblur": ["deblur.unsharp"],
    "dejpeg": ["dejpeg.deblock"],
    "derain": ["derain.median"],
    "dehaze": ["dehaze.dcp"],
    "lowlight": ["lowlight.gamma"],
    "sr": ["sr.lanczos.x2"],
}
CROP = 64


# -- the prefix tree --------------------------------------------------------------------------
def _counting_registry(calls: list[str]) -> ToolRegistry:
    def scale(f: float):
        return lambda img: np.clip(img * f, 0, 1)

    def add(c: float):
        return lambda img: np.clip(img + c, 0, 1)

    specs = [
        ("denoise.a", scale(0.9)),
        ("denoise.b", scale(0.8)),
        ("deblur.a", add(0.05)),
        ("deblur.b", lambda img: np.clip(img**1.1, 0, 1)),
        ("dehaze.a", add(-0.03)),
    ]
    reg = ToolRegistry()
    for tool_id, fn in specs:

        def run(img: np.ndarray, fn=fn, tool_id=tool_id) -> np.ndarray:
            calls.append(tool_id)
            return fn(img).astype(np.float32)

        reg.register(ToolSpec(tool_id, tool_id.split(".")[0], "test tool", run))
    return reg


def test_tree_runs_each_prefix_once_and_matches_brute_force() -> None:
    calls: list[str] = []
    reg = _counting_registry(calls)
    models = {
        "denoise": ["denoise.a", "denoise.b"],
        "deblur": ["deblur.a", "deblur.b"],
        "dehaze": ["dehaze.a"],
    }
    pipes = enumerate_pipelines(models, max_pipelines=10_000)
    expected = {
        tuple(m)
        for order in itertools.permutations(models)
        for m in itertools.product(*(models[t] for t in order))
    }
    assert set(pipes) == expected and len(pipes) == pipeline_total(models) == 24
    img = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    finals: dict[tuple[str, ...], np.ndarray] = {}
    nodes: list[tuple[str, ...]] = []
    stats = walk_tree(
        img,
        pipes,
        reg,
        on_final=lambda p, out, err: finals.__setitem__(p, out),
        on_node=lambda p, out, err: nodes.append(p),
        stats=TreeStats(),
    )
    assert len(calls) == stats.tool_calls == count_prefixes(pipes) == tree_size(models)
    assert len(calls) < sum(len(p) for p in pipes)  # shared prefixes: fewer than brute force
    assert nodes[0] == () and len(nodes) == len(set(nodes)) == tree_size(models) + 1
    for i, p in enumerate(nodes):  # parents come before their children
        assert p[:-1] in nodes[:i] or p == ()
    calls.clear()
    for p in pipes:  # brute force: every pipeline from scratch
        out = img
        for tool in p:
            out = run_tool(reg.get(tool), out)
        np.testing.assert_array_equal(out, finals[p])
    assert len(calls) == sum(len(p) for p in pipes)


def test_tree_failed_tool_stops_its_subtree() -> None:
    calls: list[str] = []
    reg = _counting_registry(calls)

    def boom(img: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    reg.register(ToolSpec("denoise.broken", "denoise", "fails", boom))
    pipes = enumerate_pipelines({"denoise": ["denoise.broken"], "deblur": ["deblur.a"]})
    errors: dict[tuple[str, ...], str] = {}
    walk_tree(
        np.zeros((8, 8, 3), np.float32),
        pipes,
        reg,
        on_final=lambda p, out, err: errors.__setitem__(p, err),
    )
    assert "boom" in errors[("denoise.broken", "deblur.a")]
    assert "boom" in errors[("deblur.a", "denoise.broken")]


# -- toolbox and mixtures ---------------------------------------------------------------------
def test_default_toolbox_spans_and_caps() -> None:
    reg = builtin_registry()
    tb = default_toolbox(reg)
    assert tb and all(1 <= len(v) <= 3 for v in tb.values())
    assert all(reg.get(i).task == t for t, ids in tb.items() for i in ids)
    assert validate_toolbox(tb, reg) == tb
    assert load_toolbox("default", reg) == tb


def test_toolbox_file_errors(tmp_path: Path) -> None:
    from restoregraph.core.errors import InputError

    reg = builtin_registry()
    bad = tmp_path / "tb.json"
    bad.write_text(json.dumps({"denoise": ["denoise.nope"]}))
    with pytest.raises(InputError, match="unknown tool"):
        load_toolbox(bad, reg)
    bad.write_text(json.dumps({"denoise": ["deblur.wiener"]}))
    with pytest.raises(InputError, match="not a 'denoise' tool"):
        load_toolbox(bad, reg)
    with pytest.raises(InputError, match="no such toolbox"):
        load_toolbox(tmp_path / "missing.json", reg)


def test_mixtures_use_only_served_tasks() -> None:
    kinds = set()
    for i in range(300):
        mix = sample_mixture(np.random.default_rng(i), {"denoise": [], "dejpeg": [], "derain": []})
        tasks = mixture_tasks(mix)
        assert 1 <= len(mix) <= 4 and len(tasks) == len(mix)
        assert set(tasks) <= {"denoise", "dejpeg", "derain"}
        assert all(1 <= lvl <= 3 for _, lvl in mix)
        kinds.add(mixture_kind(mix))
    assert "rain+noise+jpeg" in kinds and "noise+jpeg" in kinds


def test_bench_mixture_set_draws_only_benchmark_kinds() -> None:
    from restoregraph.core.tasks import TASK_FOR_DEGRADATION
    from restoregraph.lab.search.mixtures import benchmark_kinds

    everything = {t: [] for t in set(TASK_FOR_DEGRADATION.values())}
    wanted = {mixture_kind([(t, 1) for t in m]) for m in benchmark_kinds()}
    assert len(benchmark_kinds()) == 21  # 7 + 16; noise+jpeg and low_light+noise are in both
    drawn = set()
    for i in range(400):
        mix = sample_mixture(np.random.default_rng(i), everything, "bench")
        assert all(1 <= lvl <= 3 for _, lvl in mix)
        drawn.add(mixture_kind(mix))
    assert drawn == wanted
    with pytest.raises(ValueError, match="unknown degradation type"):
        sample_mixture(np.random.default_rng(0), everything, "nope")
    with pytest.raises(ValueError, match="none of the benchmark"):
        sample_mixture(np.random.default_rng(0), {"desnow": []}, "bench")


# -- the build --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    for name in ("astronaut", "chelsea", "coffee"):
        save_image(getattr(skdata, name)()[:160, :160], root / f"{name}.png")
    return root


def _cfg(sources: Path, out: Path, n: int, features: bool = True) -> BuildConfig:
    return BuildConfig(
        source=str(sources),
        out=str(out),
        n=n,
        toolbox=TINY_TOOLBOX,
        seed=3,
        crop=CROP,
        features=features,
        command="test",
    )


@pytest.fixture(scope="module")
def full_build(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("search") / "full"
    summary = run_build(_cfg(sources, out, 3), show_progress=False)
    assert summary.built == 3 and summary.pipelines > 0 and summary.pipelines_per_s > 0
    return out


def test_sample_format(full_build: Path) -> None:
    manifest = json.loads((full_build / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["toolbox"] == TINY_TOOLBOX
    assert manifest["objective"] == "balanced" and manifest["crop"] == CROP
    samples = load_samples(full_build)
    assert [s["id"] for s in samples] == ["000000", "000001", "000002"]
    for s in samples:
        k = len(s["tasks"])
        assert s["tasks"] == mixture_tasks([tuple(m) for m in s["mixture"]])
        pipes = s["pipelines"]
        models = {t: TINY_TOOLBOX[t] for t in s["tasks"]}
        assert len(pipes) == pipeline_total(models)
        assert {tuple(p["steps"]) for p in pipes} == set(enumerate_pipelines(models, 10_000))
        assert len(s["nodes"]) == tree_size(models) + 1 == s["tool_calls"] + 1
        assert pipes[0]["rank"] == 1 and pipes[0]["percentile"] == 0.0
        ranks = [p["rank"] for p in pipes]
        assert ranks == sorted(ranks)
        scores = [p["score"] for p in pipes]
        assert scores == sorted(scores, reverse=True)
        assert abs(sum(scores)) < 1e-3 * len(scores)  # z-scores over the image's pipelines
        if len(pipes) > 1:
            assert pipes[-1]["percentile"] == pytest.approx(
                100 * (pipes[-1]["rank"] - 1) / (len(pipes) - 1)
            )
        for rel in (s["clean"], s["degraded"]):
            assert (full_build / rel).is_file()
        with_image = {tuple(nd["path"]) for nd in s["nodes"] if nd["image"]}
        best, worst = tuple(pipes[0]["steps"]), tuple(pipes[-1]["steps"])
        for p in (best, worst):
            assert all(p[:i] in with_image for i in range(k + 1))
        assert all((full_build / nd["image"]).is_file() for nd in s["nodes"] if nd["image"])
        assert all(set(nd["metrics"]) >= {"psnr", "ssim"} for nd in s["nodes"])
        feats = node_features(full_build, s)
        assert set(feats) == {tuple(nd["path"]) for nd in s["nodes"] if len(nd["path"]) < k}
        assert best_reachable(s)[()] == pipes[0]["score"]


def test_build_sample_is_deterministic(sources: Path, tmp_path: Path) -> None:
    cfg = _cfg(sources, tmp_path / "x", 1, features=False)
    srcs = list_sources(sources)
    a, b = build_sample(cfg, srcs, 1), build_sample(cfg, srcs, 1)
    assert a.record == b.record and a.files == b.files


def test_resume_after_stop_and_torn_line(sources: Path, full_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    run_build(_cfg(sources, out, 1), show_progress=False)  # stopped after one sample
    with (out / "samples.jsonl").open("a") as fh:
        fh.write('{"id": "000001", "source": "torn')  # a write cut short
    summary = run_build(_cfg(sources, out, 3), show_progress=False)
    assert summary.skipped == 1 and summary.built == 2
    assert (out / "samples.jsonl").read_bytes() == (full_build / "samples.jsonl").read_bytes()
    again = run_build(_cfg(sources, out, 3), show_progress=False)
    assert again.built == 0 and again.skipped == 3


def test_resume_after_kill(sources: Path, full_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    tb = tmp_path / "tb.json"
    tb.write_text(json.dumps(TINY_TOOLBOX))
    cmd = [
        sys.executable,
        "-m",
        "restoregraph",
        "data",
        "build",
        "--data",
        str(sources),
        "-o",
        str(out),
        "--n",
        "3",
        "--seed",
        "3",
        "--crop",
        str(CROP),
        "--toolbox",
        str(tb),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads((out / "manifest.json").read_text())
    assert done["toolbox"] == TINY_TOOLBOX
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "pipelines/s" in res.stderr
    assert samples.read_bytes() == (full_build / "samples.jsonl").read_bytes()


def test_workers_give_identical_output(sources: Path, full_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    summary = run_build(_cfg(sources, out, 3), workers=2, show_progress=False)
    assert summary.workers == 2 and summary.built == 3
    assert (out / "samples.jsonl").read_bytes() == (full_build / "samples.jsonl").read_bytes()
    for s in load_samples(out):
        for rel in (s["degraded"], s["features"]):
            assert (out / rel).read_bytes() == (full_build / rel).read_bytes()


@pytest.mark.slow
def test_ray_local_gives_identical_output(sources: Path, full_build: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    summary = run_build(_cfg(sources, out, 3), ray_address="local", show_progress=False)
    assert summary.built == 3
    assert (out / "samples.jsonl").read_bytes() == (full_build / "samples.jsonl").read_bytes()


def test_other_settings_refuse_to_resume(sources: Path, full_build: Path) -> None:
    from restoregraph.core.errors import OutputError

    cfg = _cfg(sources, full_build, 3)
    cfg.crop = CROP + 8
    with pytest.raises(OutputError, match="other settings"):
        run_build(cfg, show_progress=False)
    cfg = _cfg(sources, full_build, 3)
    cfg.mixtures = "bench"
    with pytest.raises(OutputError, match="mixtures"):
        run_build(cfg, show_progress=False)


def test_heldout_split_is_by_source() -> None:
    names = [f"set/{i}.png" for i in range(1000)]
    held = [n for n in names if is_heldout(n)]
    assert 120 < len(held) < 280
    assert all(is_heldout(n) for n in held)


def test_cli_errors(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from restoregraph.cli.main import main

    def run(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main(["data", "build", *args])
        return int(exc.value.code or 0), capsys.readouterr().err

    rc, err = run("--data", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"), "--n", "1")
    assert rc == 2 and "no such data folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    rc, err = run("--data", str(tmp_path), "-o", str(tmp_path / "o"), "--toolbox", "missing.json")
    assert rc == 2 and "toolbox" in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    rc, err = run("--data", str(sources), "-o", str(tmp_path / "busy"), "--n", "1")
    assert rc == 3 and "not empty" in err
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep"


def test_search_report_section(full_build: Path, tmp_path: Path) -> None:
    from restoregraph.lab.search import report

    doc = tmp_path / "BENCH.md"
    assert report.main(["--data", str(full_build), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "<!-- bench:search:start -->" in text and "pipelines/s" in text
    assert "3 samples" in text and "(mixtures: default)" in text
    # several directories: one heading, one block each
    assert (
        report.main(["--data", str(full_build), "--data", str(full_build), "--doc", str(doc)]) == 0
    )
    text = doc.read_text()
    assert text.count("## Pipeline search data") == 1 and text.count("3 samples") == 2
