"""The step critic: did one tool step make the photo better, judged without the clean image.

Reflection decides, after every tool step, whether to keep it. Its rule (``nodes/reflection``)
weighs the drop of the perceived severity of the step's own degradation against side effects and
the change of a BRISQUE/NIQE quality score. The step critic is a small model trained to predict
the step's *full-reference* gain (PSNR after minus PSNR before, in dB, against the clean image)
from what is known at run time (:func:`step_features`):

- the step's task (one-hot) and whether perception had seen that task's degradation;
- perception's expected severity per type before and after the step, and the quality score
  before and after (what the rule reads), laid out as the plan critic's inputs
  (``restoregraph.planners.critic.critic_inputs``): the after values and their change;
- simple image statistics before and after (mean and spread of luminance, clipped share,
  gradient and Laplacian energy, saturation) and how much the step changed the pixels (mean
  absolute change, mean colour shift, newly clipped share, the scale factor).

The weights are a JSON file (an ensemble of one-hidden-layer MLPs and the input scaling, read
with numpy: no torch at run time) trained by ``restoregraph.lab.training.step_critic_train`` on
data built by ``restoregraph.lab.training.step_critic_data`` (docs/step_critic.md).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import PERCEPTION_TYPES, TASK_FOR_PERCEPTION_TYPE, TASKS

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "step_critic.json"
ARCH = "step-critic-v1"
STATS_SIDE = 256  # image statistics are read on at most this many px per side (strided)

STAT_NAMES: tuple[str, ...] = (
    "luma_mean",
    "luma_std",
    "clipped",
    "grad",
    "lap",
    "saturation",
)


def _feature_names() -> tuple[str, ...]:
    state = (*(f"sev_{t}" for t in PERCEPTION_TYPES), "quality", *STAT_NAMES)
    return (
        *(f"task_{t}" for t in TASKS),
        "seen",
        "target_before",
        "target_drop",
        "side_rise",
        "log2_scale",
        "abs_change",
        "colour_shift",
        "new_clipped",
        *(f"after_{s}" for s in state),
        *(f"delta_{s}" for s in state),
    )


FEATURE_NAMES: tuple[str, ...] = _feature_names()


def _strided(image: np.ndarray, side: int = STATS_SIDE) -> np.ndarray:
    img = np.asarray(image, np.float32)
    step = max(1, int(np.ceil(max(img.shape[:2]) / side)))
    return img[::step, ::step, :3] if img.ndim == 3 else img[::step, ::step]


def image_stats(image: np.ndarray) -> np.ndarray:
    """(len(STAT_NAMES),) float32 statistics of an RGB float image in [0, 1]."""
    from restoregraph.metrics.safety import clipped_fraction

    img = _strided(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    luma = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    gx = np.abs(np.diff(luma, axis=1)).mean() if luma.shape[1] > 1 else 0.0
    gy = np.abs(np.diff(luma, axis=0)).mean() if luma.shape[0] > 1 else 0.0
    if min(luma.shape) >= 3:
        lap = np.abs(
            4 * luma[1:-1, 1:-1]
            - luma[:-2, 1:-1]
            - luma[2:, 1:-1]
            - luma[1:-1, :-2]
            - luma[1:-1, 2:]
        ).mean()
    else:
        lap = 0.0
    sat = (img.max(axis=-1) - img.min(axis=-1)).mean()
    return np.array(
        [
            float(luma.mean()),
            float(luma.std()),
            clipped_fraction(img),
            float(np.log(gx + gy + 1e-4)),
            float(np.log(lap + 1e-4)),
            float(sat),
        ],
        np.float32,
    )


def _targets(task: str) -> list[str]:
    return [t for t, tk in TASK_FOR_PERCEPTION_TYPE.items() if tk == task]


def step_features(
    task: str,
    before: np.ndarray,
    after: np.ndarray,
    severity_before: Mapping[str, float],
    severity_after: Mapping[str, float],
    quality_before: float,
    quality_after: float,
    seen: bool,
    stats_before: np.ndarray | None = None,
) -> np.ndarray:
    """(len(FEATURE_NAMES),) float32 inputs of the step critic for one step ``before -> after``
    (``seen``: perception had reported the step's degradation before it; ``stats_before``:
    :func:`image_stats` of ``before`` when already known)."""
    from restoregraph.metrics.fullref import match_size
    from restoregraph.metrics.safety import clipped_fraction, colour_shift

    targets = _targets(task)
    sb = np.array([float(severity_before.get(t, 0.0)) for t in PERCEPTION_TYPES], np.float32)
    sa = np.array([float(severity_after.get(t, 0.0)) for t in PERCEPTION_TYPES], np.float32)
    tmask = np.array([t in targets for t in PERCEPTION_TYPES])
    side_rise = float(np.maximum(0.0, sa - sb)[~tmask].sum())
    st_b = image_stats(before) if stats_before is None else np.asarray(stats_before, np.float32)
    st_a = image_stats(after)
    b = _strided(before)
    a_full = np.asarray(after, np.float32)
    scale = a_full.shape[0] / max(1, np.asarray(before).shape[0])
    # the output on the (strided) input's grid: what the step changed
    a = _strided(a_full) if a_full.shape == np.asarray(before).shape else match_size(a_full, b)
    change = float(np.abs(a - b).mean())
    onehot = np.array([t == task for t in TASKS], np.float32)
    head = np.array(
        [
            float(bool(seen)),
            float(sb[tmask].sum()),
            float((sb - sa)[tmask].sum()),
            side_rise,
            float(np.log2(max(scale, 1e-3))),
            change,
            colour_shift(before, after),
            clipped_fraction(after) - clipped_fraction(before),
        ],
        np.float32,
    )
    vb = np.concatenate([sb, [quality_before], st_b]).astype(np.float32)
    va = np.concatenate([sa, [quality_after], st_a]).astype(np.float32)
    # the plan critic's layout (critic_inputs): the after state, then its change from before
    return np.concatenate([onehot, head, va, va - vb]).astype(np.float32)


class StepCritic:
    """Trained step critic (numpy): predicts a step's PSNR gain in dB from its features."""

    def __init__(self, blob: Mapping[str, Any], path: str = "") -> None:
        if blob.get("arch") != ARCH:
            raise ToolError(
                f"step critic weights {path}: unknown architecture {blob.get('arch')!r}"
            )
        names = tuple(blob.get("features", ()))
        if names != FEATURE_NAMES:
            raise ToolError(
                f"step critic weights {path}: trained on other features "
                f"({len(names)} inputs, this version computes {len(FEATURE_NAMES)}); retrain them"
            )
        self.meta = {k: v for k, v in blob.items() if k not in ("members", "mean", "std")}
        self.mean = np.asarray(blob["mean"], np.float64)
        self.std = np.asarray(blob["std"], np.float64)
        self.members = [
            [
                (np.asarray(layer["W"], np.float64), np.asarray(layer["b"], np.float64))
                for layer in member
            ]
            for member in blob["members"]
        ]
        # keep a step when the predicted gain is above ``threshold``; the tasks whose steps it
        # decides (where it beat the rule on the validation photos); a requested step is vetoed
        # when the predicted gain is at or below ``veto_threshold``
        self.threshold = float(blob.get("threshold", 0.0))
        self.decide_tasks = tuple(str(t) for t in blob.get("decide_tasks", ()))
        self.veto_threshold = float(blob.get("veto_threshold", self.threshold))
        if not self.members or self.mean.shape != (len(FEATURE_NAMES),):
            raise ToolError(f"step critic weights {path}: malformed (no members or bad shapes)")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted gains (dB) of a (N, F) or (F,) feature array: (N,) or a 0-d array."""
        x = np.asarray(features, np.float64)
        single = x.ndim == 1
        z = (np.atleast_2d(x) - self.mean) / self.std
        outs = []
        for layers in self.members:
            h = z
            for i, (w, b) in enumerate(layers):
                h = h @ w + b
                if i < len(layers) - 1:
                    h = np.maximum(h, 0.0)
            outs.append(h[:, 0])
        pred = np.mean(outs, axis=0)
        return pred[0] if single else pred

    def vetoes(self, gain: float) -> bool:
        """Whether a requested step of predicted ``gain`` is rolled back (a predicted loss)."""
        return gain <= self.veto_threshold

    def keeps(self, gain: float) -> bool:
        """Whether a step of predicted ``gain`` is kept where the critic decides."""
        return gain > self.threshold


def load_step_critic(path: str | Path | None = None) -> StepCritic:
    """Load step-critic weights (``restoregraph/weights/step_critic.json`` by default)."""
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise ToolError(
            f"step critic weights not found: {p} (train them with "
            "`python -m restoregraph.lab.training.step_critic_train`)"
        )
    return _cached(str(p.resolve()), p.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int) -> StepCritic:
    try:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolError(f"step critic weights unreadable: {path} ({exc})") from None
    if not isinstance(blob, dict):
        raise ToolError(f"step critic weights {path}: expected a JSON object")
    try:
        return StepCritic(blob, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ToolError(f"step critic weights {path}: malformed ({exc})") from None


__all__ = [
    "ARCH",
    "DEFAULT_WEIGHTS",
    "FEATURE_NAMES",
    "STAT_NAMES",
    "StepCritic",
    "image_stats",
    "load_step_critic",
    "step_features",
]
