"""Train the perception CNN on random degradation mixtures synthesised on the fly.

    python -m restoregraph.lab.training.perception --data ../shared/data/train \\
        --out restoregraph/weights/perception_cnn.pt --steps N --seed 0

Clean images (CBSD432/ and ImageNetSample/ under ``--data``; never PolyU, whose "clean" images are
averages of real noisy shots) are loaded into memory once as uint8. Each training sample is a pure
function of ``(seed, sample index)``: an image, a clean crop, a mixture (see
:mod:`restoregraph.lab.training.perception_data`), its synthesis and the final crop, so runs are reproducible
and resuming (``--resume``) continues the exact sample stream. A checkpoint (model, optimiser, step,
RNG state) is written atomically every ``--save-every`` steps; the final weights are a plain state
dict (loadable with ``torch.load(weights_only=True)``).

With low resolution in a mixture the clean crop is taken ``scale`` times larger (as far as the
image allows), so the degraded image is at most one crop; smaller results sit at the top-left of a
zero canvas with a validity mask (see :class:`PerceptionNet`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from restoregraph.lab.training.lr_schedule import warmup_cosine
from restoregraph.lab.training.perception_data import (
    TYPE_INDEX,
    labels_of,
    labels_of_levels,
    list_images,
    load_uint8,
    sample_mixture,
    scale_of,
)
from restoregraph.perception.cnn import (
    DEFAULT_WIDTHS,
    PerceptionNet,
    count_params,
    global_view,
    image_stats,
)
from restoregraph.weightfiles import atomic_torch_save

TRAIN_SUBSETS = ("CBSD432", "ImageNetSample")


Sample = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class MixtureDataset(Dataset[Sample]):
    """Index ``i`` -> (image canvas (3, crop, crop), mask (1, crop, crop), image statistics
    (N_STATS,) of the valid region, labels (n_types,))."""

    def __init__(
        self,
        images: Sequence[np.ndarray],
        seed: int,
        crop: int = 128,
        margin: int = 16,
        mix: SampleMix | None = None,
        real_noise: Sequence[np.ndarray] = (),
    ) -> None:
        if not images:
            raise ValueError("no training images")
        self.images = list(images)
        self.seed = int(seed)
        self.crop = int(crop)
        self.margin = int(margin)
        self.mix = mix or SampleMix()
        self.real_noise = list(real_noise)

    def __len__(self) -> int:  # effectively infinite; the sampler decides
        return 2**62

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, int(index)])
        u = rng.random()
        whole = rng.random() < self.mix.global_view
        if self.real_noise and u < self.mix.real_noise:
            out, labels = self._real_noise(rng)
        elif u < self.mix.real_noise + self.mix.realistic:
            out, labels = self._realistic(rng, whole)
        else:
            out, labels = self._synthetic(rng, whole)
        if whole:  # the downscaled global view the perceiver adds to its native crops
            out = global_view(out, self.crop)
        return self._pack(out, labels, rng)

    def _clean(self, rng: np.random.Generator, side: int | None) -> np.ndarray:
        """A clean crop (``side`` px, or the whole image when None), randomly mirrored."""
        img = self.images[int(rng.integers(len(self.images)))]
        h, w = img.shape[:2]
        ch, cw = (h, w) if side is None else (min(side, h), min(side, w))
        top = int(rng.integers(h - ch + 1))
        left = int(rng.integers(w - cw + 1))
        clean = img[top : top + ch, left : left + cw]
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        return np.ascontiguousarray(clean, dtype=np.float32) / np.float32(255.0)

    def _synthetic(self, rng: np.random.Generator, whole: bool) -> tuple[np.ndarray, np.ndarray]:
        """The project's own synthesis (``restoregraph.degrade``), one random mixture."""
        from restoregraph.degrade import apply_mixture

        mixture = sample_mixture(rng)
        side = None if whole else (self.crop + self.margin) * scale_of(mixture)
        out, infos = apply_mixture(self._clean(rng, side), mixture, seed=int(rng.integers(2**31)))
        return out, labels_of(infos)

    def _realistic(self, rng: np.random.Generator, whole: bool) -> tuple[np.ndarray, np.ndarray]:
        """The realistic synthesis (``restoregraph.degrade.realistic``): depth-like haze, lens
        raindrops, camera noise through a raw-like pipeline...; a share stays clean."""
        from restoregraph.degrade.realistic import realistic_mixture

        clean = self._clean(rng, None if whole else 2 * self.crop)
        if rng.random() < self.mix.clean_share:
            return clean, np.zeros(len(TYPE_INDEX), dtype=np.int64)
        out, levels = realistic_mixture(clean, rng)
        return out, labels_of_levels(levels.items())

    def _real_noise(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A crop of a real noisy camera photo (PolyU, the noise fit's scene split): noise at
        level 1 (these are mild, real ISO noise)."""
        img = self.real_noise[int(rng.integers(len(self.real_noise)))]
        side = self.crop + self.margin
        h, w = img.shape[:2]
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = np.ascontiguousarray(img[top : top + side, left : left + side], np.float32)
        out = crop / np.float32(255.0) if img.dtype == np.uint8 else crop
        labels = np.zeros(len(TYPE_INDEX), dtype=np.int64)
        labels[TYPE_INDEX["noise"]] = 1
        return out, labels

    def _pack(self, out: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Sample:
        oh, ow = out.shape[:2]
        ph, pw = min(self.crop, oh), min(self.crop, ow)
        y0 = int(rng.integers(oh - ph + 1))
        x0 = int(rng.integers(ow - pw + 1))
        canvas = np.zeros((3, self.crop, self.crop), dtype=np.float32)
        mask = np.zeros((1, self.crop, self.crop), dtype=np.float32)
        canvas[:, :ph, :pw] = out[y0 : y0 + ph, x0 : x0 + pw].transpose(2, 0, 1)
        mask[:, :ph, :pw] = 1.0
        x = torch.from_numpy(canvas)
        stats = image_stats(x[None, :, :ph, :pw])[0]
        return x, torch.from_numpy(mask), stats, torch.from_numpy(labels)


@dataclass(frozen=True)
class SampleMix:
    """Where training samples come from: shares of real camera noise (PolyU crops), of the
    realistic synthesis (the rest: the project's own synthesis), of downscaled whole-image
    views, and of clean samples within the realistic share."""

    realistic: float = 0.0
    real_noise: float = 0.0
    global_view: float = 0.0
    clean_share: float = 0.12


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 2% of ``base``."""
    return warmup_cosine(step, total, base, warmup, floor=0.02)


def train(
    images: Sequence[np.ndarray],
    out: str | Path,
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
    crop: int = 128,
    margin: int = 16,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    workers: int = 2,
    threads: int | None = None,
    checkpoint: str | Path | None = None,
    save_every: int = 200,
    resume: bool = False,
    log_every: int = 50,
    progress: bool = True,
    mix: SampleMix | None = None,
    real_noise: Sequence[np.ndarray] = (),
) -> dict[str, Any]:
    """Train and write a plain state dict to ``out``; return a summary dict."""
    mix = mix or SampleMix()
    out = Path(out)
    ckpt_path = Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net = PerceptionNet(widths=widths)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    config = {
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "crop": crop,
        "margin": margin,
        "lr": lr,
        "weight_decay": weight_decay,
        "widths": list(net.widths),
        "n_images": len(images),
        "mix": [mix.realistic, mix.real_noise, mix.global_view, mix.clean_share],
        "n_real_noise": len(real_noise),
    }
    start = 0
    elapsed_before = 0.0
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        for key in ("seed", "batch_size", "crop", "widths", "n_images", "mix", "n_real_noise"):
            if ck["config"].get(key) != config[key]:
                raise ValueError(
                    f"--resume: checkpoint {ckpt_path} was made with {key}="
                    f"{ck['config'].get(key)!r}, this run has {config[key]!r}"
                )
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        start = int(ck["step"])
        elapsed_before = float(ck.get("elapsed_s", 0.0))
        print(f"resumed from {ckpt_path} at step {start}", flush=True)
    elif resume:
        print(f"--resume: no checkpoint at {ckpt_path}, starting from scratch", flush=True)

    print(
        f"PerceptionNet widths={net.widths} params={count_params(net):,} "
        f"images={len(images)} steps={steps} batch={batch_size} crop={crop} "
        f"threads={torch.get_num_threads()} workers={workers}",
        flush=True,
    )
    dataset = MixtureDataset(
        images, seed=seed, crop=crop, margin=margin, mix=mix, real_noise=real_noise
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=range(start * batch_size, steps * batch_size),  # type: ignore[arg-type]
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
    )

    def save_checkpoint(step: int, elapsed: float) -> None:
        atomic_torch_save(
            {
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "torch_rng": torch.get_rng_state(),
                "config": config,
                "elapsed_s": elapsed,
            },
            ckpt_path,
        )

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, mininterval=5.0, file=sys.stderr, ncols=100)
    net.train()
    t0 = time.perf_counter()
    ema_loss: float | None = None
    ema_acc: float | None = None
    warmup = max(1, min(200, steps // 20))
    # presence is the rarer outcome (~22% per type): weigh the levels above "absent"
    class_weight = torch.tensor([1.0, 1.5, 1.5, 1.5])
    step = start
    for x, mask, stats, y in loader:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        logits = net(x, mask, stats)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1), weight=class_weight
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():
            acc = float((logits.argmax(-1) == y).float().mean())
        lv = float(loss.detach())
        ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
        ema_acc = acc if ema_acc is None else 0.98 * ema_acc + 0.02 * acc
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{ema_loss:.3f}", acc=f"{ema_acc:.3f}", refresh=False)
        elapsed = elapsed_before + time.perf_counter() - t0
        if log_every and (step % log_every == 0 or step == steps):
            per = (time.perf_counter() - t0) / max(1, step - start)
            print(
                f"step {step}/{steps} loss {ema_loss:.4f} acc {ema_acc:.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {per:.2f}s/step "
                f"elapsed {elapsed / 60:.1f}min eta {per * (steps - step) / 60:.1f}min",
                flush=True,
            )
        if save_every and (step % save_every == 0) and step < steps:
            save_checkpoint(step, elapsed)
    if bar is not None:
        bar.close()
    elapsed = elapsed_before + time.perf_counter() - t0
    save_checkpoint(step, elapsed)
    net.eval()
    atomic_torch_save({k: v.detach().clone() for k, v in net.state_dict().items()}, out)
    summary = {
        "out": str(out),
        "checkpoint": str(ckpt_path),
        "steps": step,
        "params": count_params(net),
        "elapsed_s": elapsed,
        "final_loss": ema_loss,
        "final_acc": ema_acc,
    }
    print(f"done: {step} steps in {elapsed / 60:.1f} min, loss {ema_loss}, wrote {out}", flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m restoregraph.lab.training.perception", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--data", required=True, help="folder holding CBSD432/ and ImageNetSample/")
    ap.add_argument("--subsets", nargs="+", default=list(TRAIN_SUBSETS))
    ap.add_argument("--out", required=True, help="where to write the final state dict (.pt)")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--widths", type=int, nargs="+", default=list(DEFAULT_WIDTHS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint file (default: OUT.ckpt)")
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--realistic", type=float, default=0.0, help="share of realistic-synthesis samples"
    )
    ap.add_argument(
        "--real-noise",
        type=float,
        default=0.0,
        help="share of real noisy PolyU crops (the noise fit's scene split 'fit' only)",
    )
    ap.add_argument("--global-view", type=float, default=0.0, help="share of whole-image views")
    ap.add_argument("--clean-share", type=float, default=0.12, help="clean share of realistic")
    args = ap.parse_args(argv)
    if any("polyu" in s.lower() for s in args.subsets):
        ap.error("PolyU images are real noisy captures, not clean training images")
    t = time.perf_counter()
    paths = list_images(args.data, args.subsets)
    images = load_uint8(paths)
    print(f"loaded {len(images)} clean images in {time.perf_counter() - t:.1f}s", flush=True)
    real_noise: list[np.ndarray] = []
    if args.real_noise > 0:
        from restoregraph.lab.training.noise_fit import polyu_noise_pairs

        real_noise = [noisy for noisy, _ in polyu_noise_pairs(args.data, split="fit")]
        print(f"loaded {len(real_noise)} real noisy photos (PolyU, fit scenes)", flush=True)
    mix = SampleMix(args.realistic, args.real_noise, args.global_view, args.clean_share)
    train(
        images,
        args.out,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        widths=args.widths,
        workers=args.workers,
        threads=args.threads,
        checkpoint=args.checkpoint,
        save_every=args.save_every,
        resume=args.resume,
        log_every=args.log_every,
        progress=not args.no_progress,
        mix=mix,
        real_noise=real_noise,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
