"""The plan critic: which of several restorations of the same photo is best, without the clean one.

The embedded planner chooses a plan from the degraded image alone; on some mixtures (haze + motion
blur + low resolution) the best order changes from photo to photo and nothing in the input tells
which. With ``verify=K`` the planner runs its K best plans on the image and asks this critic to
pick one: test-time evidence, at K plans' tool calls instead of every pipeline's.

The critic scores a final image ``y`` of input ``x`` as ``f([phi(y), phi(y) - phi(x)])``: ``phi``
is the compact part of :func:`restoregraph.planners.features.image_features` (image statistics and
the perception CNN's per-type level probabilities: how much noise, blur, haze... is left), ``f``
a small MLP. It is trained listwise on the pipeline-search data built with ``--leaf-features``
(:mod:`restoregraph.lab.training.critic_train`): for each training image, a softmax over its
pipelines' final images against their z-scored objective scores. Only differences between
candidates of the same input matter, so a score is meaningful only next to its siblings'.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import PlanError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "plan_critic.pt"
ARCH = "plan-critic-v1"


def build_critic(n_in: int, hidden: int = 32) -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def critic_inputs(
    finals: np.ndarray, source: np.ndarray, index: Sequence[int] | None = None
) -> np.ndarray:
    """(K, 2F) raw critic inputs of K final images' features ``finals`` (K, D) of one input
    image with features ``source`` (D,): the final features and their change from the input
    (``index``: the feature entries read, None = all)."""
    f = np.asarray(finals, np.float32)
    g = np.asarray(source, np.float32)[None]
    if index is not None:
        idx = list(index)
        f, g = f[:, idx], g[:, idx]
    return np.concatenate([f, f - g], axis=1)


class Critic:
    """Trained critic weights (CPU, eval mode): an ensemble whose scores are averaged."""

    def __init__(self, blob: dict[str, Any]) -> None:
        import torch

        meta = blob["meta"]
        if meta.get("arch") != ARCH:
            raise PlanError(f"plan critic weights: unknown architecture {meta.get('arch')!r}")
        self.meta = dict(meta)
        self.objective = str(meta.get("objective", "balanced"))
        index = meta.get("feat_index")
        self.feat_index = None if index is None else [int(i) for i in index]
        self.mean = blob["mean"].numpy().astype(np.float32)
        self.std = blob["std"].numpy().astype(np.float32)
        self.nets = []
        for state in blob["members"]:
            net = build_critic(len(self.mean), int(meta["hidden"]))
            net.load_state_dict(state)
            net.eval()
            self.nets.append(net)
        self._torch = torch

    def score(self, finals: np.ndarray, source: np.ndarray) -> np.ndarray:
        """(K,) scores of K final images (features (K, D)) of one input (features (D,)),
        centred over the K: higher is better."""
        torch = self._torch
        x = (critic_inputs(finals, source, self.feat_index) - self.mean) / self.std
        with torch.inference_mode():
            t = torch.from_numpy(x.astype(np.float32))
            out = torch.stack([net(t)[:, 0] for net in self.nets]).mean(0).numpy()
        return (out - out.mean()).astype(np.float64)


def combine_pick(critic: Sequence[float], planner: Sequence[float], prior: float = 0.0) -> int:
    """Index of the candidate to keep: the best critic score, plus ``prior`` x the planner's
    own value, each standardised over the candidates (0: the critic alone decides)."""

    def z(v: Sequence[float]) -> np.ndarray:
        a = np.asarray(v, np.float64)
        sd = a.std()
        return (a - a.mean()) / sd if sd > 0 else np.zeros_like(a)

    total = z(critic) + float(prior) * z(planner)
    return int(np.argmax(total))


def load_critic(path: str | Path | None = None) -> Critic:
    """Load critic weights (a plain ``torch.save`` dict, read with ``weights_only=True``)."""
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise PlanError(
            f"plan critic weights not found: {p} (train them with "
            "`python -m restoregraph.lab.training.critic_train`)"
        )
    return _cached(str(p.resolve()), p.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int) -> Critic:
    import torch

    try:
        return Critic(torch.load(path, map_location="cpu", weights_only=True))
    except PlanError:
        raise
    except Exception as exc:  # corrupt file, wrong shapes
        raise PlanError(f"plan critic weights unreadable: {path} ({exc})") from None


__all__ = [
    "ARCH",
    "DEFAULT_WEIGHTS",
    "Critic",
    "build_critic",
    "combine_pick",
    "critic_inputs",
    "load_critic",
]
