"""Batch restore: every image of a folder, one checkpointed run (thread) per image, resumable.

``restoregraph restore DIR -o OUTDIR`` plans the batch (:func:`plan_batch`), then runs it
(:func:`run_batch`) in this process, in ``--workers N`` processes, or on a Ray cluster.

* Each image gets a run id derived from the batch id, the run settings and its relative path, so
  running the same command again finds the runs: finished images are not redone and a half-done
  image continues from its last checkpoint (``Runner.resume``).
* Each image gets its own seed derived from ``--seed`` and its relative path, so the outputs are
  the same whichever way (and in whatever order) the batch runs.
* Inputs are never written: an output that would land on an input is refused, and outputs an
  earlier, different batch left in OUTDIR are refused without ``--overwrite``.
* Outputs are ``OUTDIR/<stem>.png`` (lossless), written atomically; ``OUTDIR/summary.csv`` and
  ``summary.json`` list per image: status, perceived degradations, plan, scores and time.
* The batch holds a lock on OUTDIR while it runs: a second process on the same OUTDIR is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from restoregraph.core.errors import BatchError, InputError, OutputError, RestoreGraphError
from restoregraph.core.settings import RunContext, home_dir
from restoregraph.core.util import natural_key

MANIFEST = ".restoregraph-batch.json"
LOCK = ".restoregraph-batch.lock"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MANIFEST_VERSION = 1
# Test hook: "K:N" makes the batch set RESTOREGRAPH_CRASH_AFTER_STEPS=N before its K-th image
# (0-based, in-process runs only), so the process dies like ``kill -9`` inside that image.
CRASH_HOOK_ENV = "RESTOREGRAPH_BATCH_CRASH_AT"

SUMMARY_FIELDS = (
    "index",
    "image",
    "status",
    "output",
    "run_id",
    "seed",
    "perceived",
    "plan",
    "steps",
    "quality_in",
    "quality_out",
    "severity_in",
    "severity_out",
    "stop_reason",
    "seconds",
    "message",
)

# status of one image in the summary
RESTORED = "restored"  # run from the start in this invocation
RESUMED = "resumed"  # continued from a checkpoint of an interrupted earlier invocation
EARLIER = "earlier"  # finished by an earlier invocation; not redone
SKIPPED = "skipped"  # not a usable image (one-line reason in ``message``)
FAILED = "failed"  # the run raised; the batch went on (run the command again to retry)


@dataclass(frozen=True)
class BatchItem:
    """One file of the batch and everything needed to restore it in any process."""

    index: int
    rel: str  # path relative to the input folder (posix)
    src: str  # absolute input path
    out: str  # absolute output path
    run_id: str
    seed: int

    def job(
        self, batch_id: str, home: str, settings: dict[str, Any], overwrite: bool
    ) -> dict[str, Any]:
        return {
            "batch_id": batch_id,
            "index": self.index,
            "rel": self.rel,
            "src": self.src,
            "out": self.out,
            "run_id": self.run_id,
            "seed": self.seed,
            "home": home,
            "settings": settings,
            "overwrite": overwrite,
        }


@dataclass
class Batch:
    batch_id: str
    input_dir: Path
    output_dir: Path
    home: Path
    settings: dict[str, Any]  # RunContext.settings() of every image, seed excepted
    seed: int  # the base seed (each image's seed derives from it and its relative path)
    identity: dict[str, Any]  # what must match for a later invocation to resume this batch
    instruction: str
    overwrite: bool
    items: list[BatchItem]
    resumed: bool  # OUTDIR already held this batch

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / MANIFEST

    def jobs(self) -> list[dict[str, Any]]:
        settings = dict(self.settings, instruction=self.instruction)
        return [
            it.job(self.batch_id, str(self.home), settings, self.overwrite) for it in self.items
        ]


@dataclass
class BatchSummary:
    batch: Batch
    rows: list[dict[str, Any]]
    seconds: float
    csv_path: Path
    json_path: Path
    counts: dict[str, int] = field(default_factory=dict)


# ---- planning ---------------------------------------------------------------------------------
def _digest(*parts: str, n: int = 12) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:n]


def default_batch_id(input_dir: Path, output_dir: Path) -> str:
    """Deterministic from the two folders, so the same command finds its batch again."""
    return "b" + _digest(str(input_dir.resolve()), str(output_dir.resolve()))


def image_seed(seed: int, rel: str) -> int:
    """The seed of one image: independent of the batch id, the order and the worker."""
    return int(_digest(str(seed), rel, n=8), 16) % (2**31)


def _slug(rel: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(rel).stem)[:40].strip("-") or "image"


def run_id_for(batch_id: str, settings_digest: str, rel: str) -> str:
    return f"{batch_id}-{_slug(rel)}-{_digest(settings_digest, rel, n=10)}"


def scan(input_dir: Path) -> list[Path]:
    """Regular files of the folder (not recursive, dotfiles left out), in natural order."""
    files = [p for p in input_dir.iterdir() if not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: (natural_key(p.name), p.name))


def _output_names(files: list[Path]) -> dict[Path, str]:
    """``<stem>.png``; inputs sharing a stem (a.jpg, a.png) get ``<stem>_<ext>.png``."""
    stems: dict[str, int] = {}
    for p in files:
        stems[p.stem.lower()] = stems.get(p.stem.lower(), 0) + 1
    names = {}
    for p in files:
        ext = p.suffix.lower().lstrip(".")
        clash = stems[p.stem.lower()] > 1 and ext
        names[p] = f"{p.stem}_{ext}.png" if clash else f"{p.stem}.png"
    return names


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise OutputError(
            f"{path}: unreadable batch manifest (remove it, or choose another -o)"
        ) from None
    if not isinstance(data, dict) or "batch_id" not in data:
        raise OutputError(f"{path}: not a RestoreGraph batch manifest (choose another -o)")
    return data


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _comparable(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _check_folders(src_dir: Path, out_dir: Path, ctx: RunContext) -> None:
    """Refuse a missing input folder, an output that is a file, and ``--reference``."""
    if not src_dir.exists():
        raise InputError(f"{src_dir}: no such folder")
    if not src_dir.is_dir():
        raise InputError(f"{src_dir}: not a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder (a batch writes into a folder)")
    from restoregraph.imageio import SAVE_FORMATS

    if not out_dir.exists() and out_dir.suffix.lower() in SAVE_FORMATS:
        raise InputError(
            f"{src_dir} is a folder, so -o must name a folder, not an image file ({out_dir.name})"
        )
    if ctx.reference:
        raise InputError("--reference needs one image; it cannot be used with a folder")


def _earlier_batch(
    out_dir: Path, bid: str, identity: dict[str, Any], overwrite: bool
) -> tuple[dict[str, Any] | None, bool, set[str]]:
    """The manifest OUTDIR holds (if any), whether it is this batch (to resume), and the
    outputs it lists. Another batch's OUTDIR is refused without ``overwrite``."""
    manifest = _read_manifest(out_dir / MANIFEST) if out_dir.is_dir() else None
    resumed = False
    earlier_outputs: set[str] = set()
    if manifest is not None:
        earlier_outputs = {str(it.get("output", "")) for it in manifest.get("items", [])}
        same = manifest.get("batch_id") == bid and _comparable(
            manifest.get("identity", {})
        ) == _comparable(identity)
        if same:
            resumed = True
        elif not overwrite:
            old = manifest.get("identity", {})
            raise OutputError(
                f"{out_dir} holds batch {manifest.get('batch_id')!r} (from "
                f"{old.get('input_dir', '?')}, planner {old.get('settings', {}).get('planner')!r})"
                " with other settings; run it with the same settings to resume, pass "
                "--overwrite to replace its outputs, or choose another -o"
            )
    return manifest, resumed, earlier_outputs


def _input_files(
    src_dir: Path, out_dir: Path, manifest: dict[str, Any] | None, earlier_outputs: set[str]
) -> list[Path]:
    """The files of the input folder, less what this batch wrote there earlier."""
    return [
        p
        for p in scan(src_dir)
        if not (
            p.parent.resolve() == out_dir.resolve()
            and manifest is not None  # files this batch wrote earlier are not inputs
            and (p.name in earlier_outputs or p.name in (SUMMARY_CSV, SUMMARY_JSON))
        )
    ]


def _plan_items(
    files: list[Path], src_dir: Path, out_dir: Path, bid: str, settings_digest: str, seed: int
) -> list[BatchItem]:
    """One item per file; an output that would land on an input is refused."""
    inputs = {p.resolve() for p in files}
    names = _output_names(files)
    items: list[BatchItem] = []
    for i, p in enumerate(files):
        rel = p.relative_to(src_dir).as_posix()
        out_abs = Path(os.path.abspath(out_dir / names[p]))
        if out_abs.resolve() in inputs:
            raise OutputError(
                f"{out_abs}: refusing to overwrite the input file (choose another -o)"
            )
        items.append(
            BatchItem(
                index=i,
                rel=rel,
                src=str(p.resolve()),
                out=str(out_abs),
                run_id=run_id_for(bid, settings_digest, rel),
                seed=image_seed(seed, rel),
            )
        )
    for name in (SUMMARY_CSV, SUMMARY_JSON):
        if (out_dir / name).resolve() in inputs:
            raise OutputError(
                f"{out_dir / name}: refusing to overwrite an input file (choose another -o)"
            )
    return items


def _check_taken(out_dir: Path, items: list[BatchItem]) -> None:
    """Refuse outputs (or summary files) that exist in OUTDIR and are not from this batch."""
    taken = [Path(it.out) for it in items if Path(it.out).exists()]
    taken += [out_dir / n for n in (SUMMARY_CSV, SUMMARY_JSON) if (out_dir / n).exists()]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise OutputError(
            f"{taken[0]}{more}: already exist in {out_dir} and are not from this batch "
            "(pass --overwrite to replace them, or choose another -o)"
        )


def plan_batch(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    ctx: RunContext,
    *,
    home: str | os.PathLike[str] | None = None,
    batch_id: str | None = None,
    instruction: str = "",
    overwrite: bool = False,
) -> Batch:
    """Check the folders and decide every image's output, run id and seed. Writes nothing."""
    src_dir = Path(input_dir)
    out_dir = Path(output_dir)
    _check_folders(src_dir, out_dir, ctx)
    home_path = (Path(home) if home else home_dir()).resolve()
    bid = batch_id or default_batch_id(src_dir, out_dir)
    if not BATCH_ID_RE.match(bid):
        raise InputError(f"invalid batch id {bid!r}: use up to 40 letters, digits, '.', '_' or '-'")
    settings = ctx.settings()
    settings.pop("seed")
    settings["store_dir"] = settings["store_dir"] or str(home_path / "store")
    base_seed = ctx.seed
    identity = {
        "input_dir": str(src_dir.resolve()),
        "home": str(home_path),
        "seed": base_seed,
        "instruction": instruction,
        "settings": settings,
    }
    manifest, resumed, earlier_outputs = _earlier_batch(out_dir, bid, identity, overwrite)
    files = _input_files(src_dir, out_dir, manifest, earlier_outputs)
    settings_digest = _digest(_comparable(identity), bid)
    items = _plan_items(files, src_dir, out_dir, bid, settings_digest, base_seed)
    if not resumed and not overwrite and out_dir.is_dir():
        _check_taken(out_dir, items)
    return Batch(
        batch_id=bid,
        input_dir=src_dir.resolve(),
        output_dir=out_dir,
        home=home_path,
        settings=settings,
        seed=base_seed,
        identity=identity,
        instruction=instruction,
        overwrite=overwrite,
        items=items,
        resumed=resumed,
    )


def _manifest_data(batch: Batch) -> dict[str, Any]:
    return {
        "version": MANIFEST_VERSION,
        "batch_id": batch.batch_id,
        "identity": batch.identity,
        "updated": datetime.now(UTC).isoformat(),
        "items": [
            {
                "image": it.rel,
                "output": Path(it.out).name,
                "run_id": it.run_id,
                "seed": it.seed,
            }
            for it in batch.items
        ],
    }


# ---- one image (any process) ------------------------------------------------------------------
_RUNNERS: dict[str, Any] = {}


def _runner(home: str) -> Any:
    if home not in _RUNNERS:
        from restoregraph.runner import Runner

        _RUNNERS[home] = Runner(home)
    return _RUNNERS[home]


def _row_path(job: dict[str, Any]) -> Path:
    """Where a finished image's summary row is kept (read back when the batch runs again)."""
    return Path(job["home"]) / "batches" / job["batch_id"] / f"{job['run_id']}.json"


def _row_from_state(job: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    hist = list(state.get("history", []))
    accepted = [h["tool"] for h in hist if h["status"] == "accepted"]
    q_out = float(state.get("quality", 0.0))
    q_in = float(hist[0]["quality_before"]) if hist else q_out
    sev_out = sum(float(v) for v in (state.get("severity") or {}).values())
    sev_in = sum(float(v) for v in hist[0]["severity_before"].values()) if hist else sev_out
    perceived = state.get("perception") or {}
    return {
        "perceived": " ".join(f"{k}:{v}" for k, v in perceived.items()) or "none",
        "plan": " -> ".join(accepted) or "(none)",
        "steps": len(hist),
        "quality_in": round(q_in, 4),
        "quality_out": round(q_out, 4),
        "severity_in": round(sev_in, 4),
        "severity_out": round(sev_out, 4),
        "stop_reason": state.get("stop_reason", ""),
    }


def _base_row(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": job["index"],
        "image": job["rel"],
        "status": "",
        "output": "",
        "run_id": job["run_id"],
        "seed": job["seed"],
        "perceived": "",
        "plan": "",
        "steps": 0,
        "quality_in": None,
        "quality_out": None,
        "severity_in": None,
        "severity_out": None,
        "stop_reason": "",
        "seconds": None,
        "message": "",
    }


def restore_job(job: dict[str, Any]) -> dict[str, Any]:
    """Restore one image of a batch (idempotent: start, resume, or just report a finished run).

    Runs in the batch process, a worker process or a Ray worker; returns the summary row.
    Torch runs single-threaded here, whichever way the batch runs: the batch is parallel across
    images, and the same thread count keeps the outputs the same in every mode.
    """
    runner = _runner(job["home"])
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _restore_job(runner, job)
    finally:
        torch.set_num_threads(threads)


def _restore_job(runner: Any, job: dict[str, Any]) -> dict[str, Any]:
    row = _base_row(job)
    run_id = job["run_id"]
    meta_path = runner.run_dir(run_id) / "run.json"
    t0 = time.perf_counter()
    try:
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("finished") and Path(job["out"]).exists():
                saved = _row_path(job)
                if saved.exists():
                    return dict(json.loads(saved.read_text()), status=EARLIER, index=job["index"])
                row.update(_row_from_state(job, runner.state(run_id)))
                row.update(status=EARLIER, output=Path(job["out"]).name)
                return row
            status = EARLIER if meta.get("finished") else RESUMED
            result = runner.resume(run_id)
        else:
            settings = dict(job["settings"])
            instruction = settings.pop("instruction", "")
            ctx = RunContext.from_settings(dict(settings, seed=job["seed"]))
            try:
                result = runner.start(
                    job["src"],
                    job["out"],
                    ctx,
                    run_id=run_id,
                    instruction=instruction,
                    overwrite=job["overwrite"],
                )
            except InputError as exc:
                if meta_path.exists():
                    raise
                row.update(status=SKIPPED, message=str(exc).replace(job["src"], job["rel"]))
                return row
            status = RESTORED
    except RestoreGraphError as exc:
        row.update(status=FAILED, message=str(exc))
        return row
    except Exception as exc:  # one image's internal error must not end the batch
        msg = str(exc).splitlines()[0] if str(exc) else ""
        row.update(status=FAILED, message=f"internal error: {type(exc).__name__}: {msg}")
        return row
    row.update(_row_from_state(job, result.state))
    row.update(
        status=status,
        output=result.output.name if result.output else "",
        seconds=round(time.perf_counter() - t0, 3),
    )
    if result.output is None:
        row.update(status=FAILED, message="the run did not finish")
        return row
    saved = _row_path(job)
    saved.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(saved, json.dumps(row))
    return row


# ---- running ----------------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    """Worker initializer: a worker must not outlive a batch killed with -9 (it would keep
    writing to a thread that the next run resumes)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _run_local(jobs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    crash = os.environ.get(CRASH_HOOK_ENV, "")
    at, _, steps = crash.partition(":")
    for n, job in enumerate(jobs):
        if crash and n == int(at):
            os.environ["RESTOREGRAPH_CRASH_AFTER_STEPS"] = steps or "1"
        yield restore_job(job)


def _run_processes(jobs: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # no fork of a process that holds torch / SQLite state
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending = {pool.submit(restore_job, j) for j in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        except BrokenProcessPool:
            raise BatchError(
                "a worker process died; run the same command again to resume the batch"
            ) from None
        finally:
            for fut in pending:
                fut.cancel()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line: ray.init keeps retrying an unreachable head for minutes."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms: ray.init decides
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(
            f"--ray {address}: cannot reach the Ray head ({exc.strerror or exc}); start it with "
            "`ray start --head`, or use --ray local"
        ) from None


def _run_ray(jobs: list[dict[str, Any]], address: str, workers: int) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs the 'ray' package (pip install 'restoregraph[ray]')"
        ) from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == "local":
            if workers > 1:
                kwargs["num_cpus"] = workers
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"--ray {address}: cannot connect to the Ray cluster ({msg})"
            ) from None
        except Exception as exc:  # e.g. "The current node timed out during startup"
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BatchError(
                f"--ray {address}: Ray did not start ({msg}); run the same command again"
            ) from None
        started = True
    try:
        remote = ray.remote(max_retries=2)(restore_job)
        window = max(8, 2 * int(ray.cluster_resources().get("CPU", 1)))
        queue = list(reversed(jobs))
        running: list[Any] = []
        while queue or running:
            while queue and len(running) < window:
                running.append(remote.remote(queue.pop()))
            done, running = ray.wait(running, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


class _OutputLock:
    """An exclusive lock on OUTDIR for the life of the batch (released by the OS on kill -9)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK
        self.fd: int | None = None

    def __enter__(self) -> _OutputLock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise OutputError(
                f"{self.path.parent}: another batch is writing there right now; wait for it "
                "to finish or choose another -o"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _clean_partial_outputs(batch: Batch) -> int:
    """Remove temp files an earlier, killed invocation left beside its outputs."""
    removed = 0
    for it in batch.items:
        out = Path(it.out)
        for tmp in out.parent.glob(f".{out.name}.*.part"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def run_batch(
    batch: Batch,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Restore every image of ``batch``; write the summary files; return the rows."""
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if ray_address:
        _check_reachable(ray_address)  # before anything is written
    batch.output_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _OutputLock(batch.output_dir):
        _clean_partial_outputs(batch)
        _write_atomic(batch.manifest_path, json.dumps(_manifest_data(batch), indent=2))
        jobs = batch.jobs()
        rows: list[dict[str, Any]] = []
        if ray_address:
            stream: Iterable[dict[str, Any]] = _run_ray(jobs, ray_address, workers)
        elif workers > 1 and len(jobs) > 1:
            stream = _run_processes(jobs, min(workers, len(jobs)))
        else:
            stream = _run_local(jobs)
        try:
            for row in stream:
                rows.append(row)
                if on_row is not None:
                    on_row(row)
        finally:  # on an interruption, stop the workers' queue now (running images finish)
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        rows.sort(key=lambda r: int(r["index"]))
        summary = BatchSummary(
            batch=batch,
            rows=rows,
            seconds=time.perf_counter() - t0,
            csv_path=batch.output_dir / SUMMARY_CSV,
            json_path=batch.output_dir / SUMMARY_JSON,
        )
        for r in rows:
            summary.counts[r["status"]] = summary.counts.get(r["status"], 0) + 1
        write_summary(summary)
    return summary


def write_summary(summary: BatchSummary) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in summary.rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in SUMMARY_FIELDS})
    _write_atomic(summary.csv_path, buf.getvalue())
    b = summary.batch
    data = {
        "batch_id": b.batch_id,
        "input_dir": str(b.input_dir),
        "output_dir": str(b.output_dir.resolve()),
        "home": str(b.home),
        "settings": b.settings,
        "seed": b.seed,
        "seconds": round(summary.seconds, 3),
        "counts": summary.counts,
        "images": [{k: r.get(k) for k in SUMMARY_FIELDS} for r in summary.rows],
    }
    _write_atomic(summary.json_path, json.dumps(data, indent=2))


# ---- command line -----------------------------------------------------------------------------
MAX_TABLE_ROWS = 200  # the printed table; summary.csv always has every image


def summary_table(summary: BatchSummary) -> Any:
    from rich.table import Table

    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    table = Table(
        title=f"batch {summary.batch.batch_id}: {len(summary.rows)} files ({counts or 'none'}) "
        f"in {summary.seconds:.1f} s"
    )
    for col in ("#", "image", "status", "perceived", "plan", "quality", "steps", "s"):
        table.add_column(col, overflow="fold")
    colours = {RESTORED: "green", RESUMED: "green", EARLIER: "cyan", SKIPPED: "yellow"}
    for r in summary.rows[:MAX_TABLE_ROWS]:
        colour = colours.get(r["status"], "red")
        quality = (
            f"{r['quality_in']:.2f}→{r['quality_out']:.2f}" if r["quality_out"] is not None else ""
        )
        table.add_row(
            str(r["index"] + 1),
            r["image"],
            f"[{colour}]{r['status']}[/{colour}]",
            r["perceived"] or r["message"],
            r["plan"],
            quality,
            str(r["steps"] or ""),
            "" if r["seconds"] is None else f"{r['seconds']:.2f}",
        )
    if len(summary.rows) > MAX_TABLE_ROWS:
        table.caption = f"first {MAX_TABLE_ROWS} of {len(summary.rows)}; all in summary.csv"
    return table


def restore_folder(
    input_dir: Path,
    output_dir: Path,
    ctx: RunContext,
    *,
    home: Path | None,
    batch_id: str | None,
    instruction: str,
    overwrite: bool,
    workers: int,
    ray_address: str | None,
    console: Any,
    out_console: Any,
) -> BatchSummary:
    """``restoregraph restore DIR -o OUTDIR``: plan, run with a progress bar, print the table."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    batch = plan_batch(
        input_dir,
        output_dir,
        ctx,
        home=home,
        batch_id=batch_id,
        instruction=instruction,
        overwrite=overwrite,
    )
    if not batch.items:
        raise InputError(f"{input_dir}: no files to restore")
    how = f"Ray ({ray_address})" if ray_address else f"{workers} worker(s)"
    verb = "resuming" if batch.resumed else "starting"
    console.print(
        f"{verb} batch [bold]{batch.batch_id}[/bold]: {len(batch.items)} files → "
        f"{batch.output_dir} with {how}"
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("restoring", total=len(batch.items))

    def on_row(row: dict[str, Any]) -> None:
        progress.update(task, advance=1, description=f"{row['status']} {row['image']}")
        if row["status"] == FAILED:
            progress.console.print(f"[red]failed[/red] {row['image']}: {row['message']}")

    try:
        with progress:
            summary = run_batch(batch, workers=workers, ray_address=ray_address, on_row=on_row)
    except KeyboardInterrupt:
        console.print("error: interrupted; run the same command again to resume the batch")
        raise SystemExit(130) from None
    out_console.print(summary_table(summary))
    console.print(f"summary: {summary.csv_path} and {summary.json_path.name}")
    failed = summary.counts.get(FAILED, 0)
    if failed:
        raise BatchError(
            f"{failed} of {len(summary.rows)} images failed (see {summary.csv_path}); "
            "run the same command again to retry them"
        )
    return summary
