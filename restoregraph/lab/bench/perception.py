"""``restoregraph bench perception``: the perception CNN's held-out evaluation, as a section.

Reuses :mod:`restoregraph.lab.training.perception_eval` (the same samples, metrics and table as
``python -m restoregraph.lab.training.perception_eval``): sample ``i`` degrades clean test image
``i mod N`` (whole image, native size) with a random mixture from the training distribution
(0-4 degradations, random levels) and runs the perceiver's normal inference path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError
from restoregraph.lab.common import set_images


@dataclass
class PerceptionConfig:
    data: Path
    set_name: str = "CBSD68"
    n: int = 300
    seed: int = 123
    weights: str | None = None


def fingerprint(weights: str | Path | None = None) -> str:
    """Which perception files are in use: the weights' and calibrated thresholds' sha256."""
    from restoregraph.perception import cnn

    path = Path(weights) if weights is not None else cnn.DEFAULT_WEIGHTS
    if not path.is_file():
        return f"`{path.name}` missing"
    text = f"`{path.name}` sha256 `{cnn.sha256_file(path)[:16]}…`"
    thresholds_path = getattr(cnn, "thresholds_path", None)
    if thresholds_path is not None:
        t = thresholds_path(path)
        text += (
            f", `{t.name}` sha256 `{cnn.sha256_file(t)[:16]}…`"
            if t.is_file()
            else ", no calibrated thresholds file"
        )
    return text


def run_perception_bench(cfg: PerceptionConfig) -> dict[str, Any]:
    from restoregraph.imageio import load_image
    from restoregraph.lab.training.perception_data import list_images
    from restoregraph.lab.training.perception_eval import evaluate
    from restoregraph.perception.cnn import CNNPerceiver

    if cfg.n < 1:
        raise InputError(f"--n must be >= 1, got {cfg.n}")
    set_images(cfg.data, cfg.set_name, 1)  # a clear error when the set is missing or empty
    files = list_images(cfg.data / cfg.set_name)  # evaluate's own order: the same samples
    before = fingerprint(cfg.weights)
    perceiver = CNNPerceiver(cfg.weights)
    images = [load_image(p) for p in files]
    res = evaluate(images, perceiver, cfg.n, cfg.seed, progress=True)
    if fingerprint(cfg.weights) != before:
        raise InputError("the perception weights or thresholds changed during the run; run again")
    return {
        "config": cfg,
        "images": len(images),
        "perceiver": perceiver,
        "fingerprint": before,
        **res,
    }


def perception_markdown(result: dict[str, Any]) -> str:
    from restoregraph.lab.training.perception_eval import markdown_table, metrics, summary_lines
    from restoregraph.perception.cnn import count_params

    cfg: PerceptionConfig = result["config"]
    true, pred = result["true"], result["pred"]
    rows = metrics(true, pred)
    perceiver = result["perceiver"]
    lines = [
        f"- weights: {result['fingerprint']}; {count_params(perceiver.net):,} parameters",
        f"- data: {result['images']} clean images of {cfg.set_name} (never trained on), "
        f"{cfg.n} random mixtures (seed {cfg.seed}; 0–4 degradations, random levels: the "
        "training distribution), whole images at native size; the same samples as "
        f"`python -m restoregraph.lab.training.perception_eval --data …/{cfg.set_name} --n {cfg.n} "
        f"--seed {cfg.seed}`",
        "- presence: a type counts as detected when P(present) = 1 - p(absent) reaches its "
        f"threshold (`PerceptionResult.levels`; {_thresholds(perceiver)}); severity acc. (all "
        "present) counts misses as wrong, (detected) is over true positives only",
        "",
        markdown_table(rows, true, pred),
        "",
        *summary_lines(true, pred, result["times"]),
        "",
        findings(rows),
    ]
    return "\n".join(lines)


def _thresholds(perceiver: Any) -> str:
    values = getattr(perceiver, "thresholds", None)
    if not values:
        return "0.5 for every type"
    return "calibrated: " + ", ".join(f"{t} {float(v):.2f}" for t, v in values.items())


def findings(rows: list[dict[str, Any]]) -> str:
    """A generated paragraph: which types perception finds, and which it misses."""

    def name(r: dict[str, Any]) -> str:
        return f"{r['type']} ({r['recall']:.2f})"

    good = [r for r in rows if r["recall"] == r["recall"] and r["recall"] >= 0.8]
    weak = [r for r in rows if r["recall"] == r["recall"] and 0.3 <= r["recall"] < 0.8]
    bad = [r for r in rows if r["recall"] == r["recall"] and r["recall"] < 0.3]
    fp = [r for r in rows if r["precision"] == r["precision"] and r["precision"] < 0.8]
    parts = [
        "Recall (share of present degradations detected): "
        + (f"reliable (≥ 0.8) for {', '.join(map(name, good))}; " if good else "none ≥ 0.8; ")
        + (f"partial for {', '.join(map(name, weak))}; " if weak else "")
        + (f"mostly or entirely missed: {', '.join(map(name, bad))}." if bad else "none below 0.3.")
    ]
    if fp:
        parts.append(
            "Precision below 0.8 (false alarms): "
            + ", ".join(f"{r['type']} ({r['precision']:.2f})" for r in fp)
            + "."
        )
    parts.append(
        "The agent only plans for what perception reports, so a missed type is never restored."
    )
    return " ".join(parts)
