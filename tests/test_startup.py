"""Start-up stays light: ``restoregraph --help`` and ``restoregraph tools list`` import no heavy
framework (the tools are declared without importing their implementations), and the lazily
declared toolbox is the same as the one built by importing every implementation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from restoregraph.cli.errors import run_cli
from restoregraph.core.errors import ToolError
from restoregraph.tools import LazyTool, ToolRegistry, ToolSpec, builtin_registry, run_tool
from restoregraph.tools.classical import classical_specs, denoise

HEAVY = ("torch", "spandrel", "pyoidn", "skimage", "cv2")


def _cli(args: list[str], home: Path) -> tuple[str, list[str]]:
    """Run ``restoregraph.cli.main`` with ``args`` in a fresh interpreter; (stdout, the heavy
    modules in ``sys.modules`` at exit)."""
    code = (
        "import json, sys\n"
        "from restoregraph.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
    )
    env = {**os.environ, "RESTOREGRAPH_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, json.loads(proc.stderr.strip().splitlines()[-1])


def _full_registry() -> ToolRegistry:
    """The built-in toolbox with every implementation imported (plus any installed plugins,
    which ``tools list`` shows too)."""
    reg = builtin_registry()
    for spec in reg:
        if isinstance(spec.run, LazyTool):
            assert callable(spec.run.resolve()), spec.id
    reg.load_entry_points()
    return reg


def _rows(reg: ToolRegistry, task: str | None = None) -> list[dict[str, object]]:
    return [
        {
            "id": s.id,
            "task": s.task,
            "kind": s.kind,
            "severity": list(s.severity),
            "cost": s.cost,
            "scale": s.scale,
            "description": s.description,
        }
        for s in reg
        if task is None or s.task == task
    ]


@pytest.mark.parametrize("task", [None, "denoise"])
def test_tools_list_json_imports_nothing_heavy_and_lists_the_full_toolbox(
    tmp_path: Path, task: str | None
) -> None:
    args = ["tools", "list", "--json"] + (["--task", task] if task else [])
    out, heavy = _cli(args, tmp_path / "home")
    assert heavy == []
    assert json.loads(out) == _rows(_full_registry(), task)


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    out, heavy = _cli(["--help"], tmp_path / "home")
    assert "tools" in out
    assert heavy == []


# ------------------------------------------------------------------- lazy tool functions


def test_a_lazy_tool_imports_its_function_when_run_and_sees_patches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = ToolSpec(
        "sr.lazy.x2", "sr", "d", run=LazyTool("restoregraph.tools.classical.sr:bicubic_x2"), scale=2
    )
    img = np.full((8, 8, 3), 0.5, np.float32)
    assert run_tool(spec, img).shape == (16, 16, 3)
    from restoregraph.tools.classical import sr

    monkeypatch.setattr(sr, "bicubic_x2", lambda image: np.zeros((16, 16, 3), np.float32))
    assert not run_tool(spec, img).any()
    with pytest.raises(ToolError, match="module:function"):
        LazyTool("no_colon_here")


def test_a_missing_dependency_fails_at_call_time_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = ToolSpec("denoise.ghost", "denoise", "d", run=LazyTool("restoregraph_no_such_pkg:run"))
    reg = ToolRegistry([spec])  # declaring it imports nothing, so it registers
    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(
        ToolError, match=r"^denoise\.ghost: unavailable: .*restoregraph_no_such_pkg"
    ):
        run_tool(reg.get("denoise.ghost"), img)
    assert run_cli(lambda **_: run_tool(spec, img)) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: denoise.ghost: unavailable:") and err.count("\n") == 1


def test_an_installed_but_broken_pyoidn_fails_when_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(denoise, "oidn_available", lambda: True)
    spec = {s.id: s for s in classical_specs()}["denoise.oidn"]

    def broken() -> None:
        raise OSError("libOpenImageDenoise.so: cannot open shared object file")

    monkeypatch.setattr(denoise, "_pyoidn", broken)
    with pytest.raises(ToolError, match=r"^denoise\.oidn: unavailable: pyoidn does not load: OSE"):
        run_tool(spec, np.zeros((8, 8, 3), np.float32))


def test_console_script_fast_exit_keeps_output_and_exit_codes(tmp_path: Path) -> None:
    """The console script leaves short commands with ``os._exit`` after flushing: what they
    print and write arrives, and their exit codes are the documented ones."""
    from PIL import Image

    env = {**os.environ, "RESTOREGRAPH_HOME": str(tmp_path / "home")}
    env.pop("RESTOREGRAPH_NO_FAST_EXIT", None)
    run = [sys.executable, "-m", "restoregraph"]
    listed = subprocess.run(
        [*run, "tools", "list", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert any(t["id"] == "denoise.oidn" for t in json.loads(listed.stdout))
    missing = subprocess.run(
        [*run, "restore", str(tmp_path / "nope.png")], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 2 and "error:" in missing.stderr
    src = tmp_path / "in.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(src)
    (tmp_path / "out.png").write_bytes(b"mine")
    kept = subprocess.run(
        [*run, "restore", str(src), "-o", str(tmp_path / "out.png")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert kept.returncode == 3 and (tmp_path / "out.png").read_bytes() == b"mine"
    timings = tmp_path / "timings.json"  # written by an atexit handler, which still runs
    done = subprocess.run(
        [*run, "restore", str(src), "-o", str(tmp_path / "new.png"), "--planner", "fixed"],
        capture_output=True,
        text=True,
        env={**env, "RESTOREGRAPH_TIMINGS": str(timings)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert Image.open(tmp_path / "new.png").size == (64, 64)
    assert "perception" in json.loads(timings.read_text())["wall"]
    history = subprocess.run([*run, "runs"], capture_output=True, text=True, env=env)
    assert history.returncode == 0 and "in" in history.stdout
