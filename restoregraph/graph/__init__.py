"""The restoration graph: state schema, builder, checkpointer factory, image store."""

from restoregraph.graph.builder import build_graph, compile_graph
from restoregraph.graph.checkpointer import make_checkpointer
from restoregraph.graph.context import RunContext, home_dir
from restoregraph.graph.state import ImageRef, RestoreInput, RestoreOutput, RestoreState
from restoregraph.graph.store import ImageStore

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
