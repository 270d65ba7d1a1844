"""``restoregraph bench backends``: the learned tools' inference backends, measured.

Every measurement runs in a fresh worker process (``python -m restoregraph.lab.bench.backends``)
with ``RESTOREGRAPH_BACKEND`` set, so a variant pays its imports, loading and compilation as a
CLI run would; the parent times each worker from launch to the end of its first tool call.

Per variant: the load+first-call seconds (median over ``repeats`` fresh processes), the steady
seconds per megapixel of each benchmarked tool (median of ``calls`` calls per process, all
processes pooled), the PSNR gap to PyTorch eager on skimage images (max over images and tools
of |PSNR(variant, clean) - PSNR(torch, clean)|, and the lowest PSNR between the two outputs),
perception's steady milliseconds per image, and whether the agent's plans and accept/rollback
decisions on a few degraded images match the torch run exactly.

Variants beyond the selectable backends (bench only): ``torch-1t`` (1 torch thread),
``torch-cl`` (channels_last), ``torch-bf16`` (CPU autocast to bfloat16).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# variant -> (RESTOREGRAPH_BACKEND, bench-only tweak)
VARIANTS: dict[str, tuple[str, str]] = {
    "torch": ("torch", ""),
    "torch-1t": ("torch", "threads1"),
    "torch-cl": ("torch", "channels_last"),
    "torch-bf16": ("torch", "bf16"),
    "torch-compile": ("torch-compile", ""),
    "onnxruntime": ("onnxruntime", ""),
    "openvino": ("openvino", ""),
    "openvino-bf16": ("openvino-bf16", ""),
}
# the selectable backends whose agent runs are compared (torch-compile compiles each tool for
# each image shape: minutes per run, so it is timed on the tools only)
AGENT_VARIANTS: tuple[str, ...] = ("torch", "onnxruntime", "openvino", "openvino-bf16")
TOOLS: tuple[str, ...] = ("denoise.nafnet.mid", "dehaze.nafnet", "sr.compact.x2")
IMAGES: tuple[str, ...] = ("astronaut", "chelsea", "coffee")
# (sample, crop side, mixture, degradation seed, run settings): the agent-decision cases
AGENT_CASES: tuple[tuple[str, int, list[tuple[str, int]], int, dict[str, Any]], ...] = (
    ("astronaut", 192, [("noise", 2), ("jpeg", 2)], 0, {}),
    ("coffee", 192, [("haze", 2), ("jpeg", 1)], 2, {"mode": "stepwise", "seed": 3}),
    ("astronaut", 160, [("low_light", 2), ("noise", 1)], 4, {"max_steps": 4}),
    ("chelsea", 192, [("rain", 2), ("noise", 1)], 1, {"planner": "fixed"}),
)


@dataclass
class BackendsConfig:
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    repeats: int = 3
    calls: int = 3
    size: int = 512
    agent: bool = True


def _crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(img[y : y + s, x : x + s, :3])


def _sample(name: str, size: int) -> np.ndarray:
    import skimage.data

    from restoregraph.imageio import as_float_image

    return as_float_image(_crop(np.asarray(getattr(skimage.data, name)()), size))


def _apply_tweak(tweak: str) -> None:
    """Bench-only variants of the torch backend, applied to every engine this process loads."""
    if not tweak:
        return
    import torch

    from restoregraph.tools.backends import torch_eager

    if tweak == "threads1":
        torch.set_num_threads(1)
        return
    original = torch_eager.TorchEngine.__init__

    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        module = self.desc.model
        if tweak == "channels_last":
            module.to(memory_format=torch.channels_last)

            def fn(x: Any) -> Any:
                return module(x.contiguous(memory_format=torch.channels_last)).contiguous()
        else:  # bf16

            def fn(x: Any) -> Any:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(x).float()

        self._fn = fn

    torch_eager.TorchEngine.__init__ = patched  # type: ignore[method-assign]


def worker(mode: str, tweak: str, size: int, calls: int, out_dir: Path) -> dict[str, Any]:
    """What one fresh process measures (``mode``: ``first``, ``steady`` or ``agent``)."""
    _apply_tweak(tweak)
    from restoregraph.tools import default_registry

    reg = default_registry()
    img = _sample("astronaut", size)
    result: dict[str, Any] = {}
    if mode == "first":
        out = reg.get(TOOLS[0]).run(img)
        result["checksum"] = float(np.asarray(out).mean())
        return result
    if mode == "steady":
        mp = img.shape[0] * img.shape[1] / 1e6
        for tool in TOOLS:
            run = reg.get(tool).run
            run(img)  # load, compile
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                run(img)
                times.append(time.perf_counter() - t0)
            result[tool] = [t / mp for t in times]
            for name in IMAGES:  # outputs for the PSNR comparison
                np.save(out_dir / f"{tool}-{name}.npy", run(_degraded(tool, name, size)))
        result["perception_ms"] = _perception_ms(img, calls)
        return result
    return _agent(out_dir)


def _degraded(tool: str, name: str, size: int) -> np.ndarray:
    from restoregraph.degrade import apply_mixture

    clean = _sample(name, size)
    kind = {"denoise": ("noise", 2), "dehaze": ("haze", 2), "sr": ("low_resolution", 2)}
    mixture = [kind[tool.split(".")[0]]]
    out, _ = apply_mixture(clean, mixture, seed=0)
    if tool.startswith("sr."):  # the SR tool doubles the size: give it the half-size image
        import cv2

        out = cv2.resize(out, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    return np.asarray(out, np.float32)


def _perception_ms(img: np.ndarray, calls: int) -> float:
    """The default perceiver on one image, steady ms: the perception CNN's ONNX export on the
    ONNX variants (restoregraph/perception/exported.py), PyTorch on the torch ones."""
    from restoregraph.perception import default_perceiver

    p = default_perceiver()
    p.perceive(img)
    times = []
    for _ in range(max(calls, 5)):
        t0 = time.perf_counter()
        p.perceive(img)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _agent(out_dir: Path) -> dict[str, Any]:
    from restoregraph.core.settings import RunContext
    from restoregraph.degrade import apply_mixture
    from restoregraph.imageio import load_image, save_image
    from restoregraph.runner import Runner

    runs = []
    t0 = time.perf_counter()
    for i, (name, size, mixture, seed, settings) in enumerate(AGENT_CASES):
        degraded, _ = apply_mixture(_sample(name, size), mixture, seed=seed)
        src = save_image(degraded, out_dir / f"in{i}.png")
        out = out_dir / f"out{i}.png"
        result = Runner(out_dir / "home").start(src, out, RunContext(**settings))
        np.save(out_dir / f"agent{i}.npy", np.asarray(load_image(out), np.float32))
        runs.append(
            {
                "plans": [
                    str(e.get("plan", "")) for e in result.events if e.get("event") == "plan"
                ],
                "decisions": [[h["tool"], h["status"]] for h in result.history],
            }
        )
    return {"runs": runs, "seconds": time.perf_counter() - t0}


def _spawn(
    variant: str, mode: str, cfg: BackendsConfig, out_dir: Path, export_dir: Path
) -> tuple[float, dict[str, Any]]:
    backend, tweak = VARIANTS[variant]
    env = dict(os.environ)
    env.update(
        RESTOREGRAPH_BACKEND=backend,
        RESTOREGRAPH_EXPORT_DIR=str(export_dir),
        RESTOREGRAPH_HOME=str(out_dir / "home"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "restoregraph.lab.bench.backends",
        mode,
        tweak or "-",
        str(cfg.size),
        str(cfg.calls),
        str(out_dir),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{variant} {mode} worker failed: {' | '.join(tail)}")
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def run_backends_bench(cfg: BackendsConfig, log: Any = print) -> dict[str, Any]:
    from restoregraph.tools.backends import installed

    root = Path(tempfile.mkdtemp(prefix="rg-bench-backends-"))
    export_dir = root / "exported"
    # export once (timed), so the per-variant first-call times measure a warm cache
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "restoregraph.cli.main",
            "tools",
            "export",
            "--dir",
            str(export_dir),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    export_seconds = time.perf_counter() - t0
    variants = [v for v in cfg.variants if installed(VARIANTS[v][0])]
    rows: dict[str, dict[str, Any]] = {v: {"first": [], "steady": {}} for v in variants}
    # interleave the variants, round by round, so machine noise spreads over all of them
    for r in range(cfg.repeats):
        for v in variants:
            log(f"round {r + 1}/{cfg.repeats}: {v} first call")
            sec, _ = _spawn(v, "first", cfg, root / v / f"first{r}", export_dir)
            rows[v]["first"].append(sec)
    for v in variants:
        log(f"{v}: steady state and outputs")
        _, steady = _spawn(v, "steady", cfg, root / v / "steady", export_dir)
        rows[v]["steady"] = steady
        if cfg.agent and v in AGENT_VARIANTS:
            log(f"{v}: agent runs")
            _, agent = _spawn(v, "agent", cfg, root / v / "agent", export_dir)
            rows[v]["agent"] = agent
    ref = root / "torch" / "steady"
    for v in variants:
        d_psnr, min_psnr = 0.0, float("inf")
        for tool in TOOLS:
            for name in IMAGES:
                a = np.load(root / v / "steady" / f"{tool}-{name}.npy")
                b = np.load(ref / f"{tool}-{name}.npy")
                clean = _sample(name, cfg.size)
                d_psnr = max(d_psnr, abs(_psnr(a, clean) - _psnr(b, clean)))
                min_psnr = min(min_psnr, _psnr(a, b))
        rows[v]["d_psnr"] = d_psnr
        rows[v]["psnr_vs_torch"] = min_psnr
        if "agent" in rows[v]:
            same = rows[v]["agent"]["runs"] == rows["torch"]["agent"]["runs"]
            gaps = [
                _psnr(
                    np.load(root / v / "agent" / f"agent{i}.npy"),
                    np.load(root / "torch" / "agent" / f"agent{i}.npy"),
                )
                for i in range(len(AGENT_CASES))
            ]
            rows[v]["agent_same"] = same
            rows[v]["agent_min_psnr"] = min(gaps)
    return {"rows": rows, "export_seconds": export_seconds, "config": cfg, "variants": variants}


def backends_markdown(result: dict[str, Any]) -> str:
    cfg: BackendsConfig = result["config"]
    rows = result["rows"]
    lines = [
        "",
        f"Fresh process per measurement; load+first call: a worker process from launch to the "
        f"end of its first `{TOOLS[0]}` call on a {cfg.size} px image (median of "
        f"{cfg.repeats} processes, the variants interleaved). Steady s/MP: median of "
        f"{cfg.calls} calls after the first, {cfg.size} px input. dPSNR: max over "
        f"{', '.join(TOOLS)} x {', '.join(IMAGES)} of |PSNR(variant, clean) - PSNR(torch, "
        "clean)|; 'vs torch': the lowest PSNR between the variant's and torch's outputs. "
        f"Agent: plans and accept/rollback decisions on {len(AGENT_CASES)} degraded images "
        "identical to the torch run, the lowest PSNR between the outputs, and the runs' wall time (perception, planning, tools, metrics; torch-compile and the bench-only variants skip it). Perception runs "
        "its ONNX export on the ONNX variants, PyTorch on the torch ones. One-time ONNX export "
        f"of all tools: {result['export_seconds']:.1f} s. The machine is shared (2 cores, "
        "other jobs running): medians, and differences under ~20 % are noise.",
        "",
        "| variant | load+first call (s) | "
        + " | ".join(f"{t} s/MP" for t in TOOLS)
        + " | perception ms | dPSNR (dB) | vs torch (dB) | agent same | agent vs torch (dB)"
        " | agent s |",
        "|---" * (8 + len(TOOLS)) + "|",
    ]
    for v in result["variants"]:
        r = rows[v]
        steady = [f"{statistics.median(r['steady'][t]):.2f}" for t in TOOLS]
        agent = ("yes" if r["agent_same"] else "**no**") if "agent_same" in r else "-"
        agent_psnr = f"{r['agent_min_psnr']:.1f}" if "agent_min_psnr" in r else "-"
        agent_s = f"{r['agent']['seconds']:.1f}" if "agent" in r else "-"
        lines.append(
            f"| {v} | {statistics.median(r['first']):.2f} | "
            + " | ".join(steady)
            + f" | {r['steady']['perception_ms']:.0f} | {r['d_psnr']:.3f} | "
            f"{r['psnr_vs_torch']:.1f} | {agent} | {agent_psnr} | {agent_s} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the worker: mode tweak size calls out_dir
    _mode, _tweak, _size, _calls, _out = sys.argv[1:6]
    _res = worker(_mode, "" if _tweak == "-" else _tweak, int(_size), int(_calls), Path(_out))
    print(json.dumps(_res))
