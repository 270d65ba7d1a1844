"""Writing trained weights and their manifest entries (one place for every trainer).

``MANIFEST.json`` beside the weights is a JSON list of entries sorted by ``id``
(``restoregraph/weights/README.md``). Trainers of tools, perception, planners and LLM adapters
finish at different times, sometimes together: :func:`update_manifest` re-reads the file under
an exclusive lock and replaces it atomically, so no entry is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (no partial file)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def update_manifest(manifest: str | os.PathLike[str], entry: dict[str, Any]) -> None:
    """Insert or replace (by ``id``) one entry of a weights manifest, keeping it sorted by id."""
    import fcntl

    path = Path(manifest)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries: list[dict[str, Any]] = []
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise ValueError(f"{path}: the manifest must be a JSON list")
            entries = [e for e in data if e.get("id") != entry["id"]]
        entries.append(entry)
        entries.sort(key=lambda e: str(e.get("id")))
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
