"""The import contract (docs/architecture.md): core <- runtime <- lab, the CLI and web app on top,
no import cycles, lazy heavy imports, and the public names where the docs import them."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = (
    "api",
    "batch",
    "chat",
    "runner",
    "report",
    "graph",
    "nodes",
    "planners",
    "llm",
    "perception",
    "tools",
    "prompts",
    "metrics",
    "degrade",
    "store",
    "imageio",
    "weightfiles",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("restoregraph", cache_dir=None)


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan over module-level and function-level imports (grimp sees both)."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, []):
            if w not in adj:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for m in sorted(adj):
            if m not in index:
                visit(m)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    assert _strongly_connected(graph) == []


def test_runtime_never_imports_the_lab(graph: grimp.ImportGraph) -> None:
    bad = []
    for m in graph.modules:
        top = m.split(".")[1] if "." in m else ""
        if top not in RUNTIME and top != "core":
            continue
        for imported in graph.find_modules_directly_imported_by(m):
            if imported.startswith(("restoregraph.lab", "restoregraph.cli", "restoregraph.web")):
                bad.append(f"{m} -> {imported}")
    assert bad == []


def test_core_imports_nothing_of_the_project_but_core(graph: grimp.ImportGraph) -> None:
    bad = [
        f"{m} -> {i}"
        for m in graph.modules
        if m.startswith("restoregraph.core")
        for i in graph.find_modules_directly_imported_by(m)
        if i.startswith("restoregraph") and not i.startswith("restoregraph.core")
    ]
    assert bad == []


def test_import_contract_holds() -> None:
    """`lint-imports` (import-linter) on the contracts in pyproject.toml."""
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_at_most_three_upward_imports_each_explained() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    config = tomllib.loads(text)["tool"]["importlinter"]
    ignored = [i for c in config["contracts"] for i in c.get("ignore_imports", [])]
    assert len(ignored) <= 3
    lines = text.splitlines()
    for item in ignored:
        at = next(n for n, line in enumerate(lines) if f'"{item}"' in line)
        assert lines[at - 1].strip().startswith("#"), f"{item}: no comment saying why"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("code", ["import restoregraph", "import restoregraph.cli.main"])
def test_heavy_imports_stay_lazy(code: str) -> None:
    loaded = _modules_after(code)
    heavy = {"torch", "gradio", "transformers", "ray", "langgraph", "cv2", "spandrel"}
    assert heavy.isdisjoint(loaded), sorted(heavy & loaded)


def test_public_api_stays_where_the_docs_import_it() -> None:
    names = {
        "restoregraph.graph": [
            "compile_graph",
            "build_graph",
            "RunContext",
            "RestoreState",
            "RestoreInput",
            "RestoreOutput",
            "ImageRef",
            "ImageStore",
            "make_checkpointer",
        ],
        "restoregraph.api": ["restore", "summarise", "as_tool"],
        "restoregraph.runner": ["Runner"],
        "restoregraph.imageio": ["load_image", "save_image"],
        "restoregraph.perception": ["default_perceiver"],
        "restoregraph.tools": ["default_registry", "run_tool", "builtin_registry"],
        "restoregraph.planners": ["get_planner", "register_planner", "Planner", "PlanRequest"],
    }
    for module, attrs in names.items():
        mod = importlib.import_module(module)
        for attr in attrs:
            assert hasattr(mod, attr), f"{module}.{attr}"
    graphs = json.loads((ROOT / "langgraph.json").read_text())["graphs"]
    for spec in graphs.values():
        module, attr = spec.split(":")
        path = ROOT / module.removeprefix("./")
        assert path.is_file(), spec
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        assert hasattr(importlib.import_module(dotted), attr)
