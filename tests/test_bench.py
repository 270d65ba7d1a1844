"""``restoregraph bench``: the section writer, a tiny ``bench tools`` run, the agent bench on a
stand-in perceiver, and the one-line error for a missing data folder (no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from restoregraph.cli.main import main
from restoregraph.core.errors import InputError
from restoregraph.core.tasks import PERCEPTION_TYPES
from restoregraph.imageio import save_image
from restoregraph.lab.report import markers, replace_section, write_section
from restoregraph.perception.base import PerceptionResult
from restoregraph.tools import builtin_registry


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.fixture
def tiny_data(tmp_path: Path, astronaut_192: np.ndarray, chelsea_192: np.ndarray) -> Path:
    """A test-set folder ``data/Tiny`` with two small skimage images."""
    folder = tmp_path / "data" / "Tiny"
    folder.mkdir(parents=True)
    save_image(astronaut_192[:96, :128], folder / "1.png")
    save_image(chelsea_192[:96, :128], folder / "2.png")
    return tmp_path / "data"


# -- the section writer -----------------------------------------------------------------------
INTRO = "# Benchmarks\n\nHand-written intro.\n\n"
OTHER = "<!-- bench:other:start -->\nkeep me\n<!-- bench:other:end -->\n\nTrailing notes.\n"


def test_section_appended_then_replaced_without_touching_other_text(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "B.md"
    doc.parent.mkdir()
    doc.write_text(INTRO + OTHER)
    write_section(doc, "tools", "## Tools\n\nfirst")
    text = doc.read_text()
    assert text.startswith(INTRO + OTHER)  # appended after everything, nothing else changed
    start, end = markers("tools")
    assert text.endswith(f"{start}\n## Tools\n\nfirst\n{end}\n")

    write_section(doc, "tools", "## Tools\n\nsecond")
    text2 = doc.read_text()
    assert text2.count(start) == 1 and "first" not in text2 and "second" in text2
    assert text2.replace("second", "first") == text  # only the section body changed

    write_section(doc, "other", "replaced")
    text3 = doc.read_text()
    assert "keep me" not in text3
    assert text3.startswith(INTRO) and "\n\nTrailing notes.\n" in text3 and "second" in text3
    assert not list(doc.parent.glob("*.part"))  # the atomic write left no temporary file


def test_section_in_new_file_and_unbalanced_markers(tmp_path: Path) -> None:
    doc = tmp_path / "new.md"
    write_section(doc, "agent", "body")
    assert (
        doc.read_text()
        == "# Benchmarks\n\n<!-- bench:agent:start -->\nbody\n<!-- bench:agent:end -->\n"
    )
    with pytest.raises(InputError):
        replace_section("<!-- bench:x:start -->\nno end\n", "x", "new")
    with pytest.raises(InputError):
        markers("../evil")


# -- bench tools on a tiny folder -------------------------------------------------------------
def test_bench_tools_tiny(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "BENCH.md"
    argv = ["bench", "tools", "--data", str(tiny_data), "--sets", "Tiny", "--n", "1"]
    argv += ["--levels", "2", "--tasks", "denoise", "--timing-size", "32", "--doc", str(doc)]
    code, err = run(argv, capsys)
    assert code == 0, err
    text = doc.read_text()
    assert "<!-- bench:tools:start -->" in text and "<!-- bench:tools:end -->" in text
    assert "- command: `restoregraph bench tools --data" in text
    assert "--levels 2 --tasks denoise" in text and "- machine: " in text and "cores" in text
    assert "### denoise (noise)" in text and "### deblur" not in text
    rows = [line for line in text.splitlines() if line.startswith("| noise | Tiny | 2 | 1 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    n_tools = len(builtin_registry().for_task("denoise"))  # classical + learned denoisers
    assert len(cells) == 5 + n_tools + 1  # degradation, set, level, n, input, tools, best
    assert "**" in rows[0]  # the best tool is marked
    assert "s per 32² image" in text
    assert "Mean change against the degraded input" in text


def test_missing_data_dir_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default ../shared/data/test does not exist from here
    for argv in (
        ["bench", "tools"],
        ["bench", "agent", "--data", str(tmp_path / "nope")],
        ["bench", "perception", "--data", str(tmp_path / "nope")],
    ):
        code, err = run(argv, capsys)
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("error: benchmark data folder not found")
    assert not (tmp_path / "docs").exists()


def test_bad_section_name_is_one_line_before_any_run(
    tiny_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = tmp_path / "B.md"
    argv = ["bench", "agent", "--data", str(tiny_data), "--section", "a b!", "--doc", str(doc)]
    code, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "--section" in err
    assert not doc.exists()


def test_missing_test_set_is_one_line(tiny_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["bench", "tools", "--data", str(tiny_data), "--sets", "Nope"], capsys)
    assert code == 2 and err.count("\n") == 1 and "'Nope' not found" in err


# -- bench agent with a stand-in perceiver ----------------------------------------------------
class TruthPerceiver:
    """Always reports noise and jpeg at level 2 (the truth on the test's input)."""

    name = "truth"
    types = PERCEPTION_TYPES

    def perceive(self, image: np.ndarray) -> PerceptionResult:
        present = {"noise", "jpeg"}
        probs = {
            t: [0.0, 0.0, 1.0, 0.0] if t in present else [1.0, 0.0, 0.0, 0.0] for t in self.types
        }
        return PerceptionResult(probs=probs, detector=self.name)


def test_bench_agent_tiny(tiny_data: Path, home: Path) -> None:
    from restoregraph.lab.bench.agent import AgentConfig, agent_markdown, run_agent_bench

    cfg = AgentConfig(
        data=tiny_data,
        set_name="Tiny",
        n=1,
        planners=["fixed"],
        mixtures=["noise+jpeg"],
        short=96,
        long=128,
        max_steps=3,
        perceiver=TruthPerceiver(),
    )
    result = run_agent_bench(cfg)
    fixed = [r for r in result.records if r["candidate"] == "fixed"]
    assert len(fixed) == 1 and fixed[0]["steps"] >= 1
    reg = builtin_registry()
    expected = 2 * len(reg.for_task("denoise")) * len(reg.for_task("dejpeg"))  # orders x models
    assert result.oracle[0]["pipelines"] == result.oracle[0]["total"] == expected
    text = agent_markdown(result)
    assert "| noise+jpeg | input |" in text and "| noise+jpeg | fixed |" in text
    assert "| noise+jpeg | *oracle best* |" in text
    row = next(line for line in text.splitlines() if line.startswith("| noise+jpeg | fixed |"))
    pct = row.strip("|").split("|")[-2].strip()
    assert pct.endswith("(1/1)") or pct.startswith("n/a")


def test_classify_says_why_a_pipeline_has_no_rank() -> None:
    from restoregraph.lab.bench.agent import classify

    enumerated: set[tuple[str, ...]] = {
        ("dejpeg.deblock", "denoise.oidn"),
        ("denoise.oidn", "dejpeg.deblock"),
    }
    needed = {"dejpeg", "denoise"}
    assert classify(("denoise.oidn", "dejpeg.deblock"), needed, enumerated) == ""
    assert classify(("dejpeg.deblock",), needed, enumerated, {"dejpeg"}) == "denoise not perceived"
    assert (
        classify(("dejpeg.deblock",), needed, enumerated, {"dejpeg", "denoise"}, {"denoise"})
        == "denoise rolled back"
    )
    assert (
        classify(("dejpeg.deblock",), needed, enumerated, {"dejpeg", "denoise"})
        == "denoise dropped after re-perception"
    )
    got = classify(("dejpeg.deblock", "dehaze.dcp", "dehaze.dcp"), needed, enumerated)
    assert got == "a task repeated; extra dehaze; denoise not perceived"


def test_set_images_heldout_keeps_only_the_planners_validation_images(tmp_path):
    from restoregraph.lab.common import set_images
    from restoregraph.lab.search.dataset import is_heldout

    folder = tmp_path / "CBSD432"
    folder.mkdir()
    names = [f"{i:03d}.png" for i in range(30)]
    for name in names:
        save_image(np.zeros((4, 4, 3), np.float32), folder / name)
    held = [p.name for p in set_images(tmp_path, "CBSD432", 100, heldout=True)]
    assert held and held == [n for n in names if is_heldout(f"CBSD432/{n}")]
    assert len(set_images(tmp_path, "CBSD432", 100)) == 30
    assert set_images(tmp_path, "CBSD432", 1, heldout=True)[0].name == held[0]
    (tmp_path / "none").mkdir()
    save_image(np.zeros((4, 4, 3), np.float32), tmp_path / "none" / "x.png")
    assert not is_heldout("none/x.png")  # crc32 % 100 = 97
    with pytest.raises(InputError, match="held-out"):
        set_images(tmp_path, "none", 1, heldout=True)
