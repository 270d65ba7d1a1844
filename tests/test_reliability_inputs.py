"""Every file of the bad-input corpus (tests/badinput.py, >= 200 entries) through every entry
point: image decoding, ``degrade``, ``metrics``, ``restore`` (CLI, in-process), the tool API
and the library API. Each gives a one-line error with its documented exit code, or a correct
result; never a traceback; the input's bytes never change; no partial output is left behind.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from restoregraph.cli.main import main
from restoregraph.core.errors import InputError
from restoregraph.imageio import load_image
from tests.badinput import Case, build_corpus, restore_permissions
from tests.reliability_counts import count, reliability_counts  # noqa: F401

MIN_FILES = 200


def digest(p: Path) -> str | None:
    """sha256 of a regular file's bytes (None for anything else: missing, dir, fifo, device)."""
    try:
        st = p.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Case]]:
    root = tmp_path_factory.mktemp("corpus")
    cases = build_corpus(root)
    yield cases
    restore_permissions(root)


@pytest.fixture(scope="module")
def decoded(corpus: list[Case]) -> dict[str, np.ndarray | InputError]:
    """What load_image gives for each entry (an image or the clean error)."""
    out: dict[str, np.ndarray | InputError] = {}
    for case in corpus:
        try:
            out[case.name] = load_image(case.path)
        except InputError as exc:
            out[case.name] = exc
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    return int(exc.value.code or 0), err


def one_line_error(err: str) -> bool:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ")


def test_corpus_is_big_and_varied(corpus: list[Case]) -> None:
    assert len(corpus) >= MIN_FILES
    families = {c.family for c in corpus}
    need = {"truncated", "flipped", "wrong_ext", "empty", "bomb", "size", "mode", "exif"}
    assert need | {"animation", "nonimage", "name", "path"} <= families
    for ext in ("png", "jpg", "webp", "tif"):
        assert sum(c.family == "truncated" and c.name.endswith(ext) for c in corpus) >= 4
        assert sum(c.family == "flipped" and c.name.endswith(ext) for c in corpus) >= 4
    assert sum(c.family == "exif" and c.valid for c in corpus) >= 16  # 8 orientations x 2
    assert {"error", "valid", "either"} == {c.expect for c in corpus}


def test_decoding_every_file(corpus: list[Case]) -> None:
    """load_image: an InputError, or the correct float RGB image; nothing else, ever."""
    problems = []
    for case in corpus:
        before = digest(case.path)
        count("files_tried")
        count("inputs_checked")
        try:
            image = load_image(case.path)
        except InputError as exc:
            if case.expect == "valid":
                problems.append(f"{case.name!r}: valid file refused: {exc}")
            elif "\n" in str(exc).replace(str(case.path), ""):
                problems.append(f"{case.name!r}: multi-line message {exc!s:.200}")
            else:
                count("clean_errors")
        except Exception as exc:  # anything but InputError is a bug
            problems.append(f"{case.name!r}: {type(exc).__name__}: {exc}")
            count("unclean_failures")
        else:
            why = case.mismatch(image)
            if case.expect == "error":
                problems.append(f"{case.name!r}: should be refused, decoded {image.shape}")
            elif why:
                problems.append(f"{case.name!r}: wrong decode: {why}")
            else:
                count("correct_results")
        if digest(case.path) != before:
            problems.append(f"{case.name!r}: input bytes changed")
    assert not problems, "\n".join(problems)


def _check_cli(
    case: Case,
    decoded: dict[str, np.ndarray | InputError],
    argv: list[str],
    out: Path | None,
    capsys: pytest.CaptureFixture[str],
    ok_codes: tuple[int, ...] = (0,),
) -> list[str]:
    """Run one CLI command on one corpus entry; return what went wrong (empty: fine)."""
    before = digest(case.path)
    parent = out.parent if out is not None else None
    code, err = run_cli(argv, capsys)
    count("inputs_checked")
    problems = []
    if "Traceback" in err:
        problems.append(f"{case.name!r} {argv[0]}: traceback")
        count("tracebacks")
    result = decoded[case.name]
    if isinstance(result, InputError):
        if code != 2 or not one_line_error(err):
            problems.append(f"{case.name!r} {argv[0]}: exit {code}, stderr {err!r:.300}")
        else:
            count("clean_errors")
        if out is not None and out.exists():
            problems.append(f"{case.name!r} {argv[0]}: output written for a refused input")
    elif code in ok_codes:
        count("correct_results")
    elif code == 2 and 2 not in ok_codes and one_line_error(err) and argv[0] == "metrics":
        count("clean_errors")  # a metric undefined on this (odd-shaped) image: one clean line
    else:
        problems.append(f"{case.name!r} {argv[0]}: exit {code}, stderr {err!r:.300}")
    if parent is not None and list(parent.glob(".*.part")):
        problems.append(f"{case.name!r} {argv[0]}: partial file left in {parent}")
    if digest(case.path) != before:
        problems.append(f"{case.name!r} {argv[0]}: input bytes changed")
    return problems


def test_degrade_every_file(
    corpus: list[Case],
    decoded: dict[str, np.ndarray | InputError],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    problems = []
    for i, case in enumerate(corpus):
        out = tmp_path / f"out{i}.png"
        argv = ["degrade", str(case.path), "-o", str(out), "-t", "noise:1", "--seed", "1"]
        problems += _check_cli(case, decoded, argv, out, capsys)
        result = decoded[case.name]
        if isinstance(result, np.ndarray) and out.exists():
            written = load_image(out)
            if written.shape != result.shape:
                problems.append(f"{case.name!r}: degraded shape {written.shape} != {result.shape}")
    assert not problems, "\n".join(problems)


def test_metrics_every_file(
    corpus: list[Case],
    decoded: dict[str, np.ndarray | InputError],
    capsys: pytest.CaptureFixture[str],
) -> None:
    problems = []
    for case in corpus:
        argv = ["metrics", str(case.path), "--metrics", "brisque", "--json"]
        problems += _check_cli(case, decoded, argv, None, capsys)
        argv = ["metrics", str(case.path), "--ref", str(case.path), "--metrics", "psnr,ssim"]
        problems += _check_cli(case, decoded, argv, None, capsys)
    assert not problems, "\n".join(problems)


def test_tool_api_every_decodable_file(
    corpus: list[Case], decoded: dict[str, np.ndarray | InputError]
) -> None:
    """Every decodable entry through ``run_tool``: a valid image of the tool's output size."""
    from restoregraph.tools import builtin_registry, run_tool

    reg = builtin_registry()
    tools = [reg.get("denoise.bilateral"), reg.get("lowlight.gamma"), reg.get("sr.bicubic.x2")]
    problems = []
    for case in corpus:
        image = decoded[case.name]
        if isinstance(image, InputError):
            continue
        for spec in tools:
            out = run_tool(spec, image)
            count("inputs_checked")
            h, w = image.shape[:2]
            ok = out.shape == (h * spec.scale, w * spec.scale, 3) and out.dtype == np.float32
            if ok and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1:
                count("correct_results")
            else:
                problems.append(f"{case.name!r} {spec.id}: {out.shape} {out.dtype}")
    assert not problems, "\n".join(problems)


# One valid entry per family (and the unusual valid ones) for the full agent run, which is the
# slow path; every refused entry is cheap (refused before any work), so all of them run.
RESTORE_VALID = [
    "valid.jpg",
    "valid.webp",
    "valid.tif",
    "sixteen_bit_rgb.png",
    "palette_transparent.png",
    "la.png",
    "cmyk.tif",
    "exif_orientation_6.jpg",
    "animated.gif",
    "multipage.tif",
    "eight_by_eight.png",
    "naïve café.png",
    "symlink_to_valid.png",
    "truncated_minus1.png",
]


def test_restore_cli(
    corpus: list[Case],
    decoded: dict[str, np.ndarray | InputError],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    problems = []
    home = tmp_path / "home"
    chosen = [c for c in corpus if isinstance(decoded[c.name], InputError)]
    chosen += [c for c in corpus if c.name in RESTORE_VALID]
    assert sum(c.name in RESTORE_VALID for c in chosen) == len(RESTORE_VALID)
    for i, case in enumerate(chosen):
        out = tmp_path / f"restored{i}.png"
        argv = ["restore", str(case.path), "-o", str(out), "--home", str(home)]
        argv += ["--max-steps", "1", "--run-id", f"r{i}"]
        problems += _check_cli(case, decoded, argv, out, capsys)
        image = decoded[case.name]
        runs = home / "runs" / f"r{i}"
        if isinstance(image, InputError):
            if runs.exists():
                problems.append(f"{case.name!r}: a run was recorded for a refused input")
        elif not out.exists() or not (runs / "report.html").exists():
            problems.append(f"{case.name!r}: no output or report")
        elif load_image(out).shape[0] < image.shape[0]:
            problems.append(f"{case.name!r}: restored image smaller than the input")
    assert not problems, "\n".join(problems)


def test_library_api_refuses_bad_files_cleanly(
    corpus: list[Case], decoded: dict[str, np.ndarray | InputError], tmp_path: Path
) -> None:
    """``restoregraph.api.restore`` raises InputError before writing anything."""
    from restoregraph.api import restore

    problems = []
    home = tmp_path / "home"
    for i, case in enumerate(corpus):
        if not isinstance(decoded[case.name], InputError):
            continue
        out = tmp_path / f"api{i}.png"
        count("inputs_checked")
        try:
            restore(case.path, out, home=home, max_steps=1)
        except InputError:
            count("clean_errors")
        except Exception as exc:
            problems.append(f"{case.name!r}: {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{case.name!r}: restored a file that should be refused")
        if out.exists():
            problems.append(f"{case.name!r}: output written")
    assert not list((home / "runs").glob("*/run.json")) if (home / "runs").exists() else True
    assert not problems, "\n".join(problems)


def test_max_pixels_is_honoured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The size limit: --max-pixels on degrade/metrics, RESTOREGRAPH_MAX_PIXELS everywhere
    (restore and the library included), and RunContext.max_pixels for library runs."""
    from restoregraph.api import restore
    from tests.badinput import sample_rgb

    src = tmp_path / "img.png"
    sample_rgb().save(src)  # 64 x 64 = 4096 px
    for argv in (
        ["degrade", str(src), "-o", str(tmp_path / "d.png"), "--max-pixels", "4000"],
        ["metrics", str(src), "--max-pixels", "4000", "--metrics", "brisque"],
    ):
        code, err = run_cli(argv, capsys)
        assert code == 2 and "over the limit" in err and one_line_error(err), err
        count("inputs_checked")
        count("clean_errors")
    os.environ["RESTOREGRAPH_MAX_PIXELS"] = "4000"
    try:
        argv = ["restore", str(src), "-o", str(tmp_path / "r.png"), "--home", str(tmp_path / "h")]
        code, err = run_cli(argv, capsys)
        assert code == 2 and "over the limit" in err and not (tmp_path / "r.png").exists()
        with pytest.raises(InputError, match="over the limit"):
            restore(src, tmp_path / "r.png", home=tmp_path / "h", max_steps=1)
        count("inputs_checked", 2)
        count("clean_errors", 2)
    finally:
        del os.environ["RESTOREGRAPH_MAX_PIXELS"]
    with pytest.raises(InputError, match="over the limit"):
        restore(src, tmp_path / "r.png", home=tmp_path / "h", max_steps=1, max_pixels=4000)
    count("inputs_checked")
    count("clean_errors")
    assert not (tmp_path / "r.png").exists()
