"""Restoration tools: the registry and the built-in tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restoregraph.tools.builtin import builtin_registry
from restoregraph.tools.registry import LazyTool, ToolFn, ToolRegistry, ToolSpec

if TYPE_CHECKING:
    from restoregraph.tools.run import run_tool

_DEFAULT: ToolRegistry | None = None


def default_registry() -> ToolRegistry:
    """The process-wide registry: built-ins, user tools, and entry-point plugins (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        reg = builtin_registry()
        try:
            from restoregraph.tools.user import register_user_tools
        except ImportError:
            pass
        else:
            register_user_tools(reg)
        reg.load_entry_points()
        _DEFAULT = reg
    return _DEFAULT


def reset_default_registry() -> None:
    global _DEFAULT
    _DEFAULT = None


def __getattr__(name: str) -> Any:
    """``run_tool``, imported on first use (it loads the image I/O: PIL), so listing the tools
    does not."""
    if name == "run_tool":
        from restoregraph.tools.run import run_tool

        return run_tool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LazyTool",
    "ToolFn",
    "ToolRegistry",
    "ToolSpec",
    "builtin_registry",
    "default_registry",
    "reset_default_registry",
    "run_tool",
]
