"""The graph as LangGraph's own tools use it (Studio, `langgraph dev`, a parent graph): JSON
schemas of its input, output and context; invoked without a context or with a partial dict; the
top-level API (``restoregraph.restore``, ``restoregraph.as_tool``) and the tool's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from restoregraph.core.errors import RestoreGraphError
from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture
from restoregraph.graph import compile_graph, make_checkpointer
from restoregraph.imageio import save_image
from restoregraph.nodes.resources import run_context


@pytest.fixture
def noisy(tmp_path: Path, astronaut_192: np.ndarray) -> Path:
    """A small noisy photo (a 96-pixel crop of skimage's astronaut)."""
    img, _ = apply_mixture(astronaut_192[48:144, 48:144], [("noise", 2)], seed=0)
    return save_image(img, tmp_path / "in.png")


# --- JSON schemas (Studio's input form) ----------------------------------------------------


def test_input_jsonschema_shows_the_input_fields() -> None:
    schema = compile_graph().get_input_jsonschema()
    props = schema["properties"]
    assert set(props) == {"image", "instruction"}
    assert schema["required"] == ["image"]
    assert props["image"]["type"] == "string" and props["instruction"]["type"] == "string"
    assert "path" in props["image"]["description"].lower()
    assert props["instruction"]["description"]


def test_output_jsonschema_shows_the_outputs() -> None:
    schema = compile_graph().get_output_jsonschema()
    props = schema["properties"]
    assert set(props) == {"current", "history", "plan_text", "stop_reason", "perception"}
    assert all(p.get("description") for p in props.values()), props
    step = schema["$defs"]["StepRecord"]["properties"]
    assert step["status"]["enum"] == ["accepted", "rolled_back", "failed"]
    assert set(schema["$defs"]["ImageRef"]["properties"]) == {"uri", "sha256", "shape"}


def test_context_jsonschema_lists_the_settings() -> None:
    schema = compile_graph().get_context_jsonschema()
    assert schema is not None
    props = schema["properties"]
    assert {"planner", "max_steps", "mode", "objective", "store_dir"} <= set(props)
    assert props["mode"]["enum"] == ["plan", "stepwise"]
    assert props["max_steps"]["default"] == RunContext().max_steps
    assert not schema.get("required")  # every setting has a default: an empty form is valid


# --- the run context ------------------------------------------------------------------------


def test_run_context_defaults_dicts_and_errors() -> None:
    assert run_context(SimpleNamespace(context=None)) == RunContext()  # type: ignore[arg-type]
    ctx = RunContext(planner="fixed")
    assert run_context(SimpleNamespace(context=ctx)) is ctx  # type: ignore[arg-type]
    built = run_context(
        SimpleNamespace(context={"planner": "fixed", "forbidden_tasks": ["denoise"]})  # type: ignore[arg-type]
    )
    assert built == RunContext(planner="fixed", forbidden_tasks=("denoise",))
    with pytest.raises(RestoreGraphError, match="unknown run setting"):
        run_context(SimpleNamespace(context={"max_step": 2}))  # type: ignore[arg-type]
    with pytest.raises(RestoreGraphError, match="max_steps"):
        run_context(SimpleNamespace(context={"max_steps": 0}))  # type: ignore[arg-type]
    with pytest.raises(RestoreGraphError, match="RunContext or a dict"):
        run_context(SimpleNamespace(context=42))  # type: ignore[arg-type]


def _invoke(home: Path, noisy: Path, thread: str, **kwargs: Any) -> dict[str, Any]:
    graph = compile_graph(checkpointer=make_checkpointer(home / "checkpoints.sqlite"))
    config: Any = {"configurable": {"thread_id": thread}}
    out: dict[str, Any] = graph.invoke({"image": str(noisy)}, config, **kwargs)
    saved = graph.get_state(config)
    assert saved.next == () and saved.values["image"] == str(noisy)  # checkpointed, finished
    return out


def test_compiled_graph_runs_without_a_context(home: Path, noisy: Path) -> None:
    out = _invoke(home, noisy, "no-context")
    assert set(out) == {"current", "history", "plan_text", "stop_reason", "perception"}
    assert out["history"] and out["stop_reason"]
    assert len(out["history"]) <= RunContext().max_steps
    # RunContext()'s store: $RESTOREGRAPH_HOME/store
    assert Path(out["current"]["uri"]).is_relative_to(home / "store")
    assert Path(out["current"]["uri"]).exists()


def test_compiled_graph_takes_a_partial_dict_context(home: Path, noisy: Path) -> None:
    out = _invoke(home, noisy, "dict-context", context={"planner": "fixed", "max_steps": 2})
    assert 1 <= len(out["history"]) <= 2
    assert out["history"][0]["task"] == "denoise"
    assert Path(out["current"]["uri"]).is_relative_to(home / "store")


# --- the top-level API and the LangChain tool -----------------------------------------------


def test_top_level_api_resolves_lazily() -> None:
    import restoregraph
    from restoregraph import api

    assert restoregraph.restore is api.restore
    assert restoregraph.as_tool is api.as_tool
    assert restoregraph.summarise is api.summarise
    assert {"restore", "as_tool"} <= set(dir(restoregraph))
    with pytest.raises(AttributeError):
        restoregraph.no_such_name  # noqa: B018
    code = (
        "import sys, restoregraph\n"
        "heavy = {'torch', 'langgraph', 'langchain_core', 'gradio'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert 'restoregraph.api' not in sys.modules\n"
        "from restoregraph import restore\n"
        "assert 'restoregraph.api' in sys.modules and callable(restore)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_tool_args_have_descriptions_and_a_flat_description(home: Path) -> None:
    from restoregraph import as_tool

    tool = as_tool(home=home, max_steps=2)
    assert tool.name == "restore_image"
    assert set(tool.args) == {"image_path", "instruction"}
    assert all(arg.get("description") for arg in tool.args.values()), tool.args
    assert tool.args["instruction"].get("default") == ""
    assert "\n" not in tool.description and "  " not in tool.description
    assert tool.description.startswith("Restore a degraded photo")
    with pytest.raises(TypeError):
        as_tool(home=home, max_step=2)  # a misspelt setting fails when the tool is made
    with pytest.raises(RestoreGraphError):
        as_tool(home=home, max_steps=0)


def test_tool_errors_come_back_as_messages(tmp_path: Path, home: Path) -> None:
    from restoregraph import as_tool

    tool = as_tool(home=home, max_steps=2)
    missing = tmp_path / "nope.png"
    msg = tool.invoke({"image_path": str(missing)})
    assert isinstance(msg, str) and "nope.png" in msg and "restore_image failed" in msg
    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n")
    msg = tool.invoke({"image_path": str(text)})
    assert isinstance(msg, str) and "not an image" in msg
    # as a model's tool call, the error is a ToolMessage with status "error"
    args = {"image_path": str(missing)}
    reply = tool.invoke({"type": "tool_call", "id": "c1", "name": "restore_image", "args": args})
    assert reply.status == "error" and "restore_image failed" in reply.content
    assert not list(tmp_path.glob("*.restored*"))
