"""``restoregraph bench plans``: planning only on many images, paired with the fixed rules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from restoregraph.cli.main import main
from restoregraph.core.errors import InputError
from restoregraph.imageio import save_image
from restoregraph.lab.bench.plans import (
    Paired,
    PlanBenchConfig,
    paired,
    plan_bench_markdown,
    run_plan_bench,
)


@pytest.fixture
def tiny_data(tmp_path: Path, astronaut_192: np.ndarray, chelsea_192: np.ndarray) -> Path:
    folder = tmp_path / "data" / "Tiny"
    folder.mkdir(parents=True)
    save_image(astronaut_192[:64, :96], folder / "1.png")
    save_image(chelsea_192[:64, :96], folder / "2.png")
    return tmp_path / "data"


def _rec(mixture: str, image: str, planner: str, pct: float) -> dict:
    return {
        "mixture": mixture,
        "image": image,
        "candidate": planner,
        "objective": "balanced",
        "pct": pct,
    }


def test_paired_difference_and_verdicts() -> None:
    recs = [
        _rec("m", "a", "fixed", 50.0),
        _rec("m", "a", "emb", 0.0),
        _rec("m", "b", "fixed", 25.0),
        _rec("m", "b", "emb", 25.0),
        _rec("m", "c", "fixed", 75.0),
        _rec("m", "c", "emb", 100.0),
        _rec("m", "d", "fixed", 10.0),
        _rec("m", "d", "emb", math.nan),  # not ranked: the image is left out of the pair
    ]
    p = paired(recs, "emb", "fixed")
    assert (p.n, p.wins, p.ties, p.losses) == (3, 1, 1, 1)
    assert p.mean == pytest.approx(125 / 3) and p.base == pytest.approx(50.0)
    assert p.diff == pytest.approx(-25 / 3)
    assert p.se == pytest.approx(float(np.std([-50, 0, 25], ddof=1) / math.sqrt(3)))
    assert p.verdict == "better"  # lower mean, but well within 2 standard errors
    assert Paired(10, 10.0, 30.0, -20.0, 5.0, 8, 1, 1).verdict == "clearly better"
    assert Paired(10, 30.0, 10.0, 20.0, 15.0, 2, 1, 7).verdict == "worse"
    assert Paired(4, 5.0, 5.0, 0.0, 0.0, 0, 4, 0).verdict == "tied"
    assert paired(recs, "nobody", "fixed").verdict == "n/a"


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


def test_plan_bench_tiny(tiny_data: Path, home: Path) -> None:
    cfg = PlanBenchConfig(
        data=tiny_data,
        set_name="Tiny",
        n=2,
        planners=["fixed", "random", "embedded"],
        mixtures=["noise+jpeg", "haze+low_resolution"],
        short=64,
        long=96,
        oracle_cap=12,
    )
    result = run_plan_bench(cfg)
    assert len(result.oracle) == 4 and len(result.plans) == 12
    for case in result.oracle:
        assert case["pipelines"] == min(case["total"], 12) and case["best"]
    for r in result.plans:  # every plan runs each true task once, so every plan has a rank
        assert 0.0 <= r["pct"] <= 100.0, r
    # the oracle ranks its own best pipeline first: a plan equal to it has rank 0
    for case in result.oracle:
        same = [
            r
            for r in result.plans
            if r["mixture"] == case["mixture"]
            and r["image"] == case["image"]
            and list(r["pipeline"]) == case["best"]
        ]
        assert all(r["pct"] == 0.0 for r in same)
    text = plan_bench_markdown(result)
    assert "### Per mixture, paired with fixed" in text
    assert "| haze+low_resolution | custom |" in text
    assert "embedded − fixed" in text and "*oracle best*" in text
    assert "- **embedded**: better than fixed on" in text


def test_plan_bench_bad_config_is_one_line(
    tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="baseline 'fixed' must be one of"):
        run_plan_bench(PlanBenchConfig(data=tiny_data, set_name="Tiny", planners=["embedded"]))
    with pytest.raises(InputError, match="unknown planner"):
        run_plan_bench(PlanBenchConfig(data=tiny_data, set_name="Tiny", planners=["fixed", "x"]))
    code, out = _cli(["bench", "plans", "--data", str(tiny_data), "--set", "Nope"], capsys)
    assert code == 2 and "not found" in out and "Traceback" not in out


def test_plan_bench_cli_writes_section_and_json(
    tiny_data: Path, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, js = tmp_path / "B.md", tmp_path / "plans.json"
    code, out = _cli(
        [
            "bench",
            "plans",
            "--data",
            str(tiny_data),
            "--set",
            "Tiny",
            "--n",
            "1",
            "--planners",
            "fixed,embedded",
            "--mixtures",
            "noise+jpeg",
            "--short",
            "64",
            "--long",
            "96",
            "--json",
            str(js),
            "--doc",
            str(doc),
        ],  # fmt: skip
        capsys,
    )
    assert code == 0, out
    text = doc.read_text()
    assert "<!-- bench:plans:start -->" in text and "restoregraph bench plans" in text
    data = json.loads(js.read_text())
    assert len(data["oracle"]) == 1 and {p["candidate"] for p in data["plans"]} == {
        "fixed",
        "embedded",
    }


def test_embedded_weights_label_runs_candidate_weights(tmp_path: Path) -> None:
    """``embedded@PATH`` runs the embedded planner with other weights (a retrained candidate
    beside the shipped one, on the same cases); a missing file is a reason, not a crash."""
    from restoregraph.lab.bench.agent import known_planner, resolve_planner
    from restoregraph.planners.embedded import DEFAULT_WEIGHTS

    assert known_planner(f"embedded@{DEFAULT_WEIGHTS}") and not known_planner("embedded2")
    assert resolve_planner(f"embedded@{DEFAULT_WEIGHTS}") == (
        "embedded",
        {"weights": str(DEFAULT_WEIGHTS)},
    )
    why = resolve_planner(f"embedded@{tmp_path / 'none.pt'}")
    assert isinstance(why, str) and "no embedded planner weights" in why
