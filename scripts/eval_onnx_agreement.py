"""Agreement of the perception CNN and the embedded planner between the torch backend and the
ONNX backends (issue #22; docs/BENCHMARKS.md, "Inference backends"): on degraded crops of
``skimage.data`` images (``restoregraph.degrade`` mixtures; no evaluation data), the perception
levels, the planner's image features and its plan on each ONNX backend against torch.

    RESTOREGRAPH_EXPORT_DIR=/tmp/exp python scripts/eval_onnx_agreement.py [N] [--json OUT]

The exports are made (once) in the export cache when missing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import skimage.data

from restoregraph.degrade import apply_mixture
from restoregraph.imageio import as_float_image
from restoregraph.perception import _default_perceiver
from restoregraph.planners.base import PlanRequest
from restoregraph.planners.embedded import EmbeddedPlanner
from restoregraph.planners.features import image_features
from restoregraph.tools import backends, builtin_registry

NAMES = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
    "camera", "brick", "grass", "gravel", "moon", "page", "text", "coins", "horse", "clock",
)  # fmt: skip
TYPES = ("noise", "jpeg", "motion_blur", "blur", "haze", "low_light", "rain", "snow", "poisson")
SIZES = (96, 160, 256, 384)


def photos() -> list[tuple[str, np.ndarray]]:
    out = []
    for name in NAMES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # not bundled with this scikit-image
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        out.append((name, as_float_image(img[..., :3])))
    return out


def cases(n: int) -> list[tuple[str, np.ndarray, list[tuple[str, int]]]]:
    rng = np.random.default_rng(0)
    pics = photos()
    out = []
    for i in range(n):
        name, img = pics[i % len(pics)]
        h, w = img.shape[:2]
        side = min(int(rng.choice(SIZES)), h, w)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        clean = np.ascontiguousarray(img[top : top + side, left : left + side])
        k = int(rng.integers(1, 4))
        types = rng.choice(TYPES, size=k, replace=False)
        mixture = [(str(t), int(rng.integers(1, 4))) for t in types]
        degraded, _ = apply_mixture(clean, mixture, seed=i)
        out.append((f"{name}@{side}", np.asarray(degraded, np.float32), mixture))
    return out


def _loader(img: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: img


def run(backend: str, images: list[np.ndarray]) -> dict[str, list]:
    os.environ[backends.ENV] = backend
    onnx = backends.onnx_backend()
    perceiver = _default_perceiver(onnx)
    planner = EmbeddedPlanner()
    assert (onnx is None) == (getattr(planner.model, "_arrays", None) is None), backend
    registry = builtin_registry()
    out: dict[str, list] = {"levels": [], "logits": [], "feats": [], "plans": []}
    for img in images:
        logits = perceiver.logits(img)  # type: ignore[attr-defined]
        out["logits"].append(np.asarray(logits, np.float32))
        levels = perceiver.perceive(img).present
        out["levels"].append(levels)
        out["feats"].append(image_features(img))
        request = PlanRequest(perception=levels, toolbox=registry, load_image=_loader(img))
        out["plans"].append([s["tool"] for s in planner.plan(request).steps])
    return out


def main() -> None:
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 36
    images = cases(n)
    ref = run("torch", [img for _, img, _ in images])
    rows = []
    for backend in ("onnxruntime", "openvino", "openvino-bf16"):
        if not backends.installed(backend):
            continue
        t0 = time.perf_counter()
        got = run(backend, [img for _, img, _ in images])
        same_levels = sum(a == b for a, b in zip(ref["levels"], got["levels"], strict=True))
        same_plans = sum(a == b for a, b in zip(ref["plans"], got["plans"], strict=True))
        logit = max(
            float(np.abs(a - b).max()) for a, b in zip(ref["logits"], got["logits"], strict=True)
        )
        feat = max(
            float(np.abs(a - b).max()) for a, b in zip(ref["feats"], got["feats"], strict=True)
        )
        diffs = [
            {"case": c, "torch": (ref["levels"][i], ref["plans"][i]), backend: (lv, pl)}
            for i, ((c, _, _), lv, pl) in enumerate(
                zip(images, got["levels"], got["plans"], strict=True)
            )
            if lv != ref["levels"][i] or pl != ref["plans"][i]
        ]
        rows.append(
            {
                "backend": backend,
                "images": n,
                "same_levels": same_levels,
                "same_plans": same_plans,
                "max_abs_logit_diff": logit,
                "max_abs_feature_diff": feat,
                "seconds": round(time.perf_counter() - t0, 1),
                "differences": diffs,
            }
        )
    print("| backend | images | same perception levels | same plan | max abs logit diff "
          "| max abs feature diff |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['images']} | {r['same_levels']} | {r['same_plans']} "
            f"| {r['max_abs_logit_diff']:.1e} | {r['max_abs_feature_diff']:.1e} |"
        )
    plans = [p for p in ref["plans"] if p]
    print(
        f"torch: {len(plans)} of {n} plans non-empty, {np.mean([len(p) for p in plans]):.1f} "
        f"steps on average; {sum(bool(lv) for lv in ref['levels'])} images with a degradation"
    )
    for r in rows:
        for d in r["differences"]:
            print("differs:", d)
    if "--json" in args:
        with open(args[args.index("--json") + 1], "w") as fh:
            json.dump({"cases": [(c, m) for c, _, m in images], "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
