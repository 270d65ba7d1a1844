"""``restoregraph tools add / remove``: user weights are loaded safely (tensors only, spandrel
detects the architecture) and registered; bad files give a one-line error and register nothing."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from restoregraph.cli.errors import run_cli
from restoregraph.cli.main import app
from restoregraph.core.errors import InputError, ToolError
from restoregraph.tools import default_registry, reset_default_registry
from restoregraph.tools.loading import load_model
from restoregraph.tools.user import add_user_tool, config_path, read_user_tools, remove_user_tool


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    h = tmp_path / "home"
    monkeypatch.setenv("RESTOREGRAPH_HOME", str(h))
    reset_default_registry()
    yield h
    reset_default_registry()


def _dncnn_pth(path: Path, wrap: bool = False) -> Path:
    """A small DnCNN state dict (spandrel's key names), optionally wrapped like BasicSR saves."""
    from spandrel.architectures.DnCNN import DnCNN

    torch.manual_seed(0)
    state = DnCNN(in_nc=3, out_nc=3, nc=16, nb=8, act_mode="R").state_dict()
    torch.save({"params_ema": state} if wrap else state, path)
    return path


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = run_cli(app, argv)
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


class Boom:
    """Unpickling this would create the marker file (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def test_add_valid_weights_registers_a_working_tool(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _dncnn_pth(tmp_path / "my_dncnn.pth", wrap=True)  # BasicSR-style wrapper
    rc, out = cli(["tools", "add", "--task", "denoise", "--weights", str(weights)], capsys)
    assert rc == 0, out
    assert "denoise.dncnn" in out
    [entry] = read_user_tools(home)
    assert entry["architecture"] == "DnCNN" and entry["id"] == "denoise.dncnn"
    assert Path(entry["file"]).parent == home / "weights"  # a private copy
    weights.unlink()  # the original may go away: the tool keeps working

    reset_default_registry()
    spec = default_registry().get("denoise.dncnn")
    assert spec.kind == "user" and spec.task == "denoise"
    img = np.random.default_rng(0).random((40, 36, 3), dtype=np.float32)
    out_img = spec.run(img)
    assert out_img.shape == img.shape and np.isfinite(out_img).all()

    rc, out = cli(["tools", "list", "--json"], capsys)
    assert rc == 0 and "denoise.dncnn" in {t["id"] for t in json.loads(out)}

    rc, out = cli(["tools", "remove", "denoise.dncnn"], capsys)
    assert rc == 0 and read_user_tools(home) == []
    assert not Path(entry["file"]).exists()
    reset_default_registry()
    assert "denoise.dncnn" not in default_registry()


def test_pickle_carrying_code_is_never_executed(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": Boom(marker)}, zipped)
    legacy = tmp_path / "evil_legacy.pt"
    with open(legacy, "wb") as f:
        pickle.dump({"payload": Boom(marker)}, f)
    for path in (zipped, legacy):
        rc, out = cli(["tools", "add", "--task", "denoise", "--weights", str(path)], capsys)
        assert rc == 4, out
        assert "error:" in out and len(out.strip().splitlines()) == 1, out
        assert "refused" in out or "corrupted" in out
        assert not marker.exists(), "the pickle's code ran"
    assert not config_path(home).exists()
    with pytest.raises(ToolError, match="refused"):
        load_model(zipped)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["random", "truncated", "safetensors", "empty"])
def test_corrupted_file_is_a_clear_error(home: Path, tmp_path: Path, kind: str) -> None:
    if kind == "random":
        path = tmp_path / "junk.pth"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        full = _dncnn_pth(tmp_path / "full.pth")
        path = tmp_path / "truncated.pth"
        path.write_bytes(full.read_bytes()[:3000])
    elif kind == "safetensors":
        path = tmp_path / "broken.safetensors"
        path.write_bytes(b"\xff\x00\x00\x00\x00\x00\x00\x00{not json")
    else:
        path = tmp_path / "empty.pth"
        path.write_bytes(b"")
    with pytest.raises(ToolError) as info:
        add_user_tool("denoise", path)
    assert "\n" not in str(info.value)
    assert read_user_tools(home) == []


def test_unsupported_architecture_and_other_refusals(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.layer.weight": torch.zeros(4, 4), "head.bias": torch.zeros(4)}, odd)
    rc, out = cli(["tools", "add", "--task", "denoise", "--weights", str(odd)], capsys)
    assert rc == 4 and "unsupported architecture" in out and len(out.strip().splitlines()) == 1
    rc, out = cli(
        ["tools", "add", "--task", "denoise", "--weights", str(tmp_path / "no.pth")], capsys
    )
    assert rc == 4 and "not found" in out

    good = _dncnn_pth(tmp_path / "good.pth")
    with pytest.raises(InputError, match="unknown task"):
        add_user_tool("sharpen", good)
    with pytest.raises(InputError, match="invalid tool id"):
        add_user_tool("denoise", good, "deblur.mine")
    with pytest.raises(InputError, match="already registered"):
        add_user_tool("denoise", good, "denoise.nlmeans")
    with pytest.raises(ToolError, match="scale 1"):
        add_user_tool("sr", good)
    with pytest.raises(InputError, match="not a user tool"):
        remove_user_tool("denoise.nlmeans")
    assert read_user_tools(home) == []
