"""Bad input to every CLI command: a one-line error and a non-zero exit, or a correct result;
never a traceback, and the input file is never changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from restoregraph.cli.main import main
from tests.badinput import make_corpus


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    return int(exc.value.code or 0), err


def digest(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bool]]:
    return make_corpus(tmp_path_factory.mktemp("bad"))


COMMANDS = {
    "degrade": lambda p, o: ["degrade", str(p), "-o", str(o), "-t", "noise:1"],
    "metrics": lambda p, o: ["metrics", str(p), "--metrics", "brisque"],
    "metrics-default": lambda p, o: ["metrics", str(p)],
    "metrics-ref": lambda p, o: ["metrics", str(p), "--ref", str(p), "--metrics", "psnr"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "name",
    [
        "not_an_image.png",
        "truncated.png",
        "zero_bytes.png",
        "one_by_one.png",
        "bomb_30000.png",
        "sixteen_bit.png",
        "grayscale.png",
        "rgba.png",
        "cmyk.jpg",
        "missing.png",
    ],
)
def test_bad_input(
    command: str,
    name: str,
    corpus: dict[str, tuple[Path, bool]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, valid = corpus[name]
    before = digest(path)
    out = tmp_path / "out.png"
    code, err = run(COMMANDS[command](path, out), capsys)
    assert "Traceback" not in err
    if valid:
        assert code == 0, err
    else:
        assert code == 2, err
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert not out.exists()
    assert digest(path) == before
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize(
    "name",
    [
        "not_an_image.png",
        "truncated.png",
        "zero_bytes.png",
        "one_by_one.png",
        "bomb_30000.png",
        "missing.png",
    ],
)
def test_restore_bad_input(
    name: str,
    corpus: dict[str, tuple[Path, bool]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = corpus[name]
    before = digest(path)
    out = tmp_path / "out.png"
    code, err = run(["restore", str(path), "-o", str(out), "--home", str(tmp_path / "h")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and digest(path) == before


@pytest.mark.parametrize("name", ["sixteen_bit.png", "grayscale.png", "rgba.png", "cmyk.jpg"])
def test_restore_odd_formats(
    name: str,
    corpus: dict[str, tuple[Path, bool]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = corpus[name]
    before = digest(path)
    out = tmp_path / "out.png"
    code, err = run(
        ["restore", str(path), "-o", str(out), "--home", str(tmp_path / "h"), "--max-steps", "2"],
        capsys,
    )
    assert code == 0, err
    assert out.exists() and digest(path) == before


def test_restore_refuses_to_overwrite_input(
    corpus: dict[str, tuple[Path, bool]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "photo.png"
    src.write_bytes(corpus["rgba.png"][0].read_bytes())
    before = digest(src)
    for extra in ([], ["--overwrite"]):
        code, err = run(
            ["restore", str(src), "-o", str(src), "--home", str(tmp_path / "h")] + extra, capsys
        )
        assert code == 3 and "input" in err
    assert digest(src) == before


def test_unknown_command_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["nope"], capsys)
    assert code == 2 and err.startswith("error:")
    code, err = run(["degrade", "x.png", "-o", "y.png", "--bogus"], capsys)
    assert code == 2 and err.startswith("error:")
