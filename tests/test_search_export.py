"""``restoregraph data export``: RestoreAgent's five scenarios from a tiny search-data fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restoregraph.cli.main import main
from restoregraph.lab.search.export import (
    SCENARIOS,
    SampleTree,
    export,
    iter_samples,
    prompt_toolbox,
)
from restoregraph.planners.base import parse_plan
from restoregraph.prompts.plan import ROLLBACK_ANSWER, STOP_ANSWER, is_rollback
from tests.search_fixture import build_fixture


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("search") / "data")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0), capsys.readouterr().err


def _text(msg: dict) -> str:
    content = msg["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part["type"] == "text")


def test_trl_rows_cover_five_scenarios_and_are_valid(data: Path, tmp_path: Path) -> None:
    res = export(data, tmp_path / "out", "trl")
    rows = [json.loads(line) for line in res.path.read_text().splitlines()]
    assert len(rows) == res.rows > 0
    assert {r["scenario"] for r in rows} == set(SCENARIOS)
    assert all(res.per_scenario[s] >= 3 for s in ("fresh", "rollback", "avoid", "stop"))
    samples = {s["id"]: s for s in iter_samples(data)}
    toolbox = prompt_toolbox(json.loads((data / "manifest.json").read_text()))
    for r in rows:
        assert len(r["images"]) == 1 and Path(r["images"][0]).is_file()
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["user", "assistant"]
        user = r["messages"][0]["content"]
        assert user[0] == {"type": "image"} and "judge them from the image" in _text(
            r["messages"][0]
        )
        answer = _text(r["messages"][1])
        if r["scenario"] == "rollback":
            assert answer == ROLLBACK_ANSWER and is_rollback(answer)
            assert "pending" in _text(r["messages"][0])
            continue
        plan = parse_plan(answer, toolbox)
        tree = SampleTree(data, samples[r["sample"]])
        if r["scenario"] == "fresh":
            assert [s["tool"] for s in plan.steps] == list(tree.best)
            assert Path(r["images"][0]).name == "degraded.png" or "n0" in r["images"][0]
        elif r["scenario"] == "stop":
            assert answer == STOP_ANSWER and plan.stop
        elif r["scenario"] == "partial":
            assert plan.steps and "nothing run yet" not in _text(r["messages"][0])
        elif r["scenario"] == "avoid":
            prompt = _text(r["messages"][0])
            failed_line = prompt.split("Failed attempts")[1].split("Available tools")[0]
            task, model = failed_line.split("\n")[1].lstrip("- ").split(" at position")[0].split()
            assert plan.steps[0]["tool"] != f"{task}.{model}"
            assert "rolled back" in prompt
    # the rollback step is a real mistake: the best pipeline after it is worse than before it
    for sample in samples.values():
        tree = SampleTree(data, sample)
        assert tree.scores[tree.best] == max(tree.scores.values())
        assert tree.subtree_best(tree.worst[:1]) <= tree.subtree_best(())


def test_text_only_and_llava(data: Path, tmp_path: Path) -> None:
    res = export(data, tmp_path / "text", "trl", text_only=True)
    rows = [json.loads(line) for line in res.path.read_text().splitlines()]
    assert all("images" not in r and isinstance(r["messages"][0]["content"], str) for r in rows)
    assert any("- noise: 2 (mid) -> task denoise" in r["messages"][0]["content"] for r in rows)
    res = export(data, tmp_path / "llava", "llava")
    items = json.loads(res.path.read_text())
    assert len(items) == res.rows
    for it in items:
        assert it["conversations"][0]["from"] == "human" and it["conversations"][1]["from"] == "gpt"
        assert it["conversations"][0]["value"].startswith("<image>\n")
        assert Path(it["image"]).is_file()
    summary = json.loads((tmp_path / "llava" / "export.json").read_text())
    assert summary["rows"] == res.rows and set(summary["per_scenario"]) == set(SCENARIOS)


def test_cli_export_errors_are_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    rc, err = run(["data", "export", str(data), "-o", str(out), "--format", "llava"], capsys)
    assert rc == 0 and "rows from 3 samples" in err
    rc, err = run(["data", "export", str(data), "-o", str(out), "--format", "llava"], capsys)
    assert rc == 3 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    rc, err = run(["data", "export", str(tmp_path / "nope"), "-o", str(out)], capsys)
    assert rc == 2 and "manifest.json" in err
    # a torn last line is ignored (the builder redoes it on resume)
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "manifest.json").write_text((data / "manifest.json").read_text())
    lines = (data / "samples.jsonl").read_text().splitlines()
    (torn / "samples.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    (torn / "images").symlink_to(data / "images")
    res = export(torn, tmp_path / "torn-out", "trl")
    assert res.samples == 1
