"""Inference backends of the learned tools (restoregraph/tools/backends, docs/backends.md).

Each installed ONNX backend against PyTorch eager on a random-initialised and on shipped models;
export verification (sha256 of the source weights and of the export); user-added tools on the
torch path; the torch fallback, with its message, when a backend's package is missing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from restoregraph.core.errors import RestoreGraphError, ToolError
from restoregraph.tools import backends
from restoregraph.tools.backends.export import ensure_export, export_onnx, verify_export
from restoregraph.tools.learned import WEIGHTS_DIR, learned_entries
from restoregraph.tools.learned.model import LearnedModel
from tests.conftest import crop

ONNX_BACKENDS = ("onnxruntime", "openvino", "openvino-bf16")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _need(backend: str) -> None:
    if not backends.installed(backend):
        pkg = backends.PACKAGES[backend]
        pytest.skip(f"{backend}: the {pkg!r} package is not installed (restoregraph[fast])")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # one export cache for the module (exports cost seconds), fresh engines per test
    monkeypatch.setenv("RESTOREGRAPH_EXPORT_DIR", str(tmp_path_factory.getbasetemp() / "exports"))
    monkeypatch.delenv(backends.ENV, raising=False)
    backends.clear_cache()
    yield
    backends.clear_cache()


@pytest.fixture(scope="module")
def random_nafnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised small NAFNet (the shipped architecture), as safetensors."""
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.NAFNet import NAFNet

    from restoregraph.tools.learned.catalog import ARCHS

    torch.manual_seed(0)
    net = NAFNet(**ARCHS["nafnet"][1])
    with torch.no_grad():  # NAFNet starts as identity-ish (zero betas): make it do something
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("random") / "random_nafnet.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def _shipped(tool_id: str) -> tuple[Path, str]:
    entry = next(e for e in learned_entries() if e["id"] == tool_id)
    return WEIGHTS_DIR / entry["file"], str(entry["sha256"])


def test_unknown_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backends.ENV, "tensorrt")
    with pytest.raises(RestoreGraphError, match="unknown inference backend 'tensorrt'"):
        backends.resolve()
    monkeypatch.setenv(backends.ENV, "auto")
    assert backends.resolve() == next(b for b in backends.AUTO_ORDER if backends.installed(b))


def test_missing_package_falls_back_to_torch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, random_nafnet: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("openvino", "onnxruntime") else real(name, *a),
    )
    assert backends.resolve("auto") == "torch"  # the default works without the extra
    monkeypatch.setenv(backends.ENV, "openvino")
    with caplog.at_level(logging.WARNING, logger="restoregraph.tools.backends"):
        model = LearnedModel(random_nafnet)
        out = model(np.full((40, 48, 3), 0.5, np.float32))
    assert model.engine().backend == "torch"
    assert out.shape == (40, 48, 3)
    text = caplog.text
    assert "'openvino' package, which is not installed" in text
    assert (
        "pip install 'restoregraph[fast]'" in text and "running the learned tools on torch" in text
    )


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_random_model_matches_torch(backend: str, random_nafnet: Path) -> None:
    _need(backend)
    rng = np.random.default_rng(1)
    img = rng.random((96, 80, 3), dtype=np.float32)
    want = LearnedModel(random_nafnet, backend="torch")(img)
    model = LearnedModel(random_nafnet, backend=backend)
    got = model(img)
    assert model.engine().backend == backend
    assert got.shape == want.shape
    assert float(np.abs(want - 0.5).mean()) > 0.01  # the random net does change the image
    assert _psnr(got, want) > (40.0 if backend.endswith("bf16") else 70.0)


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
@pytest.mark.parametrize(
    ("tool_id", "degradation"),
    [("denoise.nafnet.mid", ("noise", 2)), ("dehaze.nafnet", ("haze", 2))],
)
def test_shipped_model_within_005_db(
    backend: str, tool_id: str, degradation: tuple[str, int], astronaut_192: np.ndarray
) -> None:
    """Outputs within 0.05 dB of PyTorch eager (dehaze: the raw output and its tone roll-off)."""
    _need(backend)
    from restoregraph.degrade import apply_mixture
    from restoregraph.imageio import as_float_image

    clean = as_float_image(crop(astronaut_192, 160))
    degraded, _ = apply_mixture(clean, [degradation], seed=0)
    path, sha = _shipped(tool_id)
    protect = tool_id == "dehaze.nafnet"
    want = LearnedModel(path, sha256=sha, backend="torch", protect_tones=protect)(degraded)
    got = LearnedModel(path, sha256=sha, backend=backend, protect_tones=protect)(degraded)
    assert abs(_psnr(got, clean) - _psnr(want, clean)) < 0.05
    assert _psnr(got, want) > (38.0 if backend.endswith("bf16") else 60.0)


def test_export_verification_refuses_mismatched_sha256(random_nafnet: Path, tmp_path: Path) -> None:
    if not (backends.installed("onnxruntime") or backends.installed("openvino")):
        pytest.skip("exports are checked with onnxruntime or openvino (restoregraph[fast])")
    from restoregraph.weightfiles import sha256_of

    sha = sha256_of(random_nafnet)
    onnx_path, meta = export_onnx(random_nafnet, sha, tmp_path)
    meta_path = onnx_path.with_suffix(".json")
    assert meta["source_sha256"] == sha and meta["check"]["max_abs_diff"] < 1e-3
    assert meta["exporter"]["torch"] and meta["onnx_sha256"] == sha256_of(onnx_path)
    assert verify_export(onnx_path, meta_path, sha)["onnx_sha256"] == meta["onnx_sha256"]
    # made from other weights
    with pytest.raises(ToolError, match="exported from other weights"):
        verify_export(onnx_path, meta_path, "0" * 64)
    # the export changed after it was verified
    data = onnx_path.read_bytes()
    onnx_path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ToolError, match="sha256 does not match its export manifest"):
        verify_export(onnx_path, meta_path, sha)
    # loading exports it again from the weights, and the new export verifies
    again, meta2 = ensure_export(random_nafnet, sha, tmp_path)
    assert again == onnx_path and verify_export(onnx_path, meta_path, sha)
    assert json.loads(meta_path.read_text())["onnx_sha256"] == sha256_of(onnx_path)
    # weights that are not the ones the manifest names are refused before any export
    with pytest.raises(ToolError, match="sha256 does not match its manifest entry"):
        export_onnx(random_nafnet, "f" * 64, tmp_path)


def test_user_tools_stay_on_torch(
    monkeypatch: pytest.MonkeyPatch, home: Path, random_nafnet: Path
) -> None:
    from restoregraph.tools.user import add_user_tool, user_specs

    monkeypatch.setenv(backends.ENV, "openvino")
    add_user_tool("denoise", random_nafnet, "denoise.mine", home=home)
    (spec,) = user_specs(home)
    img = np.random.default_rng(2).random((48, 56, 3), dtype=np.float32)
    out = spec.run(img)
    assert out.shape == img.shape and np.isfinite(out).all()
    assert spec.run.engine().backend == "torch"
    want = LearnedModel(random_nafnet, backend="torch")(img)
    np.testing.assert_array_equal(out, want)


def test_models_load_once_per_process(random_nafnet: Path) -> None:
    a = LearnedModel(random_nafnet, backend="torch")
    b = LearnedModel(random_nafnet, backend="torch")
    assert a.engine() is b.engine()
