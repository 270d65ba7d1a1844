"""Where a run's state lives: the content-addressed image store and the LangGraph checkpointer."""

from restoregraph.store.checkpointer import make_checkpointer
from restoregraph.store.images import ImageStore

__all__ = ["ImageStore", "make_checkpointer"]
