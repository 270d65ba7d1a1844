"""Train one small learned restoration tool on synthetic degradations of clean training photos.

    restoregraph train-tool denoise --variant low
    python -m restoregraph.lab.training.tools denoise --variant low --steps 1000 --seed 0

The variant (architecture, degradation sampler, default steps) comes from
:mod:`restoregraph.tools.learned.catalog`. Clean images (CBSD432/ and ImageNetSample/ under
``--data``) are loaded once; a pool of (degraded, clean) patch pairs is then synthesised up front
with :mod:`restoregraph.degrade` or, for a sampler step marked ``"realistic": True``,
:mod:`restoregraph.degrade.realistic` (degrading larger crops, ``Variant.source`` pixels, so that
haze depth, rain streaks, raindrops and blur kernels see realistic context) and kept in memory:
synthesis on the fly would cost more than the small models' training steps. A variant with
``real_pairs="polyu"`` also gets ``real_per_pair`` patches of each real PolyU noisy/clean pair
of the *fit* scenes (under ``--real-data``, default ``--data``; the held-out scenes are never
read). The loss is Charbonnier, or the variant's ``loss``. Everything is a pure function of
``--seed``: the pool, the batch drawn at each step (seeded by ``(seed, step)``) and the initial
weights, so a resumed run (``--resume``) continues the exact same stream. A checkpoint (model, optimiser, step) is
written atomically every ``--save-every`` steps.

The final weights are a plain state dict saved as safetensors with the architecture's own key
names, so :func:`restoregraph.tools.loading.load_model` (spandrel auto-detection) loads them
like any released checkpoint; a manifest entry (command, data, seed, steps, sha256, bytes, train
time) is written into ``MANIFEST.json`` next to the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restoregraph.lab.training.lr_schedule import warmup_cosine
from restoregraph.tools.learned import WEIGHTS_DIR
from restoregraph.tools.learned.catalog import MixtureStep, Variant, find_variant
from restoregraph.weightfiles import atomic_torch_save, sha256_of, update_manifest

if TYPE_CHECKING:
    from restoregraph.degrade import MixtureStep as DegradeStep

TRAIN_SUBSETS = ("CBSD432", "ImageNetSample")
SOURCE = 160  # default side of the clean crop that is degraded before patches are cut from it
REAL_PAIRS = ("polyu",)  # known real-pair sources (Variant.real_pairs)


def build_model(variant: Variant) -> Any:
    """A freshly initialised torch module of the variant's spandrel architecture."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DnCNN import DnCNN
    from spandrel.architectures.NAFNet import NAFNet

    classes: dict[str, Callable[..., Any]] = {"DnCNN": DnCNN, "NAFNet": NAFNet, "Compact": Compact}
    return classes[variant.arch_name](**variant.arch_kwargs)


def _realistic_step(step: object) -> bool:
    return isinstance(step, Mapping) and bool(step.get("realistic"))


def degrade_steps(
    image: np.ndarray, steps: Sequence[MixtureStep | DegradeStep] | str, seed: int
) -> np.ndarray:
    """``image`` (float32 in [0, 1]) through a sampler's steps (or anything ``apply_mixture``
    takes). Without a realistic step this is ``restoregraph.degrade.apply_mixture`` (unchanged
    pools for the older variants); otherwise step ``i`` is seeded from ``step_seed(seed, i)``
    and a step (a mapping) with ``"realistic": True`` runs
    :func:`restoregraph.degrade.realistic.apply_realistic` (its other keys are parameters)."""
    from restoregraph.degrade import apply_mixture, step_seed

    if isinstance(steps, str) or not any(_realistic_step(step) for step in steps):
        return apply_mixture(image, steps, seed=seed)[0]
    from restoregraph.degrade.realistic import apply_realistic

    img = image
    for i, step in enumerate(steps):
        step_s = step_seed(seed, i)
        if isinstance(step, Mapping) and step.get("realistic"):
            params = {k: v for k, v in step.items() if k not in ("type", "level", "realistic")}
            rng = np.random.default_rng(step_s)
            img = apply_realistic(img, str(step["type"]), int(step["level"]), rng, **params)
        else:
            img = apply_mixture(img, [step], seed=step_s)[0]
    return img


def build_pool(
    images: Sequence[np.ndarray],
    variant: Variant,
    *,
    seed: int,
    n_sources: int,
    per_source: int,
    crop: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) uint8 patch pairs: (N, crop/scale, crop/scale, 3) and (N, crop, crop, 3).

    Each source ``i`` is a pure function of ``(seed, i)``: an image, a ``variant.source``-pixel
    crop, a flip, the variant's degradation (seeded) and ``per_source`` patches at multiples of
    8 (so JPEG blocks stay aligned with the patch grid)."""
    from restoregraph.imageio import to_uint8

    s = variant.scale
    lq_side = crop // s
    xs = np.empty((n_sources * per_source, lq_side, lq_side, 3), np.uint8)
    ys = np.empty((n_sources * per_source, crop, crop, 3), np.uint8)
    it: Any = range(n_sources)
    if progress:
        from restoregraph.core.util import progress as bar

        it = bar(it, total=n_sources, desc=f"synthesising {variant.id} patches")
    k = 0
    for i in it:
        rng = np.random.default_rng([seed, 1, i])
        img = images[int(rng.integers(len(images)))]
        h, w = img.shape[:2]
        side = min(variant.source, h, w) // (8 * s) * (8 * s)
        top = int(rng.integers(h - side + 1))
        left = int(rng.integers(w - side + 1))
        clean = img[top : top + side, left : left + side]
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        clean_f = np.ascontiguousarray(clean, dtype=np.float32) / np.float32(255.0)
        out = degrade_steps(clean_f, variant.sampler(rng), seed=int(rng.integers(2**31)))
        lq = to_uint8(out)
        cells = (side // s - lq_side) // 8 + 1
        for _ in range(per_source):
            y0 = int(rng.integers(cells)) * 8
            x0 = int(rng.integers(cells)) * 8
            xs[k] = lq[y0 : y0 + lq_side, x0 : x0 + lq_side]
            ys[k] = clean[y0 * s : y0 * s + crop, x0 * s : x0 * s + crop]
            k += 1
    return xs, ys


def real_pool(
    variant: Variant, root: str | Path, *, seed: int, per_pair: int, crop: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """``per_pair`` aligned (degraded, clean) uint8 patches of each real pair of the variant's
    ``real_pairs`` source (PolyU: the *fit* scenes only), a pure function of ``seed``; with what
    they are (for the manifest)."""
    if variant.real_pairs not in REAL_PAIRS:
        raise ValueError(f"{variant.id}: unknown real_pairs {variant.real_pairs!r}")
    if variant.scale != 1:
        raise ValueError(f"{variant.id}: real pairs need a scale-1 variant")
    from restoregraph.imageio import to_uint8
    from restoregraph.lab.training.noise_fit import polyu_noise_pairs

    pairs = polyu_noise_pairs(root, split="fit")
    if not len(pairs):
        raise FileNotFoundError(f"no PolyU fit pairs under {root}")
    xs = np.empty((len(pairs) * per_pair, crop, crop, 3), np.uint8)
    ys = np.empty_like(xs)
    k = 0
    for i, (noisy, clean) in enumerate(pairs):
        rng = np.random.default_rng([seed, 3, i])
        lq, hq = to_uint8(noisy), to_uint8(clean)
        h, w = min(lq.shape[0], hq.shape[0]), min(lq.shape[1], hq.shape[1])
        if h < crop or w < crop:
            raise ValueError(f"{pairs.pairs[i].name}: smaller than the {crop}px patches")
        for _ in range(per_pair):
            y0 = int(rng.integers(h - crop + 1))
            x0 = int(rng.integers(w - crop + 1))
            xs[k] = lq[y0 : y0 + crop, x0 : x0 + crop]
            ys[k] = hq[y0 : y0 + crop, x0 : x0 + crop]
            k += 1
    desc = (
        f"{len(xs)} real patch pairs ({per_pair} per pair) of the {len(pairs)} PolyU "
        f"'fit' pairs ({len(pairs.scenes)} scenes; held-out scenes never read)"
    )
    return xs, ys, desc


def batch_at(
    xs: np.ndarray, ys: np.ndarray, seed: int, step: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The batch of step ``step``: random pairs with a random flip/rotation (dihedral group)."""
    rng = np.random.default_rng([seed, 2, step])
    idx = rng.integers(len(xs), size=batch_size)
    t = int(rng.integers(8))
    x, y = xs[idx], ys[idx]
    if t & 1:
        x, y = x[:, :, ::-1], y[:, :, ::-1]
    if t & 2:
        x, y = x[:, ::-1], y[:, ::-1]
    if t & 4:
        x, y = x.transpose(0, 2, 1, 3), y.transpose(0, 2, 1, 3)
    to = np.float32(1.0 / 255.0)
    return (
        np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32) * to,
        np.ascontiguousarray(y.transpose(0, 3, 1, 2), np.float32) * to,
    )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given
    (a clear error for a CUDA device torch cannot see)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA GPU here (use cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device {device}: expected auto, cpu or cuda[:N]")
    return device


def lr_at(step: int, total: int, base: float, warmup: int = 50) -> float:
    """Linear warm-up, then cosine decay to 1% of ``base``."""
    return warmup_cosine(step, total, base, warmup, floor=0.01)


@dataclass
class _Run:
    """One training run's settings (resolved from the variant's defaults)."""

    variant: Variant
    seed: int
    steps: int
    batch_size: int
    lr: float
    config: dict[str, Any]  # what a checkpoint must match to be resumed
    ckpt_path: Path
    save_every: int
    stop_after: int | None
    progress: bool
    device: str = "cpu"


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(int(threads))
        try:
            import cv2

            cv2.setNumThreads(int(threads))
        except ImportError:  # pragma: no cover
            pass


def _training_pool(
    variant: Variant,
    data: str | Path,
    *,
    seed: int,
    n_images: int,
    n_sources: int,
    per_source: int,
    crop: int,
    progress: bool,
    real_data: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, str, float]:
    """The (degraded, clean) patch pairs synthesised from ``n_images`` training images (and the
    variant's real pairs, under ``real_data``, default ``data``); with what they are (for the
    manifest) and the seconds it took."""
    from restoregraph.lab.training.perception_data import list_images, load_uint8

    t0 = time.time()
    paths = list_images(data, TRAIN_SUBSETS)
    if not paths:
        raise FileNotFoundError(f"no training images under {data}")
    pick = np.random.default_rng([seed, 0]).permutation(len(paths))[:n_images]
    images = load_uint8([paths[i] for i in sorted(pick.tolist())])
    xs, ys = build_pool(
        images,
        variant,
        seed=seed,
        n_sources=n_sources,
        per_source=per_source,
        crop=crop,
        progress=progress,
    )
    del images
    data_desc = (
        f"{data} {' + '.join(TRAIN_SUBSETS)}: {len(pick)} images, "
        f"{len(xs)} synthesised patch pairs ({n_sources} degraded {variant.source}px crops)"
    )
    if variant.real_pairs and variant.real_per_pair > 0:
        root = data if real_data is None else real_data
        rx, ry, real_desc = real_pool(
            variant, root, seed=seed, per_pair=variant.real_per_pair, crop=crop
        )
        xs, ys = np.concatenate([xs, rx]), np.concatenate([ys, ry])
        data_desc += f"; {root}: {real_desc}"
    pool_s = time.time() - t0
    print(f"{variant.id}: pool of {len(xs)} patch pairs in {pool_s:.0f} s", flush=True)
    return xs, ys, data_desc, pool_s


def _start(run: _Run, resume: bool) -> tuple[Any, Any, int, float]:
    """The seeded model and its optimiser, at step 0 or at the checkpoint (``resume``); with
    the step and the training seconds already spent."""
    import torch

    torch.manual_seed(run.seed)
    net = build_model(run.variant).to(run.device)
    opt = torch.optim.Adam(net.parameters(), lr=run.lr)
    start = 0
    elapsed_before = 0.0
    ckpt_path, config = run.ckpt_path, run.config
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=run.device, weights_only=True)
        if ck["config"] != config:
            raise ValueError(
                f"--resume: checkpoint {ckpt_path} was made with {ck['config']}, this run is {config}"
            )
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start = int(ck["step"])
        elapsed_before = float(ck.get("elapsed_s", 0.0))
        print(f"resumed from {ckpt_path} at step {start}", flush=True)
    elif resume:
        print(f"--resume: no checkpoint at {ckpt_path}, starting from scratch", flush=True)
    return net, opt, start, elapsed_before


def _save_checkpoint(run: _Run, net: Any, opt: Any, step: int, elapsed: float) -> None:
    atomic_torch_save(
        {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "elapsed_s": elapsed,
            "config": run.config,
        },
        run.ckpt_path,
    )


def _train_steps(
    run: _Run,
    net: Any,
    opt: Any,
    xs: np.ndarray,
    ys: np.ndarray,
    start: int,
    elapsed: float,
    device: str = "cpu",
) -> tuple[float, float, int | None]:
    """Steps ``start`` .. ``steps`` (checkpointing every ``save_every``): the loss's moving
    average, the training seconds (``elapsed`` before ``start`` included), and the step the
    run stopped at when ``stop_after`` ended it early (else None)."""
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    steps, seed, lr, stop_after = run.steps, run.seed, run.lr, run.stop_after
    t_train = time.time()
    net.train()
    ema = float("nan")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not run.progress,
    ) as bar:
        task = bar.add_task(f"training {run.variant.id}", total=steps, completed=start, loss=0.0)
        for step in range(start, steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, lr)
            xb, yb = batch_at(xs, ys, seed, step, run.batch_size)
            pred = net(torch.from_numpy(xb).to(device, non_blocking=True))
            err = pred - torch.from_numpy(yb).to(device, non_blocking=True)
            loss = torch.sqrt(err**2 + 1e-6).mean()  # Charbonnier
            if run.variant.loss == "l2":
                loss = (err**2).mean()
            elif run.variant.loss == "charbonnier+l2":  # L2 leads only where errors are large
                loss = loss + 10.0 * (err**2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            value = float(loss.detach())
            ema = value if math.isnan(ema) else 0.98 * ema + 0.02 * value
            bar.update(task, advance=1, loss=ema)
            done = step + 1
            if done % run.save_every == 0 or done in (steps, stop_after):
                _save_checkpoint(run, net, opt, done, elapsed + time.time() - t_train)
            if done == stop_after and done < steps:  # time-boxed run: continue with --resume
                print(f"stopped at step {done}; checkpoint {run.ckpt_path}", flush=True)
                return ema, elapsed + time.time() - t_train, done
            if not run.progress and done % 100 == 0:
                print(f"step {done}/{steps} loss {ema:.4f}", flush=True)
    return ema, elapsed + time.time() - t_train, None


def _save_weights(net: Any, out: Path, variant: Variant) -> None:
    """The final weights as safetensors (the architecture's own key names), atomically."""
    from safetensors.torch import save_file

    net.eval()
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"restoregraph_tool": variant.id})
    os.replace(tmp, out)


def _manifest_entry(
    run: _Run,
    out: Path,
    n_params: int,
    command: str | None,
    ema: float,
    data_desc: str,
    times: tuple[float, float],
) -> dict[str, Any]:
    """The weights' manifest entry; ``times``: (training seconds, data synthesis seconds)."""
    import torch

    variant = run.variant
    train_s, pool_s = times
    if run.device.startswith("cuda"):
        machine = f"on an {torch.cuda.get_device_name(run.device)} GPU ({os.cpu_count()} CPU cores)"
    else:
        machine = f"{torch.get_num_threads()} torch thread(s) on a shared 2-core CPU (no GPU)"
    return {
        "id": variant.id,
        "file": out.name,
        "kind": "learned_tool",
        "task": variant.task,
        "description": variant.description,
        "severity": list(variant.severity),
        "scale": variant.scale,
        "cost": variant.cost,
        "architecture": f"spandrel {variant.arch_name} {json.dumps(variant.arch_kwargs)}",
        "params": n_params,
        "command": command or "",
        "data": data_desc,
        "seed": run.seed,
        "steps": run.steps,
        "batch_size": run.batch_size,
        "crop": run.config["crop"],
        "lr": run.lr,
        "loss": variant.loss,
        "final_loss": round(ema, 5),
        "sha256": sha256_of(out),
        "bytes": out.stat().st_size,
        "trained": date.today().isoformat(),
        "train_time": f"{train_s / 60:.1f} min training + {pool_s:.0f} s data synthesis, {machine}",
    }


def train(
    variant: Variant,
    data: str | Path,
    *,
    out_dir: str | Path = WEIGHTS_DIR,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    crop: int | None = None,
    lr: float | None = None,
    n_images: int = 240,
    n_sources: int = 1500,
    per_source: int = 4,
    threads: int | None = 1,
    checkpoint: str | Path | None = None,
    save_every: int = 200,
    resume: bool = False,
    stop_after: int | None = None,
    manifest: str | Path | None = None,
    command: str | None = None,
    progress: bool = True,
    real_data: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Train ``variant``; write ``<out_dir>/<file>`` and its manifest entry; return the entry.

    ``stop_after`` ends the run after that many steps (a checkpoint, no weights); a later call
    with ``resume=True`` continues it and gives the same weights as an uninterrupted run."""
    import torch

    steps = int(steps or variant.steps)
    batch_size = int(batch_size or variant.batch_size)
    crop = int(crop or variant.crop)
    lr = float(lr or variant.lr)
    if crop % (8 * variant.scale):
        raise ValueError(f"--crop must be a multiple of {8 * variant.scale}")
    out = Path(out_dir) / variant.file
    ckpt_path = Path(checkpoint) if checkpoint else Path("runs") / f"{variant.file}.ckpt"
    manifest_path = Path(manifest) if manifest else Path(out_dir) / "MANIFEST.json"
    _set_threads(threads)
    config = {
        "id": variant.id,
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "crop": crop,
        "lr": lr,
        "n_images": n_images,
        "n_sources": n_sources,
        "per_source": per_source,
    }
    if variant.source != SOURCE or variant.real_pairs or variant.loss != "charbonnier":
        # (checkpoints of the older variants stay resumable)
        config.update(source=variant.source, real_pairs=variant.real_pairs)
        config.update(real_per_pair=variant.real_per_pair, loss=variant.loss)
    device = resolve_device(device)
    run = _Run(
        variant,
        seed,
        steps,
        batch_size,
        lr,
        config,
        ckpt_path,
        save_every,
        stop_after,
        progress,
        device,
    )
    xs, ys, data_desc, pool_s = _training_pool(
        variant,
        data,
        seed=seed,
        n_images=n_images,
        n_sources=n_sources,
        per_source=per_source,
        crop=crop,
        progress=progress,
        real_data=real_data,
    )
    net, opt, start, elapsed_before = _start(run, resume)
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"{variant.id}: {variant.arch_name} {variant.arch_kwargs} params={n_params:,} "
        f"steps={steps} batch={batch_size} crop={crop} threads={torch.get_num_threads()} "
        f"device={device}",
        flush=True,
    )
    ema, train_s, stopped = _train_steps(run, net, opt, xs, ys, start, elapsed_before, device)
    if stopped is not None:
        return {"id": variant.id, "stopped_at": stopped, "checkpoint": str(ckpt_path)}
    _save_weights(net, out, variant)
    entry = _manifest_entry(run, out, n_params, command, ema, data_desc, (train_s, pool_s))
    update_manifest(manifest_path, entry)
    print(f"wrote {out} ({entry['bytes']:,} bytes) and its entry in {manifest_path}", flush=True)
    return entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task")
    p.add_argument("--variant", default=None)
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--real-data", default=None, help="real pairs' folder (default: --data)")
    p.add_argument("--out-dir", default=str(WEIGHTS_DIR))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--n-images", type=int, default=240)
    p.add_argument("--n-sources", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, default=None)
    p.add_argument("--manifest", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--device",
        default="auto",
        help="auto (a CUDA GPU when there is one, else the CPU), cpu or cuda[:N]; "
        "the same command trains on either",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    variant = find_variant(args.task, args.variant)
    given = list(sys.argv[1:] if argv is None else argv)
    if args.steps is None:  # record the resolved value, so the command reproduces the run
        given += ["--steps", str(variant.steps)]
    command = "python -m restoregraph.lab.training.tools " + " ".join(shlex.quote(a) for a in given)
    train(
        variant,
        args.data,
        out_dir=args.out_dir,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        n_images=args.n_images,
        n_sources=args.n_sources,
        threads=args.threads,
        checkpoint=args.checkpoint,
        save_every=args.save_every,
        resume=args.resume,
        stop_after=args.stop_after,
        manifest=args.manifest,
        command=command,
        progress=not args.no_progress,
        real_data=args.real_data,
        device=args.device,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
