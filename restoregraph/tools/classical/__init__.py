"""Classical restoration tools (plus two small pretrained ones that ship their own weights).

Every tool takes and returns float32 RGB (H, W, 3) in [0, 1], is deterministic, and keeps the
size (super-resolution excepted: ``scale`` 2 or 4). ``cost`` is seconds per input megapixel,
measured on a 2-core CPU (512 x 512 and 1024 x 1024 inputs). Tool ids are a stable public API:
do not rename them.

The table names each tool's function as ``"<module>:<function>"`` of this package: a module
(and OpenCV, scikit-image, torch behind it) is imported when one of its tools first runs, so
declaring and listing the tools costs no heavy import.

``denoise.oidn`` (Intel Open Image Denoise, via pyoidn) and ``lowlight.zerodce`` (Zero-DCE++,
via neuro-low-light) are registered only when their package is installed (found without
importing it: ``denoise.oidn_available``, ``lowlight.zerodce_available``); one that is installed
but does not load fails when it is run, as a ``ToolError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

from restoregraph.tools.registry import LazyTool, ToolRegistry, ToolSpec

_SUBMODULES = ("deblur", "dehaze", "dejpeg", "denoise", "derain", "lowlight", "sr")


class _Row(NamedTuple):
    """One classical tool: its task is the first part of its id."""

    id: str
    run: str  # "<module>:<function>" in this package, imported when the tool first runs
    levels: tuple[int, ...]  # the severities it is meant for
    cost: float  # seconds per megapixel
    description: str
    scale: int = 1
    available: str | None = None  # "<module>:<check>" for optional tools: registered when True


# Every classical tool, in registration order.
_TABLE: tuple[_Row, ...] = (
    _Row("denoise.nlmeans", "denoise:nlmeans", (1, 2, 3), 1.8,
         "non-local means (skimage, 5x5 patches), h scaled to the estimated sigma"),
    _Row("denoise.bilateral", "denoise:bilateral", (1, 2), 0.15,
         "two bilateral passes with range sigma scaled to the estimated noise"),
    _Row("denoise.tv", "denoise:tv", (1, 2, 3), 0.55,
         "Chambolle total-variation denoising, weight = estimated noise sigma"),
    _Row("denoise.oidn", "denoise:oidn", (1, 2, 3), 4.0,
         "Intel Open Image Denoise: pretrained U-Net (pyoidn, CPU, LDR)",
         available="denoise:oidn_available"),
    _Row("deblur.wiener", "deblur:wiener", (1, 2, 3), 0.35,
         "Wiener (Laplacian-regularised) deconvolution of an estimated gaussian blur, "
         "backing off when it rings"),
    _Row("deblur.unsharp", "deblur:unsharp", (1, 2), 0.1,
         "unsharp masking matched to the estimated blur, noise-thresholded"),
    _Row("dejpeg.deblock", "dejpeg:deblock", (1, 2, 3), 1.1,
         "8x8 deblocking + flat-region bilateral smoothing kept consistent with the "
         "estimated JPEG quantisation; luma-guided chroma filtering"),
    _Row("dehaze.dcp", "dehaze:dcp", (1, 2, 3), 0.2,
         "dark channel prior with guided-filter transmission (t0 = 0.1)"),
    _Row("lowlight.clahe", "lowlight:clahe", (1, 2), 0.05,
         "CLAHE on Lab lightness, clip limit growing with darkness"),
    _Row("lowlight.gamma", "lowlight:gamma", (1, 2, 3), 0.1,
         "white-level normalisation + gamma chosen from the mean log brightness"),
    _Row("lowlight.zerodce", "lowlight:zerodce", (1, 2, 3), 1.4,
         "Zero-DCE++ curve estimation (neuro-low-light weights, CPU)",
         available="lowlight:zerodce_available"),
    _Row("sr.bicubic.x2", "sr:bicubic_x2", (1, 2), 0.1, "bicubic upscaling x2", scale=2),
    _Row("sr.lanczos.x2", "sr:lanczos_x2", (1, 2), 0.12, "Lanczos-4 upscaling x2", scale=2),
    _Row("sr.bicubic.x4", "sr:bicubic_x4", (2, 3), 0.4, "bicubic upscaling x4", scale=4),
    _Row("derain.median", "derain:median", (1, 2, 3), 0.2,
         "directional morphological streak removal (line openings at the detected rain "
         "angle) + rain-veil compensation"),
)  # fmt: skip


def _resolve(ref: str) -> Callable[[], bool]:
    """The availability check ``"<module>:<function>"`` of this package (looked up at call time,
    so a patched check is the one used)."""
    module, _, attr = ref.partition(":")
    check: Callable[[], bool] = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    return check


# The ids this package can register, in registration order (the optional ones included).
CLASSICAL_TOOL_IDS: tuple[str, ...] = tuple(row.id for row in _TABLE)
OPTIONAL_TOOL_IDS: frozenset[str] = frozenset(r.id for r in _TABLE if r.available is not None)


def classical_specs(include_optional: bool = True) -> list[ToolSpec]:
    """Every classical ToolSpec; the optional ones only when available (and asked for).

    Nothing heavy is imported: each ``run`` is a :class:`LazyTool` that imports its module when
    the tool first runs."""
    return [
        ToolSpec(
            id=row.id,
            task=row.id.split(".")[0],
            description=row.description,
            run=LazyTool(f"{__name__}.{row.run}"),
            severity=row.levels,
            cost=row.cost,
            scale=row.scale,
        )
        for row in _TABLE
        if row.available is None or (include_optional and _resolve(row.available)())
    ]


def register_classical(reg: ToolRegistry) -> None:
    """Register every available classical tool into ``reg``."""
    for spec in classical_specs():
        reg.register(spec)


def __getattr__(name: str) -> ModuleType:
    """The tool modules (``classical.denoise`` ...), imported on first access."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CLASSICAL_TOOL_IDS", "OPTIONAL_TOOL_IDS", "classical_specs", "register_classical"]
