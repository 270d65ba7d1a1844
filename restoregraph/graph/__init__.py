"""The restoration graph: the builder, and the public names a library user imports from here
(the state schema and run settings live in ``restoregraph.core``, the image store and the
checkpointer factory in ``restoregraph.store``).

The builder is loaded lazily: it imports the nodes, and with them LangGraph and the planners.
"""

from typing import Any

from restoregraph.core.settings import RunContext, home_dir
from restoregraph.core.state import ImageRef, RestoreInput, RestoreOutput, RestoreState
from restoregraph.store.checkpointer import make_checkpointer
from restoregraph.store.images import ImageStore


def __getattr__(name: str) -> Any:
    if name in ("build_graph", "compile_graph"):
        from restoregraph.graph import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'restoregraph.graph' has no attribute {name!r}")


__all__ = [
    "ImageRef",
    "ImageStore",
    "RestoreInput",
    "RestoreOutput",
    "RestoreState",
    "RunContext",
    "build_graph",
    "compile_graph",
    "home_dir",
    "make_checkpointer",
]
