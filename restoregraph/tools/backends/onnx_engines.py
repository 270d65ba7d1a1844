"""The ``onnxruntime`` and ``openvino`` backends: a verified ONNX export (:mod:`.export`).

A *runner* runs an ONNX file in one engine: ``run(*inputs) -> outputs`` (float32 arrays, in the
graph's input and output order). The learned tools' engines wrap one (one input, one output);
the perception CNN (:mod:`restoregraph.perception.exported`) uses one directly (two of each).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ONNX_BACKENDS: tuple[str, ...] = ("onnxruntime", "openvino", "openvino-bf16")


class Runner(Protocol):
    backend: str

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]: ...


class OrtRunner:
    """ONNX Runtime, CPU execution provider, all graph optimisations."""

    backend = "onnxruntime"

    def __init__(self, onnx_path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        feed = {
            name: np.ascontiguousarray(x, dtype=np.float32)
            for name, x in zip(self.inputs, inputs, strict=True)
        }
        return [np.asarray(y, np.float32) for y in self.session.run(None, feed)]


class OpenVinoRunner:
    """OpenVINO on the CPU, compiled for each input shape (static shapes run faster than the
    dynamic model here; a tiled image has one tile shape), the last ``CACHE`` shapes kept."""

    CACHE = 4

    def __init__(self, onnx_path: Path, *, bf16: bool = False) -> None:
        import openvino as ov

        self.backend = "openvino-bf16" if bf16 else "openvino"
        self.core = ov.Core()
        self.model = self.core.read_model(str(onnx_path))
        self.names = [p.get_any_name() for p in self.model.inputs]
        self.config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        self._compiled: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _for_shapes(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        with self._lock:
            compiled = self._compiled.get(shapes)
            if compiled is None:
                model = self.model.clone()
                if len(shapes) == 1:
                    model.reshape(list(shapes[0]))
                else:
                    model.reshape({n: list(s) for n, s in zip(self.names, shapes, strict=True)})
                compiled = self.core.compile_model(model, "CPU", self.config)
                self._compiled[shapes] = compiled
                while len(self._compiled) > self.CACHE:
                    self._compiled.popitem(last=False)
            else:
                self._compiled.move_to_end(shapes)
            return compiled

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        xs = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
        compiled = self._for_shapes(tuple(tuple(x.shape) for x in xs))
        out = compiled.create_infer_request().infer(xs)
        return [np.array(out[i], np.float32) for i in range(len(compiled.outputs))]


def make_runner(onnx_path: Path, backend: str) -> Runner:
    """The runner of ``onnx_path`` on ``backend`` (one of ``ONNX_BACKENDS``)."""
    if backend == "onnxruntime":
        return OrtRunner(onnx_path)
    if backend in ("openvino", "openvino-bf16"):
        return OpenVinoRunner(onnx_path, bf16=backend == "openvino-bf16")
    raise ValueError(f"not an ONNX backend: {backend!r}")


class _OnnxEngine:
    """A learned tool's engine (:class:`restoregraph.tools.backends.Engine`) on a runner."""

    def __init__(self, runner: Runner, meta: dict[str, Any]) -> None:
        geo = meta["geometry"]
        self.runner = runner
        self.backend = runner.backend
        self.scale = int(geo["scale"])
        self.multiple = int(geo["multiple"])
        self.minimum = int(geo["minimum"])
        self.input_channels = int(geo["input_channels"])

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.runner.run(x)[0]


class OrtEngine(_OnnxEngine):
    def __init__(self, onnx_path: Path, meta: dict[str, Any]) -> None:
        super().__init__(OrtRunner(onnx_path), meta)


class OpenVinoEngine(_OnnxEngine):
    def __init__(self, onnx_path: Path, meta: dict[str, Any], *, bf16: bool = False) -> None:
        super().__init__(OpenVinoRunner(onnx_path, bf16=bf16), meta)
