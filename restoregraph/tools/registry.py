"""The tool registry: one explicit place where every restoration tool is declared.

Tool ids are a stable public API (planners are trained on them): ``<task>.<model>[.<variant>]``,
for example ``denoise.nlmeans`` or ``denoise.nafnet.high``. Duplicate ids are rejected.
Third-party packages add tools through the Python entry point group ``restoregraph.tools``:
each entry point names a callable ``register(registry: ToolRegistry) -> None``.

Declaring a tool imports nothing of its implementation: a spec's ``run`` may be a
:class:`LazyTool` (``"module:function"``), imported when the tool is first run, so listing the
toolbox (``restoregraph tools list``) loads neither OpenCV, scikit-image, torch nor spandrel.
"""

from __future__ import annotations

import importlib
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


class LazyTool:
    """A tool function named by ``"module:function"`` and imported when the tool is run.

    The name is looked up on every call (a dictionary lookup once the module is loaded), so a
    patched module function is the one used. A module that does not import (a package not
    installed) raises its ``ImportError`` at call time, which ``run_tool`` reports as the tool
    being unavailable.
    """

    def __init__(self, target: str) -> None:
        module, sep, attr = target.partition(":")
        if not sep or not module or not attr:
            raise ToolError(f"invalid tool target {target!r}: expected 'module:function'")
        self.target = target
        self.module = module
        self.attr = attr

    def resolve(self) -> ToolFn:
        """Import the module and return the function; ImportError when either is missing."""
        fn: ToolFn | None = getattr(importlib.import_module(self.module), self.attr, None)
        if not callable(fn):
            raise ImportError(f"{self.module} has no tool function {self.attr!r}")
        return fn

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.resolve()(image)

    def __repr__(self) -> str:
        return f"LazyTool({self.target!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyTool) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)


@dataclass(frozen=True)
class ToolSpec:
    """A restoration tool: float32 RGB in [0, 1] in, float32 RGB in [0, 1] out.

    ``scale`` is the output/input size ratio (1 for everything but super-resolution).
    ``severity`` lists the levels (1 low, 2 mid, 3 high) the tool is meant for.
    ``cost`` is a rough seconds-per-megapixel hint on a 2-core CPU.
    ``run`` is any callable; a :class:`LazyTool` (``LazyTool("module:function")``) imports the
    implementation only when the tool is first run.
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
