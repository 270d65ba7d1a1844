"""RestoreGraph: restore photos hit by several degradations at once.

Images inside the library are float32 RGB arrays of shape (H, W, 3) with values in [0, 1].
"""

from restoregraph.core.errors import (
    InputError,
    MetricUnavailable,
    PlanError,
    RestoreGraphError,
    ToolError,
)

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "MetricUnavailable",
    "PlanError",
    "RestoreGraphError",
    "ToolError",
    "__version__",
]
