"""Evaluation of the retrained real-photo tools (docs/tools.md, "Retrained for real photos"):
each task's tools on the project and the realistic synthesis of CBSD68 crops (evaluation only).

    python scripts/eval_tools_synthetic.py [dehaze lowlight derain desnow]   # from the repo root
"""

import glob
import sys
from pathlib import Path

import numpy as np

from restoregraph.degrade import apply_mixture
from restoregraph.degrade.realistic import apply_realistic
from restoregraph.imageio import load_image
from restoregraph.tools import default_registry

R = default_registry()
D = Path("../shared/data")


def psnr(a, b):
    return float(10 * np.log10(1 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def load(p):
    return load_image(str(p))


tasks = {"dehaze": "haze", "lowlight": "low_light", "derain": "rain", "desnow": "snow"}
which = sys.argv[1:] or list(tasks)
clean = sorted(glob.glob(str(D / "test/CBSD68/*")))[::7][:10]
imgs = []
for p in clean:
    im = load(p)
    h, w = im.shape[:2]
    s = min(h, w, 256) // 8 * 8
    imgs.append(im[:s, :s])
for task in which:
    t = tasks[task]
    res = {}
    for tid in [t.id for t in R.for_task(task)]:
        tool = R.get(tid).run
        g1 = []
        g2 = []
        for i, im in enumerate(imgs):
            for lvl in (1, 2, 3):
                x = apply_mixture(im, [{"type": t, "level": lvl}], seed=100 + i * 3 + lvl)[0]
                g1.append(psnr(tool(x), im) - psnr(x, im))
                x2 = np.clip(
                    apply_realistic(im, t, lvl, np.random.default_rng(200 + i * 3 + lvl)), 0, 1
                ).astype(np.float32)
                g2.append(psnr(tool(x2), im) - psnr(x2, im))
        res[tid] = (np.mean(g1), np.mean(g2))
        print(
            f"{tid:24s} project {np.mean(g1):+.2f} dB  realistic {np.mean(g2):+.2f} dB", flush=True
        )
