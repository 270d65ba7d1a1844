"""A larger LangGraph agent that uses RestoreGraph twice: as a LangChain tool, and as a
subgraph with its own narrow input/output (the parent keeps its own state, no duplicated
history).

    python examples/parent_agent.py photo.png
"""

from __future__ import annotations

import sys
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

from restoregraph.api import as_tool
from restoregraph.graph import RunContext, compile_graph


class AlbumState(TypedDict, total=False):
    photo: str
    restored_uri: str
    caption: str


restoration = compile_graph()  # the parent's checkpointer (if any) is used for the subgraph


def restore_photo(state: AlbumState) -> AlbumState:
    out = restoration.invoke({"image": state["photo"]}, context=RunContext(max_steps=6))
    return {"restored_uri": out["current"]["uri"]}


def write_caption(state: AlbumState) -> AlbumState:
    return {"caption": f"restored copy at {state['restored_uri']}"}


parent = StateGraph(AlbumState)
parent.add_node("restore_photo", restore_photo)
parent.add_node("write_caption", write_caption)
parent.add_edge(START, "restore_photo")
parent.add_edge("restore_photo", "write_caption")
parent.add_edge("write_caption", END)
album = parent.compile()

if __name__ == "__main__":
    print(album.invoke({"photo": sys.argv[1]})["caption"])
    tool = as_tool(max_steps=6)  # the same agent as a LangChain tool for LLM agents
    print(tool.invoke({"image_path": sys.argv[1]})["summary"])
