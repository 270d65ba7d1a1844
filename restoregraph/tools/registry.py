"""The tool registry: one explicit place where every restoration tool is declared.

Tool ids are a stable public API (planners are trained on them): ``<task>.<model>[.<variant>]``,
for example ``denoise.nlmeans`` or ``denoise.nafnet.high``. Duplicate ids are rejected.
Third-party packages add tools through the Python entry point group ``restoregraph.tools``:
each entry point names a callable ``register(registry: ToolRegistry) -> None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import numpy as np

from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import TASKS

ENTRY_POINT_GROUP = "restoregraph.tools"
TOOL_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9][a-z0-9_]*){1,2}$")

ToolFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ToolSpec:
    """A restoration tool: float32 RGB in [0, 1] in, float32 RGB in [0, 1] out.

    ``scale`` is the output/input size ratio (1 for everything but super-resolution).
    ``severity`` lists the levels (1 low, 2 mid, 3 high) the tool is meant for.
    ``cost`` is a rough seconds-per-megapixel hint on a 2-core CPU.
    """

    id: str
    task: str
    description: str
    run: ToolFn = field(repr=False, compare=False)
    severity: tuple[int, ...] = (1, 2, 3)
    cost: float = 1.0
    scale: int = 1
    kind: str = "classical"  # classical | learned | user
    source: str = "builtin"

    def __post_init__(self) -> None:
        if not TOOL_ID_RE.match(self.id):
            raise ToolError(
                f"invalid tool id {self.id!r}: expected '<task>.<model>[.<variant>]' "
                "in lower case (e.g. 'denoise.nlmeans')"
            )
        if self.task not in TASKS:
            raise ToolError(f"tool {self.id!r}: unknown task {self.task!r}; known: {TASKS}")
        if self.id.split(".")[0] != self.task:
            raise ToolError(f"tool {self.id!r}: id must start with its task {self.task!r}")
        if not callable(self.run):
            raise ToolError(f"tool {self.id!r}: run is not callable")

    @property
    def model(self) -> str:
        """The part of the id after the task (what plans name as ``<model>``)."""
        return self.id.split(".", 1)[1]


class ToolRegistry:
    """An ordered mapping of tool id -> ToolSpec that refuses duplicates."""

    def __init__(self, specs: Iterable[ToolSpec] = ()) -> None:
        self._tools: dict[str, ToolSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ToolSpec) -> ToolSpec:
        if spec.id in self._tools:
            raise ToolError(f"duplicate tool id {spec.id!r}")
        self._tools[spec.id] = spec
        return spec

    def get(self, tool_id: str) -> ToolSpec:
        try:
            return self._tools[tool_id]
        except KeyError:
            raise ToolError(f"unknown tool id {tool_id!r}") from None

    def __contains__(self, tool_id: object) -> bool:
        return tool_id in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def ids(self) -> list[str]:
        return list(self._tools)

    def for_task(self, task: str) -> list[ToolSpec]:
        return [s for s in self._tools.values() if s.task == task]

    def tasks(self) -> list[str]:
        return sorted({s.task for s in self._tools.values()})

    def subset(self, ids: Iterable[str]) -> ToolRegistry:
        return ToolRegistry(self.get(i) for i in ids)

    def load_entry_points(self) -> list[str]:
        """Run every ``restoregraph.tools`` entry point; return the names that failed."""
        failed: list[str] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()(self)
            except Exception:  # a broken plugin must not break the product
                failed.append(ep.name)
        return failed
