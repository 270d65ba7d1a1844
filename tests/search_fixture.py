"""A tiny pipeline-search data directory in the shared format, built for tests.

Real tools on real pixels: small skimage crops are degraded with ``restoregraph.degrade``, every
pipeline (every order x every tool of each needed task) is run with the oracle's prefix-tree
runner, and every node and final image is scored against the clean crop (PSNR and SSIM only,
for speed). The layout is what ``restoregraph data build`` writes: ``manifest.json``,
``samples.jsonl`` and node images for the root and the best and worst pipelines.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.tasks import TASK_FOR_DEGRADATION
from restoregraph.degrade import apply_mixture
from restoregraph.imageio import as_float_image, save_image
from restoregraph.metrics import balanced_scores, compute

FIXTURE_TOOLS: dict[str, list[str]] = {
    "denoise": ["denoise.bilateral", "denoise.tv"],
    "dejpeg": ["dejpeg.deblock"],
    "deblur": ["deblur.unsharp", "deblur.wiener"],
}
FIXTURE_MIXTURES: list[list[tuple[str, int]]] = [
    [("noise", 2), ("jpeg", 2)],
    [("blur", 2), ("noise", 1)],
    [("blur", 1), ("noise", 2), ("jpeg", 1)],
]
METRICS = ("psnr", "ssim")


def _clean(i: int, side: int) -> np.ndarray:
    import skimage.data

    names = ["astronaut", "chelsea", "coffee"]
    img = as_float_image(getattr(skimage.data, names[i % len(names)])())
    h, w = img.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(img[top : top + side, left : left + side])


def pipelines_for(tasks: Sequence[str], toolbox: dict[str, list[str]]) -> list[tuple[str, ...]]:
    out = []
    for order in itertools.permutations(tasks):
        for combo in itertools.product(*(toolbox[t] for t in order)):
            out.append(tuple(combo))
    return out


def build_fixture(
    root: Path,
    mixtures: Sequence[Sequence[tuple[str, int]]] = tuple(FIXTURE_MIXTURES),
    toolbox: dict[str, list[str]] | None = None,
    side: int = 64,
) -> Path:
    """Write a search-data directory under ``root`` (returned)."""
    from restoregraph.tools import default_registry

    toolbox = toolbox or FIXTURE_TOOLS
    registry = default_registry()
    root.mkdir(parents=True, exist_ok=True)
    manifest = {
        "version": 1,
        "objective": "balanced",
        "toolbox": toolbox,
        "crop": side,
        "seed": 0,
        "n_images": len(mixtures),
        "command": "tests/search_fixture.py",
        "source": "skimage.data",
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    lines = []
    for i, mixture in enumerate(mixtures):
        sid = f"{i:06d}"
        clean = _clean(i, side)
        degraded, _ = apply_mixture(clean, list(mixture), seed=100 + i)
        degraded = (np.round(np.clip(degraded, 0, 1) * 255) / 255).astype(np.float32)
        tasks = list(dict.fromkeys(TASK_FOR_DEGRADATION[t] for t, _ in mixture))
        pipes = pipelines_for(tasks, toolbox)
        images: dict[tuple[str, ...], np.ndarray] = {(): degraded}
        for p in pipes:
            for k in range(1, len(p) + 1):
                if p[:k] not in images:
                    images[p[:k]] = registry.get(p[k - 1]).run(images[p[: k - 1]])
        metrics = {path: compute(list(METRICS), img, clean) for path, img in images.items()}
        finals = [metrics[p] for p in pipes]
        scores = balanced_scores(finals, METRICS)
        order = sorted(range(len(pipes)), key=lambda j: -scores[j])
        rank = {j: r for r, j in enumerate(order, 1)}
        best, worst = pipes[order[0]], pipes[order[-1]]
        keep = {best[:k] for k in range(len(best) + 1)} | {worst[:k] for k in range(len(worst) + 1)}
        folder = root / "images" / sid
        folder.mkdir(parents=True, exist_ok=True)
        save_image(clean, folder / "clean.png")
        save_image(degraded, folder / "degraded.png")
        nodes: list[dict[str, Any]] = []
        for n, (path, img) in enumerate(sorted(images.items(), key=lambda kv: (len(kv[0]), kv[0]))):
            rel = None
            if path in keep:
                rel = f"images/{sid}/n{n}.png"
                save_image(img, root / rel)
            nodes.append({"path": list(path), "metrics": metrics[path], "image": rel})
        n_p = len(pipes)
        sample = {
            "id": sid,
            "source": f"skimage/{i}",
            "crop": [0, 0, side, side],
            "seed": 100 + i,
            "mixture": [[t, lvl] for t, lvl in mixture],
            "tasks": tasks,
            "degraded": f"images/{sid}/degraded.png",
            "clean": f"images/{sid}/clean.png",
            "nodes": nodes,
            "pipelines": [
                {
                    "steps": list(p),
                    "metrics": metrics[p],
                    "score": float(scores[j]),
                    "rank": rank[j],
                    "percentile": 100.0 * (rank[j] - 1) / max(1, n_p - 1),
                }
                for j, p in enumerate(pipes)
            ],
        }
        lines.append(json.dumps(sample))
    (root / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return root
