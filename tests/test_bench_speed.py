"""``restoregraph bench speed --quick`` and the pieces it measures with (timing, tile progress)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from restoregraph.cli.main import app
from restoregraph.core import timing
from restoregraph.tools.tiling import tile_progress, tiled_apply


def test_phases_keep_exclusive_time() -> None:
    timing.reset()
    with timing.phase("reflection"):
        time.sleep(0.05)
        with timing.phase("checkpoint_io"):
            time.sleep(0.1)
    snap = timing.snapshot()
    assert 0.09 <= snap["wall"]["checkpoint_io"] < 0.5
    assert 0.04 <= snap["wall"]["reflection"] < 0.09  # the nested store read is not counted
    assert snap["first_phase"] > 0
    timing.reset()


def test_tiled_apply_reports_every_tile_and_matches_untiled_inside_one_tile() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((100, 70, 3), dtype=np.float32)
    seen: list[tuple[int, int]] = []
    with tile_progress(lambda done, total: seen.append((done, total))):
        out = tiled_apply(lambda t: t * 0.5, image, tile=32, overlap=8)
    assert seen[-1][0] == seen[-1][1] == len(seen) > 1
    np.testing.assert_allclose(out, image * 0.5, atol=1e-6)  # separable weights blend exactly
    small = tiled_apply(lambda t: t * 0.5, image[:30, :30], tile=32, overlap=8)
    assert np.array_equal(small, image[:30, :30] * 0.5)  # one tile: the function's own output


def test_bench_speed_quick_writes_a_section(tmp_path: Path) -> None:
    doc = tmp_path / "BENCH.md"
    res = CliRunner().invoke(
        app, ["bench", "speed", "--quick", "--planner", "fixed", "--doc", str(doc)]
    )
    assert res.exit_code == 0, res.output
    text = doc.read_text(encoding="utf-8")
    assert "<!-- bench:speed:start -->" in text and "bench speed --sizes" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| 192×128"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "fixed" and cells[2] == "1"
    wall, cpu, rss = float(cells[3]), float(cells[4]), float(cells[5])
    assert wall > 0 and cpu > 0 and 50 < rss < 3000
    split = [float(c) for c in cells[6:14]]  # start-up .. other: they add up to the wall time
    assert abs(sum(split) - wall) < 0.05 * wall + 0.05
    assert split[3] > 0  # the tools ran
    assert re.search(r"`restoregraph tools list`: [0-9.]+ s", text)
    assert "peak RSS" in text and "wall s / MP" in text


def test_tile_events_show_in_the_web_progress() -> None:
    from restoregraph.web.progress import ProgressLog

    log = ProgressLog()
    log({"event": "step_start", "index": 1, "tool": "denoise.nafnet.mid"})
    log({"event": "tile", "tool": "denoise.nafnet.mid", "done": 3, "total": 10, "eta": 12.3})
    assert "tile 3/10, about 12 s left" in log.markdown()
