"""The ``onnxruntime`` and ``openvino`` backends: a verified ONNX export (:mod:`.export`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np


class _OnnxEngine:
    backend = ""

    def __init__(self, meta: dict[str, Any]) -> None:
        geo = meta["geometry"]
        self.scale = int(geo["scale"])
        self.multiple = int(geo["multiple"])
        self.minimum = int(geo["minimum"])
        self.input_channels = int(geo["input_channels"])


class OrtEngine(_OnnxEngine):
    """ONNX Runtime, CPU execution provider, all graph optimisations."""

    backend = "onnxruntime"

    def __init__(self, onnx_path: Path, meta: dict[str, Any]) -> None:
        import onnxruntime as ort

        super().__init__(meta)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input: x})[0], np.float32)


class OpenVinoEngine(_OnnxEngine):
    """OpenVINO on the CPU, compiled for each input shape (static shapes run faster than the
    dynamic model here; a tiled image has one tile shape), the last ``CACHE`` shapes kept."""

    CACHE = 4

    def __init__(self, onnx_path: Path, meta: dict[str, Any], *, bf16: bool = False) -> None:
        import openvino as ov

        super().__init__(meta)
        self.backend = "openvino-bf16" if bf16 else "openvino"
        self.core = ov.Core()
        self.model = self.core.read_model(str(onnx_path))
        self.config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _for_shape(self, shape: tuple[int, ...]) -> Any:
        with self._lock:
            compiled = self._compiled.get(shape)
            if compiled is None:
                model = self.model.clone()
                model.reshape(list(shape))
                compiled = self.core.compile_model(model, "CPU", self.config)
                self._compiled[shape] = compiled
                while len(self._compiled) > self.CACHE:
                    self._compiled.popitem(last=False)
            else:
                self._compiled.move_to_end(shape)
            return compiled

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        request = self._for_shape(tuple(x.shape)).create_infer_request()
        return np.array(request.infer([x])[0], np.float32)
