"""User tools: weights files a user registered with ``restoregraph tools add``.

``restoregraph tools add --task derain --weights NAFNet-Rain.pth`` loads the file safely
(:func:`restoregraph.tools.loading.load_model`: tensors only, spandrel detects the architecture),
copies it into ``$RESTOREGRAPH_HOME/weights/`` (so moving or deleting the original does not
break the tool) and records it in ``$RESTOREGRAPH_HOME/tools.json``. :func:`register_user_tools`
(called by ``default_registry()``) registers every recorded tool with ``kind="user"``, so it shows
in ``restoregraph tools list`` and planners can choose it. Nothing is recorded when the file does
not load.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError, ToolError
from restoregraph.core.tasks import TASKS
from restoregraph.tools.registry import TOOL_ID_RE, ToolRegistry, ToolSpec

CONFIG_NAME = "tools.json"
WEIGHTS_SUBDIR = "weights"


def _home(home: str | os.PathLike[str] | None) -> Path:
    if home is not None:
        return Path(home)
    from restoregraph.core.settings import home_dir

    return home_dir()


def config_path(home: str | os.PathLike[str] | None = None) -> Path:
    return _home(home) / CONFIG_NAME


def read_user_tools(home: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The recorded user tools (an unreadable config counts as none)."""
    path = config_path(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []
    tools = data.get("tools", []) if isinstance(data, dict) else []
    return [t for t in tools if isinstance(t, dict) and "id" in t and "file" in t]


def _write_user_tools(tools: list[dict[str, Any]], home: str | os.PathLike[str] | None) -> None:
    path = config_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"tools": tools}, indent=2) + "\n")
    os.replace(tmp, path)


def user_specs(home: str | os.PathLike[str] | None = None) -> list[ToolSpec]:
    from restoregraph.tools.learned.model import LearnedModel

    specs = []
    for t in read_user_tools(home):
        path = Path(t["file"])
        if not path.is_file():
            continue
        try:
            specs.append(
                ToolSpec(
                    id=str(t["id"]),
                    task=str(t["task"]),
                    description=str(t.get("description", "user weights")),
                    run=LearnedModel(path, sha256=t.get("sha256"), backend="torch"),
                    severity=tuple(int(s) for s in t.get("severity", (1, 2, 3))),
                    cost=float(t.get("cost", 5.0)),
                    scale=int(t.get("scale", 1)),
                    kind="user",
                    source=str(path),
                )
            )
        except (ToolError, KeyError, TypeError, ValueError):
            continue  # a hand-edited broken entry must not break the product
    return specs


def register_user_tools(reg: ToolRegistry, home: str | os.PathLike[str] | None = None) -> None:
    """Register every recorded user tool whose id is still free and whose file exists."""
    for spec in user_specs(home):
        if spec.id not in reg:
            reg.register(spec)


def add_user_tool(
    task: str,
    weights: str | os.PathLike[str],
    tool_id: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Validate ``weights`` (load it), copy it into the home folder, record it; return the entry.

    Raises InputError (unknown task, bad or taken id) or ToolError (file missing, corrupted,
    holding code, unsupported architecture, wrong scale for the task); nothing is recorded then.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    from restoregraph.tools.loading import load_model
    from restoregraph.weightfiles import sha256_of

    src = Path(weights)
    model = load_model(src)
    arch = model.architecture.id
    scale = int(model.scale)
    if task == "sr" and scale == 1:
        raise ToolError(f"{src.name}: a {arch} model with scale 1 cannot be an 'sr' tool")
    if task != "sr" and scale != 1:
        raise ToolError(
            f"{src.name}: a x{scale} {arch} model is super-resolution; add it with --task sr"
        )
    if tool_id is None:
        model_name = "".join(c for c in arch.lower() if c.isalnum() or c == "_") or "model"
        tool_id = f"{task}.{model_name}" + (f".x{scale}" if scale != 1 else "")
    if not TOOL_ID_RE.match(tool_id) or tool_id.split(".")[0] != task:
        raise InputError(
            f"invalid tool id {tool_id!r}: use '{task}.<model>[.<variant>]' in lower case"
        )
    from restoregraph.tools.builtin import builtin_registry

    taken = set(builtin_registry().ids()) | {t["id"] for t in read_user_tools(home)}
    if tool_id in taken:
        raise InputError(f"tool id {tool_id!r} is already registered; choose another with --id")

    dest_dir = _home(home) / WEIGHTS_SUBDIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{tool_id}{src.suffix.lower() or '.pth'}"
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    params = sum(p.numel() for p in model.model.parameters())
    entry: dict[str, Any] = {
        "id": tool_id,
        "task": task,
        "file": str(dest.resolve()),
        "original": str(src.resolve()),
        "sha256": sha256_of(dest),
        "bytes": dest.stat().st_size,
        "architecture": arch,
        "params": int(params),
        "scale": scale,
        "severity": [1, 2, 3],
        "cost": 5.0,
        "description": description
        or f"user weights: {arch} ({params:,} parameters) from {src.name}",
        "added": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_user_tools([*read_user_tools(home), entry], home)
    return entry


def remove_user_tool(tool_id: str, home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Forget a user tool and delete the copy of its weights made by ``tools add``."""
    tools = read_user_tools(home)
    match = [t for t in tools if t["id"] == tool_id]
    if not match:
        known = ", ".join(t["id"] for t in tools) or "none"
        raise InputError(f"{tool_id!r} is not a user tool (user tools: {known})")
    _write_user_tools([t for t in tools if t["id"] != tool_id], home)
    copy = Path(match[0]["file"])
    weights_dir = (_home(home) / WEIGHTS_SUBDIR).resolve()
    if copy.parent.resolve() == weights_dir and copy.is_file():
        copy.unlink()
    return match[0]
