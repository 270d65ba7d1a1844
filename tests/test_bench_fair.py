"""The fair planner benchmark (``restoregraph bench agent``): suites, planner resolution, the
group table, the per-mixture rank matrix and the objective switch, on a tiny config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.errors import InputError
from restoregraph.degrade import parse_mixture
from restoregraph.imageio import save_image
from restoregraph.lab.bench.agent import (
    AGENTICIR_GROUPS,
    FAIR_HEADERS,
    MIXTURES,
    AgentConfig,
    agent_markdown,
    mixture_group,
    resolve_planner,
    run_agent_bench,
    suite_mixtures,
)
from tests.test_bench import TruthPerceiver


@pytest.fixture
def tiny_data(tmp_path: Path, astronaut_192: np.ndarray) -> Path:
    folder = tmp_path / "data" / "Tiny"
    folder.mkdir(parents=True)
    save_image(astronaut_192[:96, :128], folder / "1.png")
    return tmp_path / "data"


def test_suites_and_groups() -> None:
    assert [len(AGENTICIR_GROUPS[g]) for g in "ABC"] == [8, 4, 4]
    mixtures = suite_mixtures(["restoreagent", "agenticir"])
    assert len(MIXTURES) == 7 and mixtures[:7] == list(MIXTURES)
    assert len(mixtures) == 7 + 16 - 2  # noise+jpeg and low_light+noise are in both
    for m in mixtures:
        parse_mixture(m)  # every name is a degradation type of ours
    assert mixture_group("rain+haze") == "AgenticIR A"
    assert mixture_group("haze+noise") == "AgenticIR B"
    assert mixture_group("motion_blur+defocus+noise") == "AgenticIR C"
    assert mixture_group("noise+jpeg") == "RestoreAgent 7"
    with pytest.raises(InputError, match="unknown suite"):
        suite_mixtures(["nope"])


def test_llm_label_resolves_or_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    r = resolve_planner("llm")
    assert isinstance(r, tuple) or r.startswith("not run: no OPENAI_BASE_URL set")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    r = resolve_planner("llm")
    assert isinstance(r, tuple) or "does not answer" in r
    assert resolve_planner("fixed") == ("fixed", {})


def test_fair_bench_tiny(tiny_data: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    cfg = AgentConfig(
        data=tiny_data,
        set_name="Tiny",
        n=1,
        planners=["fixed", "random-model", "llm"],
        mixtures=["noise+jpeg", "haze+noise"],
        short=96,
        long=128,
        max_steps=3,
        perceiver=TruthPerceiver(),
        toolbox="all",
        oracle_cap=12,
        switch_objectives=["psnr"],
        switch_planners=["fixed", "random-model"],
        switch_mixtures=["noise+jpeg"],
        switch_n=1,
    )
    result = run_agent_bench(cfg)
    ran = {r["candidate"] for r in result.records}
    assert {"input", "fixed", "random-model"} <= ran
    if "llm" in result.skipped:
        assert "llm" not in ran and result.skipped["llm"].startswith("not run")
    assert {r["group"] for r in result.records} == {"RestoreAgent 7", "AgenticIR B"}
    fixed = [r for r in result.records if r["candidate"] == "fixed"]
    assert all(r["calls"] == r["steps"] + r["trials"] for r in fixed)
    assert all({"ms_ssim", "haarpsi", "gmsd"} <= set(r["metrics"]) for r in fixed)
    assert all(
        set(o["best_by"]) == {"balanced", "psnr", "ssim", "perceptual"} for o in result.oracle
    )
    # the oracle's best under psnr has the highest PSNR of every objective's best
    for o in result.oracle:
        top = o["best_by"]["psnr"]["metrics"]["psnr"]
        assert all(b["metrics"]["psnr"] <= top + 1e-9 for b in o["best_by"].values())
    # objective switch: the main run's records (balanced) plus a fresh psnr run
    objs = {(r["objective"], r["candidate"]) for r in result.switch}
    assert objs == {(o, p) for o in ("balanced", "psnr") for p in ("fixed", "random-model")}
    # planning only: every planner once per image from the true degradations, ranked
    main = [r for r in result.plans if r["objective"] == "balanced"]
    assert {(r["mixture"], r["candidate"]) for r in main} == {
        (m, p) for m in cfg.mixtures for p in ("fixed", "random-model", *result.resolved)
    } - {(m, "llm") for m in cfg.mixtures if "llm" in result.skipped}
    for r in main:
        assert np.isfinite(r["pct"]) and 0 <= r["pct"] <= 100, r
        assert {t.split(".")[0] for t in r["pipeline"]} == (
            {"denoise", "dejpeg"} if r["mixture"] == "noise+jpeg" else {"dehaze", "denoise"}
        )
    psnr_plans = [r for r in result.plans if r["objective"] == "psnr"]
    assert {r["candidate"] for r in psnr_plans} == {"fixed", "random-model"}
    text = agent_markdown(result)
    assert "### Planning only: the true degradations given" in text
    assert "| AgenticIR B | fixed |" in text.split("### Planning only")[1]
    assert "| " + " | ".join(FAIR_HEADERS) + " |" in text
    assert "| RestoreAgent 7 | fixed |" in text and "| AgenticIR B | random-model |" in text
    assert "| **all** | *oracle best* |" in text
    assert "### Pipeline rank per mixture" in text and "| haze+noise | AgenticIR B |" in text
    assert "### Objective switch" in text and "| psnr | fixed |" in text
    assert "| psnr | *oracle best* |" in text
    if "llm" in result.skipped:
        assert "llm (llm): not run" in text
    # the per-mixture detail table is still there (folded)
    assert "<details>" in text and "| noise+jpeg | fixed |" in text
