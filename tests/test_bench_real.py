"""``restoregraph bench real`` on a tiny fake data tree (no ../shared needed): detection and
false-alarm counts, the agent on pairs and on real photos, explicit requests (a fake request
list), the output checks (newly clipped, colour shift, border ratio) and the table of outputs
outside the bounds, the dev/test split, contact sheets, the JSON dump, the click command, and
one-line errors."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner

from restoregraph.core.errors import InputError
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import save_image
from restoregraph.lab.bench.real import (
    DEFAULT_REQUESTS,
    RealBenchResult,
    Request,
    clean_match,
    half_of,
    known_tasks,
    outside_bounds,
    pick_photo,
    real_markdown,
    run_real_bench,
    sample,
    silent_noop,
    write_json,
)
from restoregraph.metrics.safety import border_ratio

LABELS = {
    "_about": "fake",
    "real/haze_fake": ["haze"],
    "real/noise_fake": ["noise"],
    "real/snow_missing": ["snow"],  # listed but absent: a note, not an error
    "test/small_pairs/Fake_sample/low": ["low_light"],
    "_clean": ["test/Set5", "test/Set14"],
}
FAKE_REQUESTS = (
    Request("remove the haze", "real/haze_fake"),
    Request("remove the noise", "real/noise_fake", "N1"),  # the name holds it (any case)
    Request("make it brighter", "test/small_pairs/Fake_sample/low"),
    Request("remove the snow", "real/snow_missing"),  # no such folder: a skipped row
    Request("remove the rain", "test/Rain100L/rainy", "nope"),  # no such file: skipped
)


def _crop(img: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    return (img[top : top + h, left : left + w].astype(np.float32) / 255.0).copy()


def make_tree(root: Path) -> Path:
    """A data folder shaped like ../shared/data, with small generated photos."""
    astro, coffee = skimage.data.astronaut(), skimage.data.coffee()
    crops = [
        _crop(astro, 40, 150, 80, 96),
        _crop(astro, 250, 200, 72, 88),
        _crop(coffee, 100, 200, 80, 96),
        _crop(coffee, 200, 300, 64, 80),
    ]
    (root / "real").mkdir(parents=True)
    (root / "real" / "LABELS.json").write_text(json.dumps(LABELS))

    def put(folder: str, name: str, img: np.ndarray) -> None:
        (root / folder).mkdir(parents=True, exist_ok=True)
        save_image(img, root / folder / name)

    for i, c in enumerate(crops[:3]):
        put("real/haze_fake", f"h{i}.png", apply_mixture(c, "haze:2", seed=i)[0])
    for i, c in enumerate(crops[2:]):
        put("real/noise_fake", f"n{i}.png", apply_mixture(c, "noise:2", seed=i)[0])
    (root / "real/noise_fake/broken.png").write_bytes(b"not a png at all")
    for i, c in enumerate(crops[:2]):
        put(
            "test/small_pairs/Fake_sample/low", f"{i:04d}_a.png", apply_mixture(c, "low_light:2")[0]
        )
        put("test/small_pairs/Fake_sample/high", f"{i:04d}.png", c)
    for i, c in enumerate(crops[1:3]):
        put("test/Rain100L/rainy", f"rain-{i + 1:03d}.png", apply_mixture(c, "rain:2")[0])
        put("test/Rain100L/norain", f"norain-{i + 1:03d}.png", c)
    for i, c in enumerate(crops[:2]):
        put("test/Set5", f"c{i}.png", c)
    put("test/Set14", "c9.png", crops[3])
    return root


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealBenchResult, Path]:
    tmp = tmp_path_factory.mktemp("real")
    data = make_tree(tmp / "data")
    result = run_real_bench(
        data,
        tmp / "home",
        rain100l_n=1,
        max_side=64,
        planner="fixed",
        max_steps=2,
        sheets_dir=tmp / "docs" / "real",
        progress=False,
        requests=FAKE_REQUESTS,
    )
    return result, tmp


def _cells(text: str, first: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def _frac(cell: str) -> tuple[int, int]:
    m = re.match(r"(\d+)/(\d+)", cell)
    assert m, cell
    return int(m.group(1)), int(m.group(2))


def test_detection_counts_split_and_false_alarms(bench: tuple[RealBenchResult, Path]) -> None:
    result, tmp = bench
    labelled = [r for r in result.detection if r["kind"] == "labelled"]
    by_folder = {f: [r for r in labelled if r["folder"] == f] for f in result.labels}
    assert len(by_folder["real/haze_fake"]) == 3
    assert len(by_folder["real/noise_fake"]) == 3  # 2 photos + the unreadable one
    assert [r["status"] for r in by_folder["real/noise_fake"]].count("skipped") == 1
    assert len(by_folder["test/small_pairs/Fake_sample/low"]) == 2
    assert not by_folder["real/snow_missing"]
    assert any("real/snow_missing not found" in n for n in result.notes)
    clean = [r for r in result.detection if r["kind"] == "clean"]
    assert len(clean) == 3 and all(isinstance(r["hit"], bool) for r in clean)
    assert all(r["half"] == half_of(r["photo"]) for r in result.detection)

    text = real_markdown(result, "restoregraph bench real", "test machine", doc=tmp / "B.md")
    for folder, n in (("haze_fake", 3), ("noise_fake", 2), ("Fake_sample/low", 2)):
        cells = _cells(text, folder)
        (hd, nd), (ht, nt), (ha, na) = (_frac(c) for c in cells[2:5])
        assert nd + nt == na == n and hd + ht == ha
    assert "1 skipped: broken.png" in _cells(text, "noise_fake")[-1]
    (fd, nd), (ft, nt), (fa, na) = (_frac(c) for c in _cells(text, "**all clean**")[1:4])
    assert nd + nt == na == 3 and fd + ft == fa == sum(r["hit"] for r in clean)
    assert "the test half is the quoted figure" in text


def test_agent_on_pairs_and_real_photos(bench: tuple[RealBenchResult, Path]) -> None:
    result, tmp = bench
    sets = [r["set"] for r in result.pairs]
    assert sets.count("Fake_sample") == 2 and sets.count("Rain100L") == 1  # --rain100l-n 1
    for r in result.pairs:
        assert r["status"] in ("ok", "failed")
        if r["status"] == "ok":
            assert np.isfinite(r["psnr_in"]) and np.isfinite(r["psnr_out"])
        assert len(r["kept"]) + len(r["rolled_back"]) + r["failed_steps"] <= 2  # max_steps 2
    assert {r["clean"] for r in result.pairs if r["set"] == "Fake_sample"} == {
        "0000.png",
        "0001.png",
    }
    # the same pairs with the known task asked: that task is attempted on every pair
    assert [r["photo"] for r in result.pairs_told] == [r["photo"] for r in result.pairs]
    for r in result.pairs_told:
        task = known_tasks(r["known"])[0]
        tried = [*r["kept"], *r["rolled_back"]]
        assert r["status"] != "ok" or any(t.split(".")[0] == task for t in tried), r
    text = real_markdown(result, "restoregraph bench real", "test machine", doc=tmp / "B.md")
    assert "Perception taken out of the loop" in text
    q = result.quality
    assert len(q) == 6 and sum(r["status"] == "skipped" for r in q) == 1
    ran = [r for r in q if r["status"] == "ok"]
    assert len(ran) == 5 and all(r["downscaled"] for r in ran)  # every photo is over 64 px
    assert all(max(r["run_size"]) == 64 for r in ran)
    assert all(np.isfinite(r["before"]["brisque"]) for r in ran)

    text = real_markdown(result, "restoregraph bench real", "test machine", doc=tmp / "B.md")
    pair_rows = [_cells(text, name) for name in ("Fake_sample", "Rain100L", "**all pairs**")]
    assert all(c[1] == "dev" for c in pair_rows)
    lines = text.splitlines()
    for first, n_all in (("Fake_sample", 2), ("Rain100L", 1), ("**all pairs**", 3)):
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first} |"))
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[i : i + 3]]
        assert [r[1] for r in rows] == ["dev", "test", "all"]
        n = [int(r[2]) + int(r[3].split()[0]) for r in rows]  # ran + failed
        assert n[0] + n[1] == n[2] == n_all
    i = next(i for i, ln in enumerate(lines) if ln.startswith("| haze_fake ("))
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[i : i + 3]]
    assert int(rows[0][2]) + int(rows[1][2]) == int(rows[2][2]) == 3
    assert "NIQE" in text and "downscaled" in text


def test_contact_sheets_and_json(bench: tuple[RealBenchResult, Path]) -> None:
    from PIL import Image

    result, tmp = bench
    assert set(result.sheets) == {
        "real/haze_fake",
        "real/noise_fake",
        "test/small_pairs/Fake_sample/low",
        "test/Rain100L/rainy",
    }
    for path in map(Path, result.sheets.values()):
        assert path.parent == tmp / "docs" / "real" and path.suffix == ".jpg"
        assert 0 < path.stat().st_size < 300_000
        with Image.open(path) as im:
            assert im.width >= 2 * 64 and im.height > 64
    text = real_markdown(result, "cmd", "machine", doc=tmp / "docs" / "BENCHMARKS.md")
    assert "[haze_fake](real/haze_fake.jpg)" in text

    out = write_json(result, tmp / "rows.json")
    data = json.loads(out.read_text())
    assert len(data["pairs"]) == 3 and len(data["quality"]) == 6
    assert len(data["detection"]) == len(result.detection)
    assert len(data["requests"]) == len(FAKE_REQUESTS)
    assert data["requests"][0]["instruction"] == "remove the haze"
    assert {"steps", "kept", "not_kept", "stop", "reply", "silent"} <= set(data["requests"][0])
    assert all("border_ratio" in r and "new_clipped" in r for r in data["quality"])


def test_explicit_requests(bench: tuple[RealBenchResult, Path]) -> None:
    result, tmp = bench
    rows = result.requests
    assert [r["instruction"] for r in rows] == [q.instruction for q in FAKE_REQUESTS]
    assert [r["status"] for r in rows[3:]] == ["skipped", "skipped"]
    assert "real/snow_missing not found" in rows[3]["error"]
    assert "no image whose name contains 'nope'" in rows[4]["error"]
    ran = rows[:3]
    assert [r["photo"] for r in ran] == ["h0.png", "n1.png", "0000_a.png"]
    assert [r["routed"] for r in ran] == ["fast: dehaze", "fast: denoise", "fast: lowlight"]
    for r in ran:
        assert r["status"] == "ok", r["error"]
        assert r["downscaled"] and max(r["run_size"]) == 64
        assert r["reply"].startswith("Restored with") and r["stop"]
        assert r["kept"] == [s["tool"] for s in r["steps"] if s["status"] == "accepted"]
        assert len(r["not_kept"]) == len(r["steps"]) - len(r["kept"])
        assert r["silent"] == silent_noop(r["steps"], r["notes"])
        assert all(math.isfinite(r[k]) for k in ("new_clipped", "colour_shift", "border_ratio"))
        if not r["kept"]:  # the output is the input
            assert r["new_clipped"] == 0 and r["colour_shift"] == 0
            assert r["border_ratio"] == pytest.approx(1.0)

    text = real_markdown(result, "cmd", "machine", doc=tmp / "B.md")
    assert "### Explicit requests on real photos" in text
    cells = _cells(text, "“remove the haze”")
    assert len(cells) == 12 and cells[1] == "haze_fake/h0.png ↓" and cells[2] == "fast: dehaze"
    assert cells[7] == ran[0]["reply"] and cells[8] in ("no", "**yes**")
    assert "real/snow_missing not found" in _cells(text, "“remove the snow”")[-1]
    assert "Explicit requests: " in text and "returned the input unchanged silently" in text


def test_output_checks_and_bounds(bench: tuple[RealBenchResult, Path]) -> None:
    result, tmp = bench
    for r in [*result.pairs, *result.quality]:
        measured = [math.isfinite(r[k]) for k in ("new_clipped", "colour_shift", "border_ratio")]
        assert all(measured) == (r["status"] == "ok") or r["status"] == "failed"
        assert any(measured) == all(measured)
    text = real_markdown(result, "cmd", "machine", doc=tmp / "B.md")
    assert "### Output checks: clipping, colour shift, border" in text
    for part, name in (
        ("pairs", "Fake_sample"),
        ("pairs", "Rain100L"),
        ("real photos", "haze_fake"),
        ("requests", "explicit requests"),
    ):
        cells = _cells(text, part + " | " + name)
        assert len(cells) == 8
        ok = [
            r
            for r in (result.requests if part == "requests" else [*result.pairs, *result.quality])
            if math.isfinite(r["new_clipped"])
            and (part == "requests" or name in (r.get("set"), r["folder"].split("/")[-1]))
        ]
        assert int(cells[2]) == len(ok)
        assert cells[7].endswith(f"/{len(ok)}")
        ratios = [r["border_ratio"] for r in ok]
        assert cells[5] == f"{min(ratios):.3f}" and cells[6] == f"{max(ratios):.3f}"
    assert ("Outputs outside the bounds: none." in text) == (
        not any(outside_bounds(r) for r in [*result.pairs, *result.quality, *result.requests])
    )

    # an output that clips 5 % of the pixels and one with a darkened border are listed
    quality = [dict(r) for r in result.quality]
    ran = [r for r in quality if r["status"] == "ok"]
    ran[0].update(new_clipped=0.05, border_ratio=1.0)
    ran[1].update(new_clipped=0.0, border_ratio=0.8)
    for r in ran[2:]:
        r.update(new_clipped=0.0, border_ratio=1.0)
    pairs = [dict(r, new_clipped=0.0, border_ratio=1.0) for r in result.pairs]
    reqs = [dict(r, new_clipped=math.nan) for r in result.requests]
    fake = dataclasses.replace(result, quality=quality, pairs=pairs, requests=reqs)
    text = real_markdown(fake, "cmd", "machine", doc=tmp / "B.md")
    assert "Outputs outside the bounds:\n" in text
    first = _cells(text, f"real photos | {ran[0]['folder'].split('/')[-1]} | {ran[0]['photo']}")
    assert first[5] == "+5.00%" and "5.0% newly clipped (> 1%)" in first[-1]
    second = _cells(text, f"real photos | {ran[1]['folder'].split('/')[-1]} | {ran[1]['photo']}")
    assert "border ratio 0.800 (outside 0.9-1.1)" in second[-1]
    assert (
        "Outputs outside the bounds (> 1% newly clipped or border ratio outside 0.9-1.1): 2 of"
        in (text)
    )


def test_border_ratio_silent_noop_and_pick(tmp_path: Path) -> None:
    img = _crop(skimage.data.astronaut(), 100, 100, 100, 150)
    assert border_ratio(img, img) == pytest.approx(1.0)
    assert border_ratio(img, np.clip(img * 0.5, 0, 1)) == pytest.approx(1.0, abs=1e-3)
    dark = img.copy()
    b = 4  # 4 % of the short side (100 px)
    for sl in (np.s_[:b], np.s_[-b:], np.s_[:, :b], np.s_[:, -b:]):
        dark[sl] *= 0.5
    assert border_ratio(img, dark) == pytest.approx(0.5, abs=0.05)
    assert border_ratio(dark, img) == pytest.approx(2.0, abs=0.2)
    inner = img.copy()
    inner[b:-b, b:-b] *= 0.5  # a darker interior is a brighter border, relatively
    assert border_ratio(img, inner) > 1.5
    # a pure tone curve on a vignetted photo lifts the dark border more than the interior, but
    # draws no border: the ratio stays 1
    yy, xx = np.mgrid[0:100, 0:150]
    vignette = 1.0 - 0.6 * (((yy - 50) / 50) ** 2 + ((xx - 75) / 75) ** 2) / 2
    low = (img * vignette[..., None] * 0.3).astype(np.float32)
    assert border_ratio(low, low**0.45) == pytest.approx(1.0, abs=0.03)
    half = img[::2, ::2]  # the sizes may differ
    assert border_ratio(img, half) == pytest.approx(1.0, abs=0.1)
    assert math.isnan(border_ratio(img[:2], img))
    assert outside_bounds({"new_clipped": 0.005, "border_ratio": 0.95}) == []
    assert len(outside_bounds({"new_clipped": 0.02, "border_ratio": 1.2})) == 2
    assert outside_bounds({"new_clipped": math.nan, "border_ratio": math.nan}) == []

    kept = {"tool": "a", "task": "t", "status": "accepted", "reason": "better"}
    back = {"tool": "b", "task": "t", "status": "rolled_back", "reason": "worse"}
    mute = {"tool": "c", "task": "t", "status": "rolled_back", "reason": ""}
    assert silent_noop([], []) and silent_noop([mute], [])
    assert not silent_noop([kept], []) and not silent_noop([back], [])
    assert not silent_noop([], ["round 1: no tool for deraindrop in the toolbox: skipped"])

    for name in ("10.png", "2.png", "Dog.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert pick_photo(tmp_path) == tmp_path / "2.png"  # natural order
    assert pick_photo(tmp_path, "dog") == tmp_path / "Dog.png"
    assert pick_photo(tmp_path, "cat") is None
    assert [q.instruction for q in DEFAULT_REQUESTS] == [
        "make it brighter",
        "remove the noise",
        "remove the snow",
        "remove the raindrops",
        "remove the rain",
        "remove the haze",
        "sharpen it",
        "fix the blur",
        "remove the JPEG blocks",
        "fix this photo",
    ]
    assert DEFAULT_REQUESTS[1].pick == "Dog" and DEFAULT_REQUESTS[4].folder == "test/Rain100L/rainy"


def test_real_cmd_writes_the_section(tmp_path: Path) -> None:
    from restoregraph.cli.cmd_bench_real import real_cmd

    data = make_tree(tmp_path / "data")
    doc, sheets, rows = tmp_path / "B.md", tmp_path / "sheets", tmp_path / "rows.json"
    args = ["--data", str(data), "--home", str(tmp_path / "home"), "--n-per-folder", "1"]
    args += ["--rain100l-n", "0", "--planner", "fixed", "--max-steps", "1", "--max-side", "64"]
    args += ["--doc", str(doc), "--sheets-dir", str(sheets), "--json", str(rows)]
    res = CliRunner().invoke(real_cmd, args)
    assert res.exit_code == 0, res.output
    text = doc.read_text()
    assert "<!-- bench:real:start -->" in text and "## Real photos" in text
    assert "--n-per-folder 1" in text and "--rain100l-n 0" in text
    quality = json.loads(rows.read_text())["quality"]
    assert len(quality) == 2  # 1 per real folder; noise_fake's first file is the broken one
    assert [r["status"] for r in quality] == ["ok", "skipped"]
    assert sorted(p.name for p in sheets.glob("*.jpg")) == ["Fake_sample_low.jpg", "haze_fake.jpg"]
    requests = json.loads(rows.read_text())["requests"]  # the real list: Rain100L only here
    assert len(requests) == len(DEFAULT_REQUESTS) == 10
    rain = requests.pop(4)
    assert rain["instruction"] == "remove the rain" and rain["photo"] == "rain-001.png"
    assert rain["status"] == "ok" and rain["reply"].startswith("Restored with")
    assert all(r["status"] == "skipped" and "not found" in r["error"] for r in requests)
    assert "### Explicit requests on real photos" in text

    res = CliRunner().invoke(real_cmd, [*args, "--no-requests"])
    assert res.exit_code == 0, res.output
    assert json.loads(rows.read_text())["requests"] == []
    assert "### Explicit requests" not in doc.read_text() and "--no-requests" in doc.read_text()


def test_missing_data_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError) as exc:
        run_real_bench(tmp_path / "nope", None, progress=False)
    assert "real-photo data folder not found" in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="LABELS.json not found"):
        run_real_bench(tmp_path / "empty", None, progress=False)
    from restoregraph.cli.cmd_bench_real import real_cmd
    from restoregraph.cli.errors import run_cli

    code = run_cli(real_cmd, ["--data", str(tmp_path / "nope"), "--doc", str(tmp_path / "B.md")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: real-photo data folder not found")
    assert not (tmp_path / "B.md").exists()


def test_real_cmd_planner_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-P KEY=VALUE`` reaches the agent's planner (candidate weights on real photos); a bad
    one is a one-line error before anything runs."""
    from restoregraph.cli.cmd_bench_real import real_cmd
    from restoregraph.cli.errors import run_cli
    from restoregraph.planners.embedded import DEFAULT_WEIGHTS

    data = make_tree(tmp_path / "data")
    doc, rows = tmp_path / "B.md", tmp_path / "rows.json"
    args = ["--data", str(data), "--home", str(tmp_path / "home"), "--n-per-folder", "1"]
    args += ["--rain100l-n", "0", "--max-steps", "1", "--max-side", "64", "--no-requests"]
    args += ["--doc", str(doc), "--sheets-dir", str(tmp_path / "sheets"), "--json", str(rows)]
    res = CliRunner().invoke(real_cmd, [*args, "-P", f"weights={DEFAULT_WEIGHTS}"])
    assert res.exit_code == 0, res.output
    assert f"weights={DEFAULT_WEIGHTS}" in doc.read_text(), doc.read_text()[:600]
    code = run_cli(real_cmd, [*args, "-P", "weights"])
    assert code == 2 and "is not KEY=VALUE" in capsys.readouterr().err


def test_bad_settings_fail_before_running(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data")
    with pytest.raises(InputError, match="unknown planner"):
        run_real_bench(data, None, planner="nope", progress=False)
    with pytest.raises(InputError, match="n-per-folder"):
        run_real_bench(data, None, n_per_folder=0, progress=False)


def test_pairing_split_and_sampling() -> None:
    clean = [Path("gt/0001.png"), Path("gt/0002.png"), Path("norain/norain-007.png")]
    assert clean_match(Path("hazy/0001_0.8_0.2.jpg"), clean) == clean[0]
    assert clean_match(Path("x/0002.png"), clean) == clean[1]
    assert clean_match(Path("rainy/rain-007.png"), clean) == clean[2]
    assert clean_match(Path("x/9999.png"), clean) is None
    assert half_of("a/b/c.png") == half_of("c.png") in ("dev", "test")
    halves = {half_of(f"{i}.png") for i in range(20)}
    assert halves == {"dev", "test"}
    assert sample(list(range(10)), 3) == [0, 3, 6] and sample([1, 2], None) == [1, 2]
