"""Classical restoration tools (plus two small pretrained ones that ship their own weights).

Every tool takes and returns float32 RGB (H, W, 3) in [0, 1], is deterministic, and keeps the
size (super-resolution excepted: ``scale`` 2 or 4). ``cost`` is seconds per input megapixel,
measured on a 2-core CPU (512 x 512 and 1024 x 1024 inputs). Tool ids are a stable public API:
do not rename them.

``denoise.oidn`` (Intel Open Image Denoise, via pyoidn) and ``lowlight.zerodce`` (Zero-DCE++,
via neuro-low-light) are registered only when their package imports and runs.
"""

from __future__ import annotations

from restoregraph.tools.classical import deblur, dehaze, dejpeg, denoise, derain, lowlight, sr
from restoregraph.tools.registry import ToolRegistry, ToolSpec

# The ids this package can register, in registration order (the two optional ones included).
CLASSICAL_TOOL_IDS: tuple[str, ...] = (
    "denoise.nlmeans",
    "denoise.bilateral",
    "denoise.tv",
    "denoise.oidn",
    "deblur.wiener",
    "deblur.unsharp",
    "dejpeg.deblock",
    "dehaze.dcp",
    "lowlight.clahe",
    "lowlight.gamma",
    "lowlight.zerodce",
    "sr.bicubic.x2",
    "sr.lanczos.x2",
    "sr.bicubic.x4",
    "derain.median",
)
OPTIONAL_TOOL_IDS: frozenset[str] = frozenset({"denoise.oidn", "lowlight.zerodce"})


def classical_specs(include_optional: bool = True) -> list[ToolSpec]:
    """Every classical ToolSpec; the optional ones only when available (and asked for)."""
    specs = [
        ToolSpec(
            id="denoise.nlmeans",
            task="denoise",
            description="non-local means (skimage, 5x5 patches), h scaled to the estimated sigma",
            run=denoise.nlmeans,
            severity=(1, 2, 3),
            cost=1.8,
        ),
        ToolSpec(
            id="denoise.bilateral",
            task="denoise",
            description="two bilateral passes with range sigma scaled to the estimated noise",
            run=denoise.bilateral,
            severity=(1, 2),
            cost=0.15,
        ),
        ToolSpec(
            id="denoise.tv",
            task="denoise",
            description="Chambolle total-variation denoising, weight = estimated noise sigma",
            run=denoise.tv,
            severity=(1, 2, 3),
            cost=0.55,
        ),
    ]
    if include_optional and denoise.oidn_available():
        specs.append(
            ToolSpec(
                id="denoise.oidn",
                task="denoise",
                description="Intel Open Image Denoise: pretrained U-Net (pyoidn, CPU, LDR)",
                run=denoise.oidn,
                severity=(1, 2, 3),
                cost=4.0,
            )
        )
    specs += [
        ToolSpec(
            id="deblur.wiener",
            task="deblur",
            description="Wiener (Laplacian-regularised) deconvolution of an estimated gaussian "
            "blur, backing off when it rings",
            run=deblur.wiener,
            severity=(1, 2, 3),
            cost=0.35,
        ),
        ToolSpec(
            id="deblur.unsharp",
            task="deblur",
            description="unsharp masking matched to the estimated blur, noise-thresholded",
            run=deblur.unsharp,
            severity=(1, 2),
            cost=0.1,
        ),
        ToolSpec(
            id="dejpeg.deblock",
            task="dejpeg",
            description="8x8 deblocking + flat-region bilateral smoothing kept consistent with "
            "the estimated JPEG quantisation; luma-guided chroma filtering",
            run=dejpeg.deblock,
            severity=(1, 2, 3),
            cost=1.1,
        ),
        ToolSpec(
            id="dehaze.dcp",
            task="dehaze",
            description="dark channel prior with guided-filter transmission (t0 = 0.1)",
            run=dehaze.dcp,
            severity=(1, 2, 3),
            cost=0.2,
        ),
        ToolSpec(
            id="lowlight.clahe",
            task="lowlight",
            description="CLAHE on Lab lightness, clip limit growing with darkness",
            run=lowlight.clahe,
            severity=(1, 2),
            cost=0.05,
        ),
        ToolSpec(
            id="lowlight.gamma",
            task="lowlight",
            description="white-level normalisation + gamma chosen from the mean log brightness",
            run=lowlight.gamma,
            severity=(1, 2, 3),
            cost=0.1,
        ),
    ]
    if include_optional and lowlight.zerodce_available():
        specs.append(
            ToolSpec(
                id="lowlight.zerodce",
                task="lowlight",
                description="Zero-DCE++ curve estimation (neuro-low-light weights, CPU)",
                run=lowlight.zerodce,
                severity=(1, 2, 3),
                cost=1.4,
            )
        )
    specs += [
        ToolSpec(
            id="sr.bicubic.x2",
            task="sr",
            description="bicubic upscaling x2",
            run=sr.bicubic_x2,
            severity=(1, 2),
            cost=0.1,
            scale=2,
        ),
        ToolSpec(
            id="sr.lanczos.x2",
            task="sr",
            description="Lanczos-4 upscaling x2",
            run=sr.lanczos_x2,
            severity=(1, 2),
            cost=0.12,
            scale=2,
        ),
        ToolSpec(
            id="sr.bicubic.x4",
            task="sr",
            description="bicubic upscaling x4",
            run=sr.bicubic_x4,
            severity=(2, 3),
            cost=0.4,
            scale=4,
        ),
        ToolSpec(
            id="derain.median",
            task="derain",
            description="directional morphological streak removal (line openings at the "
            "detected rain angle) + rain-veil compensation",
            run=derain.median,
            severity=(1, 2, 3),
            cost=0.2,
        ),
    ]
    return specs


def register_classical(reg: ToolRegistry) -> None:
    """Register every available classical tool into ``reg``."""
    for spec in classical_specs():
        reg.register(spec)


__all__ = ["CLASSICAL_TOOL_IDS", "OPTIONAL_TOOL_IDS", "classical_specs", "register_classical"]
