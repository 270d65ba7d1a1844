"""Experience (AgenticIR): order and model statistics distilled from search data, and the
planners that consult them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from restoregraph.cli.main import main
from restoregraph.lab.training.experience import distil, markdown
from restoregraph.planners import get_planner
from restoregraph.planners.base import PlanRequest
from restoregraph.planners.experience import Experience, load_experience
from restoregraph.planners.explore import ExplorePlanner
from restoregraph.planners.openai import OpenAIPlanner
from restoregraph.prompts.plan import EXPERIENCE_HEADER, render_user_prompt
from restoregraph.tools import default_registry


def _pipe(steps: list[str], psnr: float) -> dict:
    return {"steps": steps, "metrics": {"psnr": psnr, "ssim": psnr / 100}, "score": 0.0}


def write_data(root: Path) -> Path:
    """Two images needing denoise + dejpeg, scores chosen by hand.

    Image 1 (noise 2, jpeg 1): dejpeg first wins (best 30 vs 29); image 2 (noise 2, jpeg 2):
    denoise first wins (best 31 vs 30). denoise.tv is in both best pipelines. Image 2 also
    has a failed pipeline.
    """
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"version": 1, "command": "hand-made"}))
    s1 = {
        "id": "1",
        "mixture": [["noise", 2], ["jpeg", 1]],
        "pipelines": [
            _pipe(["dejpeg.deblock", "denoise.tv"], 30.0),
            _pipe(["dejpeg.deblock", "denoise.bilateral"], 25.0),
            _pipe(["denoise.tv", "dejpeg.deblock"], 29.0),
            _pipe(["denoise.bilateral", "dejpeg.deblock"], 20.0),
        ],
    }
    s2 = {
        "id": "2",
        "mixture": [["noise", 2], ["jpeg", 2]],
        "pipelines": [
            _pipe(["dejpeg.deblock", "denoise.tv"], 30.0),
            _pipe(["dejpeg.deblock", "denoise.bilateral"], 29.5),
            _pipe(["denoise.tv", "dejpeg.deblock"], 31.0),
            _pipe(["denoise.bilateral", "dejpeg.deblock"], 22.0),
            # a failed pipeline (a tool raised): no metrics, left out of every statistic
            {
                "steps": ["denoise.oidn", "dejpeg.deblock"],
                "metrics": {},
                "score": None,
                "error": "x",
            },
        ],
    }
    (root / "samples.jsonl").write_text(json.dumps(s1) + "\n" + json.dumps(s2) + "\n{torn")
    return root


def test_distil_counts_orders_fail_rates_and_models(tmp_path: Path) -> None:
    exp = distil(write_data(tmp_path / "d"))
    assert exp["samples"] == 2
    assert set(exp["objectives"]) == {"balanced", "psnr", "ssim"}  # no perceptual metrics here
    sec = exp["objectives"]["psnr"]
    (pair,) = sec["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == ("dejpeg", "denoise", 2)
    assert pair["win_ab"] == 0.5  # one image each way
    # percentiles per image (3 others): image 1: 0, 66.7, 33.3, 100; image 2: 33.3, 66.7, 0, 100
    # worse half (> 50): dejpeg-first 1 of 2 + 1 of 2; denoise-first 1 of 2 + 1 of 2
    assert pair["fail_ab"] == 0.5 and pair["fail_ba"] == 0.5
    assert pair["dpsnr_ab"] == pytest.approx(((30 - 29) + (30 - 31)) / 2)
    assert sec["first"] == {"dejpeg": 0.5, "denoise": 0.5}
    tv = next(r for r in sec["models"]["denoise"]["2"] if r["tool"] == "denoise.tv")
    bil = next(r for r in sec["models"]["denoise"]["2"] if r["tool"] == "denoise.bilateral")
    assert (tv["wins"], tv["n"], tv["mean_pct"]) == (2, 2, 0.0)
    assert bil["wins"] == 0 and bil["mean_pct"] == pytest.approx((200 / 3 + 200 / 3) / 2, abs=0.01)
    assert sec["models"]["dejpeg"]["1"][0]["n"] == 1
    text = markdown(exp, "restoregraph data experience d")
    assert "dejpeg before denoise" in text or "denoise before dejpeg" in text
    assert "denoise.tv 100%" in text


def test_experience_answers_planner_questions(tmp_path: Path) -> None:
    exp = Experience(distil(write_data(tmp_path / "d")))
    ids = ["denoise.bilateral", "denoise.tv", "denoise.nlmeans"]
    assert exp.rank_models("denoise", 2, ids) == [
        "denoise.tv",
        "denoise.bilateral",
        "denoise.nlmeans",
    ]
    assert exp.rank_models("denoise", 3, ids)[0] == "denoise.tv"  # nearest level with data
    text = exp.advice({"denoise": 2, "dejpeg": 1}, "psnr")
    assert "better on 50% of 2 images (fail rate 50% vs 50%)" in text
    assert "denoise at severity 2: denoise tv" in text
    assert exp.advice({"derain": 1}) == ""
    prompt = render_user_prompt({"noise": 2}, default_registry(), experience=text)
    assert EXPERIENCE_HEADER.strip() in prompt and "denoise tv" in prompt
    assert Experience().empty and Experience().advice({"denoise": 1}) == ""


def test_explore_uses_experience_for_models_order_and_objective(tmp_path: Path) -> None:
    data = {
        "objectives": {
            "balanced": {
                "before": {"denoise": {"dejpeg": 1.0}, "dejpeg": {"denoise": 0.0}},
                "models": {
                    "denoise": {
                        "2": [{"tool": "denoise.tv", "n": 5, "win_rate": 1.0, "mean_pct": 0}]
                    }
                },
            },
            "psnr": {
                "before": {"denoise": {"dejpeg": 0.0}, "dejpeg": {"denoise": 1.0}},
                "models": {
                    "denoise": {
                        "2": [{"tool": "denoise.bilateral", "n": 5, "win_rate": 1.0, "mean_pct": 0}]
                    }
                },
            },
        }
    }
    reg = default_registry().subset(["denoise.bilateral", "denoise.tv", "dejpeg.deblock"])
    img = np.full((48, 48, 3), 0.5, np.float32)
    flat = ExplorePlanner(
        experience=Experience(data), max_trials=1, quality_fn=lambda im: 0.0, load_fn=lambda im: 0.0
    )
    req = PlanRequest(perception={"noise": 2, "jpeg": 2}, toolbox=reg, load_image=lambda: img)
    plan = flat.plan(req)
    assert plan.text == "1. denoise tv. 2. dejpeg deblock."  # order and model from 'balanced'
    req.objective = "psnr"
    plan = flat.plan(req)
    assert plan.text == "1. dejpeg deblock. 2. denoise bilateral."
    # the registered factory loads the committed statistics
    built = get_planner("explore")
    assert isinstance(built, ExplorePlanner) and built.stats is load_experience()


def test_openai_prompt_quotes_experience(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import restoregraph.planners.experience as mod

    exp = Experience(distil(write_data(tmp_path / "d")))
    monkeypatch.setattr(mod, "load_experience", lambda path=None: exp)
    req = PlanRequest(perception={"noise": 2, "jpeg": 1}, toolbox=default_registry())
    text = OpenAIPlanner().build_messages(req)[1]["content"]
    assert EXPERIENCE_HEADER.strip() in text and "denoise tv" in text
    text = OpenAIPlanner(experience=False).build_messages(req)[1]["content"]
    assert EXPERIENCE_HEADER.strip() not in text


def test_cli_experience_writes_doc_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_data(tmp_path / "d")
    doc, js = tmp_path / "exp.md", tmp_path / "exp.json"
    argv = ["data", "experience", str(data), "-o", str(doc), "--json", str(js)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code in (0, None)
    assert "Task order" in doc.read_text() and json.loads(js.read_text())["samples"] == 2
    assert load_experience(js).section("psnr")["pairs"][0]["n"] == 2
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 3 and "--overwrite" in capsys.readouterr().err
