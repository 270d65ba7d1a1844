"""Learned restoration tools: small models trained by the project, loaded through spandrel.

Each entry of ``restoregraph/weights/MANIFEST.json`` with ``"kind": "learned_tool"`` whose file
is present becomes one ToolSpec (``kind="learned"``); the weights are loaded on first use (see
:class:`~restoregraph.tools.learned.model.LearnedModel`), so registering costs no torch import.
What each tool is trained on lives in :mod:`restoregraph.tools.learned.catalog`; training is
``restoregraph train-tool TASK --variant V`` (:mod:`restoregraph.lab.training.tools`).

Tool ids (stable public API): ``denoise.nafnet.{low,mid,high}``, ``dejpeg.nafnet.{mild,severe}``,
``deblur.nafnet.{motion,defocus}``, ``derain.nafnet``, ``dehaze.nafnet``, ``lowlight.nafnet``,
``desnow.nafnet``, ``sr.compact.x2``, the all-in-one ``hybrid.nafnet`` (task ``hybrid``) and,
for real photos, ``deraindrop.nafnet`` and ``denoise.nafnet.real`` (trained on the realistic
synthesis of ``restoregraph.degrade.realistic``, the latter also on real PolyU pairs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restoregraph.tools.learned.model import LearnedModel
from restoregraph.tools.registry import ToolRegistry, ToolSpec

if TYPE_CHECKING:
    from restoregraph.tools.learned.catalog import Variant

WEIGHTS_DIR = Path(__file__).resolve().parent.parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "MANIFEST.json"
LEARNED_KIND = "learned_tool"


def learned_entries(manifest: Path = MANIFEST) -> list[dict[str, Any]]:
    """The manifest entries of learned tools whose weights file is present."""
    try:
        entries = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    return [
        e
        for e in entries
        if isinstance(e, dict)
        and e.get("kind") == LEARNED_KIND
        and (manifest.parent / str(e.get("file", ""))).is_file()
    ]


def _protects_tones(tool_id: str, variants: Mapping[str, Variant]) -> bool:
    variant = variants.get(tool_id)
    return bool(variant is not None and variant.protect_tones)


def learned_specs(manifest: Path = MANIFEST) -> list[ToolSpec]:
    from restoregraph.tools.learned.catalog import VARIANT_BY_ID, VARIANTS

    order = {v.id: i for i, v in enumerate(VARIANTS)}  # catalog order, not training order
    entries = sorted(
        learned_entries(manifest), key=lambda e: order.get(str(e.get("id")), len(order))
    )
    specs = []
    for e in entries:
        specs.append(
            ToolSpec(
                id=str(e["id"]),
                task=str(e["task"]),
                description=str(e.get("description", "")),
                run=LearnedModel(
                    manifest.parent / e["file"],
                    sha256=e.get("sha256"),
                    protect_tones=_protects_tones(str(e["id"]), VARIANT_BY_ID),
                ),
                severity=tuple(int(s) for s in e.get("severity", (1, 2, 3))),
                cost=float(e.get("cost", 2.0)),
                scale=int(e.get("scale", 1)),
                kind="learned",
                source=f"weights/{e['file']}",
            )
        )
    return specs


def register_learned(reg: ToolRegistry) -> None:
    """Register every learned tool whose weights ship with the package."""
    for spec in learned_specs():
        reg.register(spec)


__all__ = ["LearnedModel", "learned_entries", "learned_specs", "register_learned"]
