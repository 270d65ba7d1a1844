"""What each built-in learned tool is trained on: its architecture, and its degradation sampler.

One :class:`Variant` per tool id. ``restoregraph train-tool TASK --variant V`` trains the variant
whose task is ``TASK`` and whose variant name is ``V``; the trained weights are then listed in
``restoregraph/weights/MANIFEST.json`` and :func:`restoregraph.tools.learned.register_learned`
registers them. Tool ids are a stable public API: do not rename them.

The all-in-one model is registered under its own task ``hybrid`` (``hybrid.nafnet``): it is
trained on mixtures of the degradations every other task undoes, so it belongs to no single one.

Architectures: every scale-1 tool is a small NAFNet (width 16, one block per level; about
0.3 M parameters, 1.2 MB). On this CPU budget (a few minutes of one core per model) NAFNet
learned far faster than DnCNN: after 250 steps on sigma-25 noise a 10-layer DnCNN gained
+1.6 dB over its input, NAFNet +6.4 dB. ``sr.compact.x2`` is spandrel's SRVGGNetCompact.
DnCNN stays available here (``ARCHS["dncnn"]``) for variants that want it.

Severity: the denoisers are trained on narrow noise ranges (the levels of
``restoregraph.degrade``: sigma 5-15 / 15-35 / 35-50) so that the best model depends on the
noise level, as in RestoreAgent; the JPEG models split at quality 30.

Real photos: ``deraindrop.nafnet`` and ``denoise.nafnet.real`` are trained on the realistic
synthesis of :mod:`restoregraph.degrade.realistic` (a sampler step with ``"realistic": True``
is applied with ``apply_realistic``; the others with ``restoregraph.degrade``), degraded from
larger crops where the degradation's size is relative to the frame (``source``), and
``denoise.nafnet.real`` also on real noisy/clean pairs (``real_pairs``: PolyU, fit scenes only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MixtureStep = dict[str, Any]
Sampler = Callable[[np.random.Generator], list[MixtureStep]]

# Architectures: spandrel class name and its constructor arguments (small versions).
ARCHS: dict[str, tuple[str, dict[str, Any]]] = {
    "dncnn": ("DnCNN", {"in_nc": 3, "out_nc": 3, "nc": 32, "nb": 10, "act_mode": "R"}),
    "nafnet": (
        "NAFNet",
        {
            "img_channel": 3,
            "width": 16,
            "middle_blk_num": 1,
            "enc_blk_nums": [1, 1, 1],
            "dec_blk_nums": [1, 1, 1],
        },
    ),
    "compact": (
        "Compact",
        {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 32, "num_conv": 8, "upscale": 2},
    ),
}


def _noise(lo: float, hi: float) -> Sampler:
    """Gaussian noise with sigma drawn uniformly from [lo, hi] (0-255 scale)."""

    def sample(rng: np.random.Generator) -> list[MixtureStep]:
        return [{"type": "noise", "sigma": round(float(rng.uniform(lo, hi)), 3)}]

    return sample


def _jpeg(lo: int, hi: int) -> Sampler:
    def sample(rng: np.random.Generator) -> list[MixtureStep]:
        return [{"type": "jpeg", "quality": int(rng.integers(lo, hi + 1))}]

    return sample


def _levels(*types: str) -> Sampler:
    """One of ``types`` at a uniformly drawn level 1..3."""

    def sample(rng: np.random.Generator) -> list[MixtureStep]:
        t = types[int(rng.integers(len(types)))]
        return [{"type": t, "level": int(rng.integers(1, 4))}]

    return sample


def _then_jpeg(
    rng: np.random.Generator, steps: list[MixtureStep], share: float
) -> list[MixtureStep]:
    """``steps``, then, with probability ``share``, one JPEG save at quality 50-90
    (``restoregraph.degrade``), so the tool tolerates compression."""
    if share and rng.random() < share:
        steps.append({"type": "jpeg", "quality": int(rng.integers(50, 91))})
    return steps


def _realistic(
    type_: str, p: tuple[float, float, float] | None = None, jpeg_share: float = 0.0
) -> Sampler:
    """One realistic degradation (``restoregraph.degrade.realistic``) at a level 1..3 drawn
    with probabilities ``p`` (uniform by default); then, with probability ``jpeg_share``, one
    JPEG save at quality 50-90 (``restoregraph.degrade``), so the tool tolerates compression."""

    def sample(rng: np.random.Generator) -> list[MixtureStep]:
        level = int(rng.choice(3, p=p)) + 1
        return _then_jpeg(rng, [{"type": type_, "level": level, "realistic": True}], jpeg_share)

    return sample


def _mixed(type_: str, realistic_share: float = 0.6, jpeg_share: float = 0.2) -> Sampler:
    """One degradation of ``type_`` at a uniform level 1..3: with probability
    ``realistic_share`` the realistic synthesis (``restoregraph.degrade.realistic``), else the
    project's (``restoregraph.degrade``), so the tool learns real photos' look without losing
    the synthetic mixtures the planner was trained on; then, with probability ``jpeg_share``,
    one JPEG save at quality 50-90."""

    def sample(rng: np.random.Generator) -> list[MixtureStep]:
        level = int(rng.integers(1, 4))
        step: MixtureStep = {"type": type_, "level": level}
        if rng.random() < realistic_share:
            step["realistic"] = True
        return _then_jpeg(rng, [step], jpeg_share)

    return sample


def _retrained(
    task: str, type_: str, what: str, loss: str = "charbonnier", protect_tones: bool = False
) -> Variant:
    """``<task>.nafnet`` as retrained for real photos ("Real photos II"): the small NAFNet
    trained longer, on larger patches of larger crops, on the mixed synthesis (:func:`_mixed`).
    (The first versions, 2500 steps on the project's synthesis alone, left a dark border and a
    cast on real haze and blew out real low-light skies; see docs/tools.md.)"""
    return Variant(
        f"{task}.nafnet",
        task,
        "",
        "nafnet",
        f"small NAFNet (width 16) trained on {what}: 60 % the realistic synthesis, 40 % the "
        "project's, a fifth of them then JPEG-compressed",
        _mixed(type_),
        steps=6000,
        batch_size=16,
        crop=64,
        source=320,
        loss=loss,
        cost=1.5,
        protect_tones=protect_tones,
    )


# Order in which a mixture's degradations are applied (scene -> optics -> sensor -> codec).
HYBRID_ORDER = ("haze", "rain", "snow", "low_light", "defocus", "motion_blur", "noise", "jpeg")


def _hybrid(rng: np.random.Generator) -> list[MixtureStep]:
    """One or two distinct degradations (of those the task tools undo) at random levels."""
    n = 1 + int(rng.random() < 0.5)
    picked = rng.choice(len(HYBRID_ORDER), size=n, replace=False)
    return [
        {"type": HYBRID_ORDER[i], "level": int(rng.integers(1, 4))} for i in sorted(picked.tolist())
    ]


@dataclass(frozen=True)
class Variant:
    id: str  # the tool id
    task: str
    variant: str  # name for --variant ('' when the task has one model)
    arch: str  # key of ARCHS
    description: str
    sampler: Sampler = field(repr=False, compare=False)
    severity: tuple[int, ...] = (1, 2, 3)
    scale: int = 1
    steps: int = 1200
    batch_size: int = 8
    crop: int = 48  # training patch side (output resolution)
    lr: float = 1e-3
    cost: float = 2.0  # seconds per megapixel on the 2-core CPU (rough hint)
    source: int = 160  # side of the clean crop that is degraded before patches are cut
    real_pairs: str = ""  # real (degraded, clean) pairs added to the pool: "" or "polyu"
    real_per_pair: int = 0  # patches cut from each real pair
    # "charbonnier" (default), "l2", or "charbonnier+l2" (+ 10 x MSE, which leads where the
    # errors are large: the mean there, e.g. under a raindrop, rather than the median)
    loss: str = "charbonnier"
    # inference: roll the raw output's ends off instead of clamping (restoregraph.tools.tone),
    # for the tools that change tones (brightening, dehazing)
    protect_tones: bool = False

    @property
    def arch_name(self) -> str:
        return ARCHS[self.arch][0]

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        return dict(ARCHS[self.arch][1])

    @property
    def file(self) -> str:
        return self.id.replace(".", "_") + ".safetensors"


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "denoise.nafnet.low",
        "denoise",
        "low",
        "nafnet",
        "small NAFNet (width 16) trained on Gaussian noise sigma 5-15",
        _noise(5.0, 15.0),
        severity=(1,),
        steps=800,
        cost=1.5,
    ),
    Variant(
        "denoise.nafnet.mid",
        "denoise",
        "mid",
        "nafnet",
        "small NAFNet (width 16) trained on Gaussian noise sigma 15-35",
        _noise(15.0, 35.0),
        severity=(2,),
        steps=800,
        cost=1.5,
    ),
    Variant(
        "denoise.nafnet.high",
        "denoise",
        "high",
        "nafnet",
        "small NAFNet (width 16) trained on Gaussian noise sigma 35-50",
        _noise(35.0, 50.0),
        severity=(3,),
        steps=800,
        cost=1.5,
    ),
    Variant(
        "dejpeg.nafnet.mild",
        "dejpeg",
        "mild",
        "nafnet",
        "small NAFNet (width 16) trained on JPEG quality 30-80",
        _jpeg(30, 80),
        severity=(1,),
        steps=2500,
        cost=1.5,
    ),
    Variant(
        "dejpeg.nafnet.severe",
        "dejpeg",
        "severe",
        "nafnet",
        "small NAFNet (width 16) trained on JPEG quality 10-29",
        _jpeg(10, 29),
        severity=(2, 3),
        steps=2500,
        cost=1.5,
    ),
    Variant(
        "deblur.nafnet.motion",
        "deblur",
        "motion",
        "nafnet",
        "small NAFNet (width 16) trained on linear motion blur, length 10-25 px",
        _levels("motion_blur"),
        # measured: +0.9 to +1.8 dB at motion-blur levels 2-3, -0.5 to +1.0 dB at level 1
        severity=(2, 3),
        steps=2500,
        cost=1.5,
    ),
    Variant(
        "deblur.nafnet.defocus",
        "deblur",
        "defocus",
        "nafnet",
        "small NAFNet (width 16) trained on defocus (disc) and Gaussian blur",
        _levels("defocus", "blur"),
        steps=2500,
        cost=1.5,
    ),
    _retrained("derain", "rain", "rain streaks (layered, motion-blurred)", "charbonnier+l2"),
    _retrained(
        "dehaze", "haze", "haze (depth and sky-aware haze, scattering model)", protect_tones=True
    ),
    _retrained(
        "lowlight",
        "low_light",
        "low light (under-exposed raw pipeline; gamma, gain)",
        protect_tones=True,
    ),
    _retrained("desnow", "snow", "snow (multi-size flakes and streaks)", "charbonnier+l2"),
    Variant(
        "sr.compact.x2",
        "sr",
        "x2",
        "compact",
        "SRVGGNetCompact (32 features, 8 convs) x2 super-resolution of bicubic downscales",
        lambda rng: [{"type": "low_resolution", "scale": 2}],
        severity=(1,),
        scale=2,
        steps=1000,
        batch_size=16,
        crop=64,
        cost=0.8,
    ),
    Variant(
        "hybrid.nafnet",
        "hybrid",
        "",
        "nafnet",
        "all-in-one small NAFNet (width 16) trained on mixtures of 1-2 degradations "
        "(haze, rain, snow, low light, defocus, motion blur, noise, JPEG)",
        _hybrid,
        steps=2500,
        cost=1.5,
    ),
    # real photos (docs/tools.md): appended, so the older tools keep their order
    Variant(
        "deraindrop.nafnet",
        "deraindrop",
        "",
        "nafnet",
        "small NAFNet (width 16) trained on realistic raindrops on the lens (refractive, "
        "out-of-focus drops over a defocused film), a fifth of them then JPEG-compressed",
        _realistic("raindrop", jpeg_share=0.2),
        loss="charbonnier+l2",  # plain Charbonnier learnt the identity (the median of a drop)
        steps=2800,
        crop=64,
        source=320,  # drop radii are relative to the frame: 320 px crops, like a small photo
        cost=1.5,
    ),
    Variant(
        "denoise.nafnet.real",
        "denoise",
        "real",
        "nafnet",
        "small NAFNet (width 16) trained on real camera noise: a simulated raw pipeline "
        "(shot and read noise, demosaicing, in-camera denoising, JPEG) fitted to PolyU, "
        "plus real PolyU noisy/clean pairs (fit scenes)",
        _realistic("noise", p=(0.4, 0.3, 0.3)),
        steps=3000,
        cost=1.5,
        real_pairs="polyu",
        real_per_pair=16,
    ),
)

VARIANT_BY_ID: dict[str, Variant] = {v.id: v for v in VARIANTS}


def find_variant(task: str, variant: str | None) -> Variant:
    """The variant for ``task`` and ``--variant``; ValueError listing the choices otherwise."""
    matches = [v for v in VARIANTS if v.task == task]
    if not matches:
        known = sorted({v.task for v in VARIANTS})
        raise ValueError(f"no learned tool is defined for task {task!r}; tasks: {', '.join(known)}")
    name = variant or ""
    for v in matches:
        if name in (v.variant, v.id, v.id.split(".", 1)[1]):
            return v
    choices = ", ".join(v.variant or "(none)" for v in matches)
    raise ValueError(f"task {task!r} has no variant {name or '(none)'!r}; choices: {choices}")
