"""The shipped perception weights and their calibration file (no torch needed to read them)."""

from __future__ import annotations

import json
from pathlib import Path

from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import PERCEPTION_TYPES

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# The first perception CNN (nine types, the project's own synthesis): the embedded planner and
# the plan critic read its features (restoregraph.planners.features), so it stays shipped.
FEATURE_WEIGHTS = WEIGHTS_DIR / "perception_cnn.pt"
# The perceiver's weights (what the perception node runs).
DEFAULT_WEIGHTS = FEATURE_WEIGHTS


def weights_missing(path: Path) -> ToolError:
    """The error for perception weights that are not there."""
    return ToolError(
        f"perception weights not found: {path} (train them with "
        "`python -m restoregraph.lab.training.perception`, see restoregraph/weights/MANIFEST.json)"
    )


def thresholds_path(weights_path: Path) -> Path:
    """``perception_cnn.pt`` -> ``perception_cnn.thresholds.json`` (calibrated presence
    thresholds, written by ``python -m restoregraph.lab.training.perception_calibrate``)."""
    return weights_path.with_name(weights_path.stem + ".thresholds.json")


def load_thresholds(weights_path: Path) -> dict[str, float]:
    """Per-type presence thresholds stored next to the weights ({} when there are none)."""
    path = thresholds_path(weights_path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = data["thresholds"]
        out = {str(t): float(v) for t, v in raw.items() if t in PERCEPTION_TYPES}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ToolError(f"perception thresholds unreadable: {path} ({exc})") from None
    if not all(0.0 < v < 1.0 for v in out.values()):
        raise ToolError(f"perception thresholds must lie in (0, 1): {path}")
    return out


def uses_global_view(weights_path: Path) -> bool:
    """Whether the calibration next to the weights says to add the global view."""
    path = thresholds_path(weights_path)
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("global_view", False))
    except (ValueError, AttributeError):
        return False


__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_WEIGHTS",
    "WEIGHTS_DIR",
    "load_thresholds",
    "thresholds_path",
    "uses_global_view",
    "weights_missing",
]
