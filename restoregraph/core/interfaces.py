"""The seams a library user can plug objects into (``RunContext.registry``, ``planner_obj``,
``perceiver``), as structural protocols the core can name without importing the runtime.

The runtime's own protocols are richer and satisfy these: ``restoregraph.tools.ToolRegistry``,
``restoregraph.planners.Planner`` (``plan(PlanRequest) -> Plan``) and
``restoregraph.perception.base.Perceiver`` (``perceive(image) -> PerceptionResult``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Toolbox(Protocol):
    """A tool registry: stable tool ids, a subset by ids, tools per task."""

    def ids(self) -> list[str]: ...

    def tasks(self) -> list[str]: ...

    def subset(self, ids: Iterable[str]) -> Any: ...


@runtime_checkable
class PlannerLike(Protocol):
    """Turns a plan request into a plan (``restoregraph.planners.base``)."""

    name: str

    def plan(self, request: Any) -> Any: ...


@runtime_checkable
class PerceiverLike(Protocol):
    """Says which degradations an image shows, and how severe (``perception.base``)."""

    def perceive(self, image: Any) -> Any: ...


__all__ = ["PerceiverLike", "PlannerLike", "Toolbox"]
