"""``restoregraph data build``: the pipeline-search data set (RestoreAgent section 3.2.2).

For each sample ``i`` (deterministic given the build's seed and ``i`` alone): a clean crop of a
training image, a random mixture of 1-4 degradations (:mod:`.mixtures`), then EVERY pipeline
over the mixture's tasks -- every order x every model of the search toolbox (:mod:`.toolbox`)
-- run as a prefix tree (:func:`.tree.walk_tree`, each intermediate image computed once). Every
tree node is measured against the clean crop; the final images are scored with the objective
(``restoregraph.metrics.objective_scores`` over the image's pipelines) and ranked. The format is
written down in ``docs/search_data.md``.

Resumable: a sample is appended to ``samples.jsonl`` (with its images and node features written
first) once it is finished; a new run skips the ids already there and ignores a torn last line.
Samples are appended in id order whatever the parallelism (``workers`` processes, or Ray tasks),
so a serial, a parallel and a resumed build write the same ``samples.jsonl``.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restoregraph.core.errors import InputError, OutputError
from restoregraph.core.util import atomic_write
from restoregraph.lab.search.mixtures import (
    check_mixtures,
    mixture_kind,
    mixture_tasks,
    perception_levels,
    sample_mixture,
)
from restoregraph.lab.search.toolbox import SearchToolbox
from restoregraph.planners.tree import (
    Pipeline,
    TreeStats,
    enumerate_pipelines,
    percentile_of_rank,
    pipeline_total,
    rank_scores,
    walk_tree,
)

FORMAT_VERSION = 1
SAMPLES = "samples.jsonl"
MANIFEST = "manifest.json"
BUILD_LOG = "build_log.jsonl"  # per sample: seconds, tool calls (timings: not in samples.jsonl)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# Folders of the training data that hold clean photos (PolyU holds real noisy captures).
CLEAN_SUBSETS: tuple[str, ...] = ("CBSD432", "ImageNetSample")
# manifest keys that must match for a build to resume into an existing directory
RESUME_KEYS = (
    "version",
    "objective",
    "toolbox",
    "crop",
    "seed",
    "metrics",
    "features",
    "mixtures",
    "leaf_features",
    "realistic",
)
# a manifest written before a key existed means that key's default
RESUME_DEFAULTS: dict[str, Any] = {"mixtures": "default", "leaf_features": False, "realistic": 0.0}


@dataclass
class BuildConfig:
    source: str  # folder of clean images
    out: str  # the search-data directory
    n: int
    toolbox: SearchToolbox
    seed: int = 0
    crop: int = 128
    objective: str = "balanced"
    features: bool = True  # node features for the embedded planner (features.npz)
    leaf_features: bool = False  # also every final image's features (the plan critic's data)
    command: str = ""
    toolbox_spec: str = "default"
    mixtures: str = "default"  # MIXTURE_SETS name, or a list of kinds (parse_mixture_list)
    # share of samples whose mixture is synthesised with restoregraph.degrade.realistic (depth
    # haze, lens raindrops, camera noise through a raw pipeline, ...) instead of the project's
    # own synthesis; the same types and levels, so the search and its labels are unchanged
    realistic: float = 0.0


@dataclass
class SampleResult:
    index: int
    record: dict[str, Any]
    files: dict[str, bytes]  # path relative to the data directory -> content
    seconds: float
    tool_calls: int
    pipelines: int


@dataclass
class BuildSummary:
    out: Path
    built: int  # samples built by this run
    skipped: int  # samples already present (resume)
    pipelines: int  # pipelines scored by this run
    tool_calls: int
    wall_s: float
    cpu_s: float  # sum of per-sample seconds (one worker each)
    workers: int
    failed: list[str] = field(default_factory=list)

    @property
    def pipelines_per_s(self) -> float:
        return self.pipelines / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def pipelines_per_worker_s(self) -> float:
        return self.pipelines / self.cpu_s if self.cpu_s > 0 else math.nan


# -- sources ----------------------------------------------------------------------------------
def list_sources(root: str | Path) -> list[str]:
    """Clean source images under ``root`` as sorted paths relative to it: the ``CLEAN_SUBSETS``
    folders when present, else every image below ``root`` (never a PolyU folder)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base}: no such data folder (e.g. ../shared/data/train)")
    dirs = [base / s for s in CLEAN_SUBSETS if (base / s).is_dir()]
    files: list[Path] = []
    for d in dirs or [base]:
        files.extend(
            p
            for p in d.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and "polyu" not in str(p.relative_to(base)).lower()
        )
    rels = sorted(p.relative_to(base).as_posix() for p in files)
    if not rels:
        raise InputError(f"{base}: holds no images")
    return rels


def sample_seed(seed: int, index: int) -> int:
    from restoregraph.degrade import step_seed

    return step_seed(seed, index) & 0x7FFFFFFF


def source_of(sources: Sequence[str], seed: int, index: int) -> str:
    """Sample ``index``'s source: a seeded permutation, so the first len(sources) samples use
    distinct images."""
    perm = np.random.default_rng([seed, 0x5EA]).permutation(len(sources))
    return sources[int(perm[index % len(sources)])]


def sample_id(index: int) -> str:
    return f"{index:06d}"


# -- one sample -------------------------------------------------------------------------------
_REGISTRY: Any = None


def _registry() -> Any:
    global _REGISTRY
    if _REGISTRY is None:
        from restoregraph.tools import default_registry

        _REGISTRY = default_registry()
    return _REGISTRY


def metric_names(objective: str) -> list[str]:
    from restoregraph.metrics import OBJECTIVES

    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    return list(dict.fromkeys(["psnr", "ssim", *OBJECTIVES[objective]]))


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    from restoregraph.imageio import to_uint8

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _round(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(f"{v:.6g}") for k, v in metrics.items()}


def degrade_sample(
    clean: np.ndarray, mixture: Sequence[tuple[str, int]], seed: int, realistic: bool
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``clean`` degraded by ``mixture`` (in order) and what was applied: the project's synthesis
    (``restoregraph.degrade.apply_mixture``) or, when ``realistic``, the realistic one
    (``restoregraph.degrade.realistic.apply_realistic``, each type as its perception type)."""
    if not realistic:
        from restoregraph.degrade import apply_mixture

        out, infos = apply_mixture(clean, list(mixture), seed=seed)
        return out, [info.to_dict() for info in infos]
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION
    from restoregraph.degrade.realistic import apply_realistic

    rng = np.random.default_rng([seed, 0xBEA1])
    image = clean
    applied: list[dict[str, Any]] = []
    for dtype, level in mixture:
        record: dict[str, Any] = {}
        ptype = PERCEPTION_TYPE_FOR_DEGRADATION[dtype]
        image = apply_realistic(image, ptype, int(level), rng, record=record)
        params = {
            k: (v if isinstance(v, str | bool) else float(f"{float(v):.6g}"))
            for k, v in record.items()
        }
        applied.append(
            {"type": dtype, "level": int(level), "synthesis": "realistic", "params": params}
        )
    return image, applied


def is_realistic(cfg: BuildConfig, seed: int) -> bool:
    """Whether the sample of ``seed`` is synthesised realistically (a draw of its own, so the
    other samples are the ones a build without ``realistic`` makes)."""
    if cfg.realistic <= 0:
        return False
    return bool(np.random.default_rng([seed, 0x5EA1]).random() < cfg.realistic)


def build_sample(cfg: BuildConfig, sources: Sequence[str], index: int) -> SampleResult:
    """Build sample ``index`` (deterministic given ``cfg`` and ``index``)."""
    import torch

    from restoregraph.imageio import as_float_image, load_image
    from restoregraph.lab.common import quantize8
    from restoregraph.metrics import OBJECTIVES, compute, match_size, objective_scores

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sid = sample_id(index)
    seed = sample_seed(cfg.seed, index)
    rng = np.random.default_rng(seed)
    source = source_of(sources, cfg.seed, index)
    full = as_float_image(load_image(Path(cfg.source) / source))
    h, w = full.shape[:2]
    ch, cw = min(cfg.crop, h), min(cfg.crop, w)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    clean = quantize8(full[y : y + ch, x : x + cw])
    mixture = sample_mixture(rng, cfg.toolbox, cfg.mixtures)
    realistic = is_realistic(cfg, seed)
    degraded_f, applied = degrade_sample(clean, mixture, seed, realistic)
    degraded = quantize8(degraded_f)
    tasks = [t for t in mixture_tasks(mixture) if t in cfg.toolbox]
    models = {t: cfg.toolbox[t] for t in tasks}
    pipelines = enumerate_pipelines(models, max_pipelines=max(1, pipeline_total(models)))

    registry = _registry()
    names = metric_names(cfg.objective)
    node_index: dict[Pipeline, int] = {}
    nodes: list[dict[str, Any]] = []
    images: dict[Pipeline, np.ndarray] = {}
    feats: list[np.ndarray] = []
    feat_paths: list[str] = []
    finals: dict[Pipeline, tuple[dict[str, float], str]] = {}
    if cfg.features:
        from restoregraph.planners.features import image_features

    def on_node(prefix: Pipeline, image: np.ndarray | None, error: str) -> None:
        node_index[prefix] = len(nodes)
        node: dict[str, Any] = {"path": list(prefix), "metrics": {}, "image": None}
        if image is None:
            node["error"] = error
        else:
            node["metrics"] = dict(compute(names, match_size(image, clean), clean))
            images[prefix] = np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)
            # a leaf is never a decision point; its features are the plan critic's data
            if cfg.features and (len(prefix) < len(tasks) or cfg.leaf_features):
                feat_paths.append("|".join(prefix))
                feats.append(image_features(image))
        nodes.append(node)

    def on_final(p: Pipeline, image: np.ndarray | None, error: str) -> None:
        finals[p] = (nodes[node_index[p]]["metrics"], error)

    stats = walk_tree(degraded, pipelines, registry, on_final=on_final, on_node=on_node)

    ordered = sorted(finals)
    ok = [p for p in ordered if not finals[p][1]]
    scores = {p: math.nan for p in ordered}
    if ok:
        objective_metrics = OBJECTIVES[cfg.objective]
        measured = [{k: finals[p][0][k] for k in objective_metrics} for p in ok]
        for p, s in zip(ok, objective_scores(measured, cfg.objective), strict=True):
            scores[p] = float(s)
    ranks = dict(zip(ordered, rank_scores([scores[p] for p in ordered]), strict=True))
    n = len(ordered)
    by_rank = sorted(ordered, key=lambda p: (ranks[p], p))
    best, worst = by_rank[0], max(ok, key=lambda p: (ranks[p], p)) if ok else by_rank[-1]

    files: dict[str, bytes] = {}
    folder = f"images/{sid}"
    files[f"{folder}/clean.png"] = _png(clean)
    files[f"{folder}/degraded.png"] = _png(degraded)
    nodes[0]["image"] = f"{folder}/degraded.png"
    for p in (best, worst):
        for i in range(1, len(p) + 1):
            k = node_index[p[:i]]
            if p[:i] in images and nodes[k]["image"] is None:
                nodes[k]["image"] = f"{folder}/n{k}.png"
                files[f"{folder}/n{k}.png"] = _png(images[p[:i]].astype(np.float32) / 65535)
    for node in nodes:
        node["metrics"] = _round(node["metrics"])
    record: dict[str, Any] = {
        "id": sid,
        "source": source,
        "crop": [y, x, ch, cw],
        "seed": seed,
        "mixture": [[t, int(lvl)] for t, lvl in mixture],
        "degradations": applied,
        "synthesis": "realistic" if realistic else "project",
        "kind": mixture_kind(mixture),
        "perception": perception_levels(mixture),
        "tasks": tasks,
        "degraded": f"{folder}/degraded.png",
        "clean": f"{folder}/clean.png",
        "nodes": nodes,
        "pipelines": [
            {
                "steps": list(p),
                "metrics": _round(finals[p][0]),
                "score": None if not math.isfinite(scores[p]) else round(scores[p], 6),
                "rank": ranks[p],
                "percentile": round(percentile_of_rank(ranks[p], n), 4),
                **({"error": finals[p][1]} if finals[p][1] else {}),
            }
            for p in by_rank
        ],
        "tool_calls": stats.tool_calls,
    }
    if cfg.features:
        record["features"] = f"{folder}/features.npz"
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            paths=np.array(feat_paths, dtype=str),
            features=(np.stack(feats) if feats else np.zeros((0, 0))).astype(np.float16),
        )
        files[f"{folder}/features.npz"] = buf.getvalue()
    return SampleResult(
        index=index,
        record=record,
        files=files,
        seconds=time.perf_counter() - t0,
        tool_calls=stats.tool_calls,
        pipelines=n,
    )


# -- the data directory -----------------------------------------------------------------------


def read_done(out: Path) -> list[str]:
    """Ids of the complete samples in ``out/samples.jsonl``; a torn last line is cut off the
    file (it is redone)."""
    path = out / SAMPLES
    if not path.exists():
        return []
    raw = path.read_bytes()
    ids: list[str] = []
    good = 0
    pos = 0
    for line in raw.splitlines(keepends=True):
        end = pos + len(line)
        if line.endswith(b"\n"):
            try:
                ids.append(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                break
            good = end
        pos = end
    if good < len(raw):
        with path.open("r+b") as fh:
            fh.truncate(good)
    return ids


def manifest_for(cfg: BuildConfig) -> dict[str, Any]:
    from restoregraph.planners.features import feature_fingerprint

    return {
        "version": FORMAT_VERSION,
        "objective": cfg.objective,
        "toolbox": cfg.toolbox,
        "crop": cfg.crop,
        "seed": cfg.seed,
        "mixtures": cfg.mixtures,
        "leaf_features": bool(cfg.leaf_features),
        "realistic": float(cfg.realistic),
        "n_images": cfg.n,
        "command": cfg.command,
        "source": cfg.source,
        "metrics": metric_names(cfg.objective),
        "features": (
            {"kind": "perception_cnn_head", "perception_sha256": feature_fingerprint()}
            if cfg.features
            else None
        ),
    }


def prepare(cfg: BuildConfig) -> tuple[Path, list[str]]:
    """Create or reopen the data directory; return it and the ids already built."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory")
    manifest = manifest_for(cfg)
    mpath = out / MANIFEST
    if mpath.is_file():
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except ValueError:
            raise OutputError(f"{mpath}: unreadable; build into a new directory") from None
        diff = [
            k
            for k in RESUME_KEYS
            if old.get(k, RESUME_DEFAULTS.get(k)) != manifest.get(k, RESUME_DEFAULTS.get(k))
        ]
        if diff:
            raise OutputError(
                f"{out} holds search data built with other settings ({', '.join(diff)}); "
                "use the same options to resume, or another output directory"
            )
        manifest["n_images"] = max(int(old.get("n_images", 0)), cfg.n)
    elif out.is_dir() and any(out.iterdir()):
        raise OutputError(f"{out}: not empty and not search data; choose a new directory")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(mpath, (json.dumps(manifest, indent=1) + "\n").encode())
    return out, read_done(out)


def commit(out: Path, result: SampleResult) -> None:
    """Write a finished sample: its files first, then its line (flushed and synced)."""
    for rel, data in result.files.items():
        atomic_write(out / rel, data)
    line = json.dumps(result.record, separators=(",", ":"), sort_keys=False) + "\n"
    with (out / SAMPLES).open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    log = {
        "id": result.record["id"],
        "seconds": round(result.seconds, 3),
        "tool_calls": result.tool_calls,
        "pipelines": result.pipelines,
        "kind": result.record["kind"],
    }
    with (out / BUILD_LOG).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(log) + "\n")


# -- running many ----------------------------------------------------------------------------
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _serial(cfg: BuildConfig, sources: Sequence[str], todo: Sequence[int]) -> Iterator[Any]:
    for i in todo:
        yield build_sample(cfg, sources, i)


def _processes(
    cfg: BuildConfig, sources: Sequence[str], todo: Sequence[int], workers: int
) -> Iterator[Any]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = [pool.submit(build_sample, cfg, sources, i) for i in todo]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _ray(
    cfg: BuildConfig, sources: Sequence[str], todo: Sequence[int], address: str
) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the ray package (pip install 'restoregraph[ray]')") from None
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(_ray_task)
        cfg_ref, src_ref = ray.put(cfg), ray.put(list(sources))
        pending = [remote.remote(cfg_ref, src_ref, i) for i in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def _ray_task(cfg: BuildConfig, sources: list[str], index: int) -> SampleResult:
    _init_worker()
    return build_sample(cfg, sources, index)


def run_build(
    cfg: BuildConfig,
    workers: int = 1,
    ray_address: str | None = None,
    show_progress: bool = True,
    on_sample: Callable[[SampleResult], None] | None = None,
) -> BuildSummary:
    """Build (or resume) the search data ``cfg`` describes; samples committed in id order."""
    if cfg.n < 1:
        raise InputError(f"--n must be >= 1, got {cfg.n}")
    if cfg.crop < 32:
        raise InputError(f"--crop must be >= 32 px, got {cfg.crop}")
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if not 0.0 <= cfg.realistic <= 1.0:
        raise InputError(f"--realistic must be a share in [0, 1], got {cfg.realistic}")
    metric_names(cfg.objective)
    try:
        check_mixtures(cfg.mixtures, cfg.toolbox)
    except ValueError as exc:
        raise InputError(f"--mixtures: {exc}") from None
    sources = list_sources(cfg.source)
    out, done_ids = prepare(cfg)
    done = set(done_ids)
    todo = [i for i in range(cfg.n) if sample_id(i) not in done]
    # commit order: ids not yet present, ascending (resume keeps the file in id order)
    if ray_address:
        results = _ray(cfg, sources, todo, ray_address)
        n_workers = 0
    elif workers > 1 and len(todo) > 1:
        results = _processes(cfg, sources, todo, workers)
        n_workers = workers
    else:
        results = _serial(cfg, sources, todo)
        n_workers = 1
    skipped = sum(1 for i in range(cfg.n) if sample_id(i) in done)
    summary = BuildSummary(out, 0, skipped, 0, 0, 0.0, 0.0, n_workers)
    t0 = time.perf_counter()
    pending: dict[int, SampleResult] = {}
    queue = list(todo)
    with _progress(len(todo), show_progress) as advance:
        for res in results:
            pending[res.index] = res
            while queue and queue[0] in pending:
                r = pending.pop(queue.pop(0))
                commit(out, r)
                summary.built += 1
                summary.pipelines += r.pipelines
                summary.tool_calls += r.tool_calls
                summary.cpu_s += r.seconds
                summary.wall_s = time.perf_counter() - t0
                if on_sample is not None:
                    on_sample(r)
                advance(r, summary)
    summary.wall_s = time.perf_counter() - t0
    return summary


class _progress:
    """A rich progress bar with pipelines/second (silent when ``show`` is False)."""

    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show = total, show
        self._bar: Any = None

    def __enter__(self) -> Callable[[SampleResult, BuildSummary], None]:
        if self.show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("search"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("search", total=self.total, rate="")

        def advance(res: SampleResult, summary: BuildSummary) -> None:
            if self._bar is not None:
                rate = f"{summary.pipelines_per_s:.1f} pipelines/s" if summary.wall_s else ""
                self._bar.update(self._task, advance=1, rate=rate)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def config_dict(cfg: BuildConfig) -> dict[str, Any]:
    return asdict(cfg)


__all__ = [
    "BUILD_LOG",
    "BuildConfig",
    "BuildSummary",
    "FORMAT_VERSION",
    "MANIFEST",
    "SAMPLES",
    "SampleResult",
    "TreeStats",
    "build_sample",
    "degrade_sample",
    "list_sources",
    "read_done",
    "run_build",
    "sample_id",
    "source_of",
]
