"""The built-in toolbox: the classical tools, then the learned ones whose weights ship."""

from __future__ import annotations

from restoregraph.tools.registry import ToolRegistry


def builtin_registry() -> ToolRegistry:
    """A fresh registry with every built-in tool (classical, then learned where weights ship)."""
    from restoregraph.tools.classical import register_classical

    reg = ToolRegistry()
    register_classical(reg)
    try:
        from restoregraph.tools.learned import register_learned
    except ImportError:
        pass
    else:
        register_learned(reg)
    return reg


__all__ = ["builtin_registry"]
