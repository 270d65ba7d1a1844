"""A restore on an ONNX backend imports neither torch nor spandrel (issue #22: start-up and
memory): the perception CNN runs its ONNX export (restoregraph/perception/exported.py), the
embedded planner scores with numpy arrays (restoregraph/planners/scorer_arrays.py), the
learned tools run their exports; and what it perceives and plans equals the torch backend's.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restoregraph.tools import backends
from tests.conftest import crop

ONNX = [b for b in ("onnxruntime", "openvino") if backends.installed(b)]
# a toolbox with two of the planner's vocabulary tools (the tools' exports cost seconds each)
TOOLBOX = ("denoise.nafnet.mid", "dejpeg.nafnet.severe")

pytestmark = pytest.mark.skipif(
    not ONNX, reason="needs onnxruntime or openvino (pip install 'restoregraph[fast]')"
)

RESTORE = """
import json, sys
import numpy as np
from pathlib import Path
from restoregraph.core.settings import RunContext
from restoregraph.runner import Runner

src, out, home = (Path(a) for a in sys.argv[1:4])
toolbox = tuple(sys.argv[4].split(","))
result = Runner(home).start(src, out, RunContext(toolbox=toolbox))
events = [
    {k: e[k] for k in ("event", "present", "plan") if k in e}
    for e in result.events
    if e.get("event") in ("perception", "plan")
]
print(json.dumps({
    "events": events,
    "decisions": [[h["tool"], h["status"]] for h in result.history],
    "heavy": [m for m in ("torch", "spandrel") if m in sys.modules],
}))
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export cache with the toolbox's tools, the perception CNN and the planner arrays."""
    from restoregraph.perception.exported import ensure_perception_export
    from restoregraph.planners.embedded import export_arrays
    from restoregraph.tools.backends.export import ensure_export
    from restoregraph.tools.learned import WEIGHTS_DIR, learned_entries

    folder = tmp_path_factory.mktemp("exports")
    for e in learned_entries():
        if e["id"] in TOOLBOX:
            ensure_export(WEIGHTS_DIR / e["file"], e["sha256"], folder)
    ensure_perception_export(None, folder)
    export_arrays(None, folder)
    return folder


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory, astronaut_192: np.ndarray) -> Path:
    from restoregraph.degrade import apply_mixture
    from restoregraph.imageio import as_float_image, save_image

    clean = as_float_image(crop(astronaut_192, 128))
    degraded, _ = apply_mixture(clean, [("noise", 2), ("jpeg", 2)], seed=0)
    return Path(save_image(degraded, tmp_path_factory.mktemp("in") / "photo.png"))


def _restore(backend: str, photo: Path, exports: Path, tmp: Path) -> dict[str, Any]:
    env = {**os.environ, backends.ENV: backend, "RESTOREGRAPH_EXPORT_DIR": str(exports)}
    tmp.mkdir(parents=True, exist_ok=True)
    args = [str(photo), str(tmp / "out.png"), str(tmp / "home"), ",".join(TOOLBOX)]
    proc = subprocess.run(
        [sys.executable, "-c", RESTORE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def on_torch(photo: Path, exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _restore("torch", photo, exports, tmp_path_factory.mktemp("torch"))


@pytest.mark.parametrize("backend", ONNX)
def test_a_restore_on_an_onnx_backend_imports_no_torch_and_plans_as_torch(
    backend: str, photo: Path, exports: Path, on_torch: dict[str, Any], tmp_path: Path
) -> None:
    got = _restore(backend, photo, exports, tmp_path)
    assert got["heavy"] == []
    assert "torch" in on_torch["heavy"]  # the reference did run on torch
    assert got["events"][0]["event"] == "perception" and got["events"][0]["present"]
    assert any(e["event"] == "plan" and e["plan"] != "Stop." for e in got["events"])
    assert got["events"] == on_torch["events"]  # perception levels and plans
    assert got["decisions"] == on_torch["decisions"]


def test_derived_exports_are_verified_and_match_torch(exports: Path) -> None:
    """The perception export's and planner arrays' manifests: source sha256 in the name, the
    file's sha256, and their output checks against PyTorch."""
    from restoregraph.perception.exported import ensure_perception_export
    from restoregraph.planners.embedded import DEFAULT_WEIGHTS, export_arrays
    from restoregraph.weightfiles import sha256_of

    onnx_path, meta = ensure_perception_export(None, exports)
    assert meta["source_sha256"][:12] in onnx_path.name
    assert sha256_of(onnx_path) == meta["onnx_sha256"]
    assert meta["check"]["max_abs_diff"] < 1e-4
    npz, pmeta = export_arrays(None, exports)
    assert pmeta["source_sha256"] == sha256_of(DEFAULT_WEIGHTS)
    assert sha256_of(npz) == pmeta["npz_sha256"]
    assert pmeta["check"]["max_abs_diff"] < 1e-5


def test_a_broken_perception_export_is_made_again(
    exports: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from restoregraph.perception.exported import ensure_perception_export

    folder = tmp_path / "exports"
    shutil.copytree(exports, folder)
    onnx_path, _ = ensure_perception_export(None, folder)
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with caplog.at_level(logging.WARNING):
        again, meta = ensure_perception_export(None, folder)
    assert "sha256 does not match its export manifest; exporting it again" in caplog.text
    assert again == onnx_path and meta["check"]["max_abs_diff"] < 1e-4


def test_features_and_scores_agree_with_torch(
    exports: Path, monkeypatch: pytest.MonkeyPatch, astronaut_192: np.ndarray
) -> None:
    """In process: the planner's image features, its tables and the perceiver's levels on the
    ONNX backend against torch (one image; scripts/eval_onnx_agreement.py measures more)."""
    from restoregraph.perception import _default_perceiver
    from restoregraph.planners.embedded import load_model
    from restoregraph.planners.features import image_features

    img = crop(astronaut_192, 160).astype(np.float32) / 255.0
    monkeypatch.setenv("RESTOREGRAPH_EXPORT_DIR", str(exports))
    monkeypatch.setenv(backends.ENV, "torch")
    want_feats, want_model = image_features(img), load_model()
    want_levels = _default_perceiver(None).perceive(img).levels
    monkeypatch.setenv(backends.ENV, ONNX[0])
    got_feats, got_model = image_features(img), load_model()
    got_levels = _default_perceiver(ONNX[0]).perceive(img).levels
    assert got_model is not want_model and got_model._arrays is not None
    assert np.abs(got_feats - want_feats).max() < 1e-4
    x = want_model.inputs(want_feats, {"noise": 2}, img.shape[:2])
    for a, b in zip(want_model.tables(x), got_model.tables(x), strict=True):
        assert np.abs(a - b).max() < 1e-5
    assert got_levels == want_levels


def test_an_unusable_export_falls_back_to_torch_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from restoregraph.core.errors import ToolError
    from restoregraph.perception import _default_perceiver, exported
    from restoregraph.perception.cnn import CNNPerceiver
    from restoregraph.planners import embedded, scorer_arrays

    def refuse(*_a: object, **_k: object) -> None:
        raise ToolError("export refused for the test")

    def forget() -> None:
        exported.clear_cache()
        _default_perceiver.cache_clear()
        embedded._cached_arrays.cache_clear()
        backends.clear_cache()

    monkeypatch.setenv("RESTOREGRAPH_EXPORT_DIR", str(tmp_path))
    monkeypatch.setattr(exported, "ensure_perception_export", refuse)
    monkeypatch.setattr(scorer_arrays, "ensure_scorer_arrays", refuse)
    forget()
    try:
        with caplog.at_level(logging.WARNING, logger="restoregraph.tools.backends"):
            assert isinstance(_default_perceiver(ONNX[0]), CNNPerceiver)
            assert exported.exported_net(None, ONNX[0]) is None  # cached: no second warning
            monkeypatch.setenv(backends.ENV, ONNX[0])
            assert embedded.load_model()._arrays is None
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            f"perception_cnn.pt: {ONNX[0]} unavailable (export refused for the test); "
            "running it on torch",
            f"embedded_planner.pt: {ONNX[0]} unavailable (export refused for the test); "
            "running it on torch",
        ]
    finally:
        forget()
