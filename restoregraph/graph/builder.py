"""Build the restoration graph: perception -> planning -> execution -> reflection -> rescheduling
(-> approval between planning and execution when ``RunContext.approve`` asks for a person)."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from restoregraph.core.settings import RunContext
from restoregraph.core.state import RestoreInput, RestoreOutput, RestoreState
from restoregraph.nodes.approval import approval
from restoregraph.nodes.execution import execution
from restoregraph.nodes.perception import perception
from restoregraph.nodes.planning import planning
from restoregraph.nodes.reflection import reflection
from restoregraph.nodes.rescheduling import rescheduling

NODES = ("perception", "planning", "approval", "execution", "reflection", "rescheduling")


def build_graph() -> StateGraph[Any, Any, Any, Any]:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        RestoreState,
        context_schema=RunContext,
        input_schema=RestoreInput,
        output_schema=RestoreOutput,
    )
    builder.add_node("perception", perception)
    builder.add_node("planning", planning)  # routes: approval | execution | END
    builder.add_node("approval", approval)  # interrupt(); routes: execution | END
    builder.add_node("execution", execution)
    builder.add_node("reflection", reflection)
    builder.add_node("rescheduling", rescheduling)  # routes: execution | planning | END
    builder.add_edge(START, "perception")
    builder.add_edge("perception", "planning")
    builder.add_edge("execution", "reflection")
    builder.add_edge("reflection", "rescheduling")
    return builder


# Supersteps one run may need: perception, then per step at most planning, execution,
# reflection and rescheduling, and a last planning round that stops, for the largest step
# budget RunContext allows (100). (The runner used 400, which a 100-step run exceeds; the
# compiled graph gets the same bound, so a library run cannot loop for LangGraph's 10 007.)
# An approval pauses the run (interrupt), so one invocation runs at most one approval node.
MAX_STEPS_LIMIT: int = RunContext.bounds("max_steps")[1]
RECURSION_LIMIT = 4 * MAX_STEPS_LIMIT + 50


def compile_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled graph, with a recursion limit that fits any allowed step budget."""
    compiled = build_graph().compile(checkpointer=checkpointer, name="restoregraph")
    return compiled.with_config(recursion_limit=RECURSION_LIMIT)


# For `langgraph dev` (langgraph.json): compiled without its own checkpointer.
graph = compile_graph()
