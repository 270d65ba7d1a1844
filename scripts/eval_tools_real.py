"""Evaluation of the retrained real-photo tools (docs/tools.md, "Retrained for real photos"):
each task's tools on real pairs (SOTS, LOL, 20 of Rain100L, RainDrop) and the output checks
(newly clipped, colour shift, border ratio) on the first 8 real photos of its folders, downscaled
to 512 px (evaluation only; no choice is tuned on these).

    python scripts/eval_tools_real.py dehaze lowlight derain desnow   # from the repo root
"""

import glob
import sys
from pathlib import Path

import numpy as np

from restoregraph.imageio import load_image
from restoregraph.lab.bench.real import downscale
from restoregraph.metrics.safety import border_ratio, clipped_fraction, colour_shift
from restoregraph.tools import default_registry

R = default_registry()
D = Path("../shared/data")


def psnr(a, b):
    return float(10 * np.log10(1 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


SP = D / "test/small_pairs"
sets = {
    "dehaze": [
        (p, SP / "SOTS_outdoor_sample/gt" / (Path(p).name.split("_")[0] + ".png"))
        for p in sorted(glob.glob(str(SP / "SOTS_outdoor_sample/hazy/*")))
    ],
    "lowlight": [(SP / "LOL_eval15_sample/low/778.png", SP / "LOL_eval15_sample/high/778.png")],
    "derain": [
        (p, D / "test/Rain100L/norain" / Path(p).name.replace("rain-", "norain-"))
        for p in sorted(glob.glob(str(D / "test/Rain100L/rainy/*")))[::5][:20]
    ],
    "deraindrop": [
        (SP / "RainDrop_examples/rain" / f"{i}.png", SP / "RainDrop_examples/clean" / f"{i}.png")
        for i in range(4)
    ],
}
reals = {
    "dehaze": ["haze_real"],
    "lowlight": ["LIME_lowlight", "DICM_lowlight"],
    "desnow": ["snow_real", "snow_csd_hdcwnet"],
    "derain": [],
}


for task in sys.argv[1:]:
    for tid in [t.id for t in R.for_task(task)]:
        out = []
        for a, b in sets.get(task, []):
            x = load_image(str(a))
            y = load_image(str(b))
            if x.shape != y.shape:
                continue
            out.append(psnr(R.get(tid).run(x), y) - psnr(x, y))
        saf = []
        for folder in reals.get(task, []):
            for f in sorted(glob.glob(str(D / "real" / folder / "*")))[:8]:
                try:
                    x = downscale(load_image(f), 512)  # as `bench real` does
                except Exception:
                    continue
                o = R.get(tid).run(x)
                saf.append(
                    (
                        clipped_fraction(o) - clipped_fraction(x),
                        colour_shift(x, o),
                        border_ratio(x, o),
                    )
                )
        s = np.array(saf) if saf else np.zeros((0, 3))
        pr = (
            f"pairs {np.mean(out):+.2f} dB (n={len(out)}, up {sum(g > 0 for g in out)})"
            if out
            else "pairs -"
        )
        sr = (
            (
                f"real n={len(s)}: clip max {s[:, 0].max() * 100:+.1f}% (>1%: {(s[:, 0] > 0.01).sum()}), shift max {s[:, 1].max():.3f}, border {s[:, 2].min():.2f}-{s[:, 2].max():.2f} (out: {((s[:, 2] < 0.9) | (s[:, 2] > 1.1)).sum()})"
            )
            if len(s)
            else ""
        )
        print(f"{tid:24s} {pr}  {sr}", flush=True)
