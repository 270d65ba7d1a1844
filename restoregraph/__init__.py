"""RestoreGraph: restore photos hit by several degradations at once.

Images inside the library are float32 RGB arrays of shape (H, W, 3) with values in [0, 1].

The front door, loaded on first use (``import restoregraph`` loads neither torch nor
LangGraph)::

    import restoregraph

    result = restoregraph.restore("photo.jpg", "photo.restored.png", planner="fixed")
    tool = restoregraph.as_tool()  # a LangChain tool for a larger agent

Both live in ``restoregraph.api``; ``restoregraph.summarise`` gives a run's one-paragraph
summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restoregraph.core.errors import (
    InputError,
    MetricUnavailable,
    PlanError,
    RestoreGraphError,
    ToolError,
)

if TYPE_CHECKING:
    from restoregraph.api import as_tool, restore, summarise

__version__ = "0.1.0"

# Names resolved from restoregraph.api when first used (it imports the runner, so LangGraph).
_LAZY = ("as_tool", "restore", "summarise")

__all__ = [
    "InputError",
    "MetricUnavailable",
    "PlanError",
    "RestoreGraphError",
    "ToolError",
    "__version__",
    "as_tool",
    "restore",
    "summarise",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from restoregraph import api

        value = getattr(api, name)
        globals()[name] = value  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
