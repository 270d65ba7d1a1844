"""ONNX exports of the learned tools, derived locally from the shipped weights and verified.

``restoregraph tools export`` (or the first use of an ONNX backend) traces each learned tool's
spandrel module to ONNX (opset ``OPSET``, dynamic batch, height and width) into the export cache
(``export_dir()``: ``$RESTOREGRAPH_EXPORT_DIR``, else ``$XDG_CACHE_HOME/restoregraph/exported``,
else ``~/.cache/restoregraph/exported``). Nothing is downloaded: the files are a function of the
weights that ship with the package. Beside each ``<stem>-<sha12>.onnx`` a ``.json`` manifest
records the source weights' sha256, the ONNX file's sha256, the tile geometry, the exporter
versions and an output check (max absolute difference against PyTorch eager on two fixed random
inputs, which must stay under ``CHECK_TOLERANCE``).

Loading verifies the manifest against the source weights (sha256) and the ONNX file (sha256);
on any mismatch the export is refused and made again from the weights.

The cache, its manifests, their verification and the one-exporter-at-a-time lock
(:func:`export_paths`, :func:`verify_export`, :func:`publish`, :func:`ensure_cached`) and the
output check's runner (:func:`check_runner`) serve every derived file: the tools' ONNX models
here, the perception CNN's (:mod:`restoregraph.perception.exported`) and the embedded planner's
scorer arrays (:mod:`restoregraph.planners.scorer_arrays`).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import ToolError
from restoregraph.tools.backends.torch_eager import check_weights, geometry

OPSET = 17
CHECK_TOLERANCE = 1e-3
CHECK_SHAPES: tuple[tuple[int, int], ...] = ((64, 64), (96, 80))
FORMAT = 1
GEOMETRY_FIELDS: tuple[str, ...] = ("scale", "multiple", "minimum", "input_channels")


def export_dir() -> Path:
    """Where exports are cached (shared by every ``RESTOREGRAPH_HOME``: they depend only on the
    weights, whose sha256 is in the file name)."""
    env = os.environ.get("RESTOREGRAPH_EXPORT_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "restoregraph" / "exported"


def export_paths(
    source: Path, source_sha256: str, folder: Path | None = None, suffix: str = ".onnx"
) -> tuple[Path, Path]:
    """The derived file (ONNX by default) and its manifest for weights ``source`` with sha256
    ``source_sha256``."""
    folder = export_dir() if folder is None else folder
    stem = f"{source.stem}-{source_sha256[:12]}"
    return folder / f"{stem}{suffix}", folder / f"{stem}.json"


def sha_key(path: Path) -> str:
    """The manifest key of a derived file's sha256: ``onnx_sha256``, ``npz_sha256`` ..."""
    return f"{path.suffix.lstrip('.')}_sha256"


def _sha(path: Path) -> str:
    from restoregraph.weightfiles import sha256_of

    return sha256_of(path)


def verify_export(
    onnx_path: Path,
    meta_path: Path,
    source_sha256: str,
    geometry_fields: Sequence[str] = GEOMETRY_FIELDS,
    tolerance: float = CHECK_TOLERANCE,
) -> dict[str, Any]:
    """The manifest of a cached export, or ``ToolError`` saying why it cannot be used: missing,
    made from other weights (sha256), changed since (sha256), or a failed output check (max diff
    over ``tolerance``). ``geometry_fields``: the integers the manifest's ``geometry`` must hold
    (the tools' tile geometry; none for other derived files)."""
    if not onnx_path.is_file() or not meta_path.is_file():
        raise ToolError(f"no export of these weights in {onnx_path.parent}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded_source = str(meta["source_sha256"])
        recorded_onnx = str(meta[sha_key(onnx_path)])
        max_diff = float(meta["check"]["max_abs_diff"])
        for key in geometry_fields:
            int(meta["geometry"][key])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"{meta_path.name}: unreadable export manifest ({exc})") from None
    if recorded_source != source_sha256:
        raise ToolError(
            f"{onnx_path.name}: exported from other weights (source sha256 "
            f"{recorded_source[:12]}..., the weights are {source_sha256[:12]}...)"
        )
    if _sha(onnx_path) != recorded_onnx:
        raise ToolError(f"{onnx_path.name}: sha256 does not match its export manifest")
    if not max_diff <= tolerance:
        raise ToolError(f"{onnx_path.name}: failed its output check (max diff {max_diff:g})")
    return dict(meta)


def check_runner(onnx_path: Path) -> tuple[str, Callable[..., list[np.ndarray]]]:
    """A function running the ONNX file on its inputs (in the graph's order) and returning its
    outputs, for the output check (ONNX Runtime, else OpenVINO fp32)."""
    try:
        import onnxruntime as ort
    except ImportError:
        pass
    else:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]

        def run_ort(*xs: np.ndarray) -> list[np.ndarray]:
            return [np.asarray(y) for y in sess.run(None, dict(zip(names, xs, strict=True)))]

        return "onnxruntime " + ort.__version__, run_ort
    try:
        import openvino as ov
    except ImportError:
        raise ToolError(
            "checking an ONNX export needs onnxruntime or openvino: "
            "pip install 'restoregraph[fast]'"
        ) from None
    compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run_ov(*xs: np.ndarray) -> list[np.ndarray]:
        out = compiled(list(xs))
        return [np.asarray(out[i]) for i in range(len(compiled.outputs))]

    return "openvino " + ov.__version__, run_ov


def publish(tmp: Path, path: Path, meta_path: Path, meta: dict[str, Any]) -> None:
    """Move a checked derived file ``tmp`` to ``path`` and write its manifest, each atomically
    (the manifest last: a reader never sees a manifest without its file)."""
    os.replace(tmp, path)
    meta_tmp = meta_path.with_name(f".{meta_path.name}.tmp{os.getpid()}")
    meta_tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(meta_tmp, meta_path)


def ensure_cached(
    path: Path,
    verify: Callable[[], dict[str, Any]],
    make: Callable[[], tuple[Path, dict[str, Any]]],
    label: str,
) -> tuple[Path, dict[str, Any]]:
    """The derived file ``path`` and its manifest: ``verify()``'s when it passes, else
    ``make()``'s (one process makes it at a time; the others wait and reuse it). ``label``
    names the source in the log line."""
    import fcntl
    import logging

    try:
        return path, verify()
    except ToolError as exc:
        reason = str(exc)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:  # another process may have made it while this one waited
            return path, verify()
        except ToolError:
            pass
        if path.exists() or path.with_suffix(".json").exists():
            logging.getLogger(__name__).warning("%s; exporting it again", reason)
        else:
            logging.getLogger(__name__).info(
                "exporting %s (once; cached in %s)", label, path.parent
            )
        return make()


def run_export(tmp: Path, source: Path, export: Callable[[], object]) -> None:
    """Run ``export`` (which writes ``tmp``); a failure removes ``tmp`` and is one ``ToolError``
    line naming ``source``."""
    try:
        export()
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ToolError(f"{source.name}: ONNX export failed ({text})") from None


def checked_difference(
    tmp: Path, source: Path, check: Callable[[], float], what: str = "ONNX export"
) -> float:
    """``check()``: the largest absolute difference between the derived file ``tmp`` and
    PyTorch eager. A failing check, or a difference over ``CHECK_TOLERANCE``, removes ``tmp``
    (a ``ToolError`` for the latter); else the difference, for the manifest."""
    try:
        max_diff = check()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not max_diff <= CHECK_TOLERANCE:
        tmp.unlink(missing_ok=True)
        raise ToolError(
            f"{source.name}: {what} differs from PyTorch by {max_diff:g} "
            f"(> {CHECK_TOLERANCE:g}); not used"
        )
    return max_diff


def export_onnx(
    source: Path, sha256: str | None = None, folder: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Export weights ``source`` (checked against ``sha256`` when given) to ONNX, check the
    export's outputs against PyTorch eager, and write the file and its manifest atomically."""
    import spandrel
    import torch

    from restoregraph.tools.loading import load_model

    check_weights(source, sha256)
    source_sha = sha256 or _sha(source)
    onnx_path, meta_path = export_paths(source, source_sha, folder)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    desc = load_model(source)
    geo = geometry(desc)
    module = desc.model.eval()
    side = max(64, geo["minimum"], geo["multiple"])
    side += (-side) % geo["multiple"]
    example = torch.rand(1, geo["input_channels"], side, side)
    tmp = onnx_path.with_name(f".{onnx_path.name}.tmp{os.getpid()}")
    t0 = time.perf_counter()

    def export() -> None:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}},
            )

    run_export(tmp, source, export)
    seconds = time.perf_counter() - t0
    engine_name = ""

    def check() -> float:
        nonlocal engine_name
        engine_name, run = check_runner(tmp)
        rng = np.random.default_rng(0)
        max_diff = 0.0
        for h, w in CHECK_SHAPES:
            h += (-h) % geo["multiple"]
            w += (-w) % geo["multiple"]
            x = rng.random((1, geo["input_channels"], h, w), dtype=np.float32)
            with torch.inference_mode():
                ref = module(torch.from_numpy(x)).float().numpy()
            got = np.asarray(run(x)[0], np.float32)
            if got.shape != ref.shape:
                raise ToolError(
                    f"{source.name}: ONNX export gives shape {got.shape}, not {ref.shape}"
                )
            max_diff = max(max_diff, float(np.abs(got - ref).max()))
        return max_diff

    max_diff = checked_difference(tmp, source, check)
    try:
        import onnx

        onnx_version: str | None = onnx.__version__
    except ImportError:
        onnx_version = None
    meta: dict[str, Any] = {
        "format": FORMAT,
        "source": source.name,
        "source_sha256": source_sha,
        "onnx": onnx_path.name,
        "onnx_sha256": _sha(tmp),
        "bytes": tmp.stat().st_size,
        "geometry": geo,
        "exporter": {
            "torch": torch.__version__,
            "spandrel": spandrel.__version__,
            "onnx": onnx_version,
            "opset": OPSET,
            "method": "torch.onnx.export(dynamo=False), dynamic n/h/w",
        },
        "check": {
            "engine": engine_name,
            "inputs": [list(s) for s in CHECK_SHAPES],
            "seed": 0,
            "max_abs_diff": max_diff,
            "tolerance": CHECK_TOLERANCE,
        },
        "export_seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    publish(tmp, onnx_path, meta_path, meta)
    return onnx_path, meta


def ensure_export(
    source: Path, sha256: str | None, folder: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """A verified export of ``source``: the cached one, or a new one when there is none or it
    fails verification (one process exports at a time; the others wait and reuse it)."""
    check_weights(source, sha256)
    source_sha = sha256 or _sha(source)
    onnx_path, meta_path = export_paths(source, source_sha, folder)
    return ensure_cached(
        onnx_path,
        lambda: verify_export(onnx_path, meta_path, source_sha),
        lambda: export_onnx(source, sha256, folder),
        f"{source.name} to ONNX",
    )
