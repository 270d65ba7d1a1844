"""``restoregraph bench real``: perception and the whole agent on real photos, as a section.

Three parts, on the data of ``../shared/data`` (``--data``; ``real/LABELS.json`` says which
degradation each folder is known for):

(a) **detection**: every photo of every labelled folder goes through the default perceiver at
    native size; a photo counts as detected when perception reports (one of) the folder's
    known type(s) as present. The clean
    sets of ``_clean`` (Set5, Set14, CBSD68) give the false-alarm rate: the share of clean
    photos with any type present, and per type.
(b) **real pairs**: the whole default agent (``Runner.start``, ``RunContext(planner=…)``) on
    every degraded photo of the labelled ``test/small_pairs`` folders (their clean sibling
    folder is the reference) and of ``test/Rain100L`` (rainy vs norain), at native size;
    PSNR / SSIM of the input and of the agent's output against the clean image. An output
    whose size differs from the reference is a failure row (never resized to fit).
(c) **no-reference quality**: the agent on every photo of the labelled ``real/`` folders
    (photos whose long side exceeds ``max_side`` are downscaled first, and the table says how
    many); NIQE, BRISQUE and PIQE (lower is better) before and after, and a contact sheet per
    folder (input | output, small thumbnails) written under ``docs/real/``.
(d) **explicit requests**: ten instructions a user would type ("make it brighter", "remove the
    snow"...; ``DEFAULT_REQUESTS``), each on one photo of the folder it fits (the first in
    natural order, or the first whose name contains the request's ``pick``), through
    ``restoregraph.api.restore(..., instruction=...)``: what ran, what was kept, why the rest
    was not, the stop reason, the one-line reply (``summarise``), and whether the input came
    back unchanged without a word (no step kept, no reason, no planner note).

Every output of the agent (b, c, d) also gets three checks that need no reference
(``restoregraph.metrics.safety``): the share of newly clipped pixels, the mean colour shift and
the border-to-interior brightness ratio (output over input); an output with more than 1 %
newly clipped pixels or a border ratio outside 0.9-1.1 is listed as outside the bounds.

Every table has the dev half, the test half and all photos: a photo's half is
``crc32(file name) % 2`` (0: dev, 1: test). Choices (thresholds, planner settings) are made
on the dev half; the test half is the quoted figure.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from restoregraph.core.errors import InputError, RestoreGraphError
from restoregraph.core.util import atomic_write, md_table, progress
from restoregraph.lab.common import list_images
from restoregraph.lab.report import fmt, fmt_seconds, header

T = TypeVar("T")

DEFAULT_REAL_DATA = "../shared/data"  # holds real/LABELS.json, real/ and test/
LABELS_FILE = "real/LABELS.json"
CLEAN_KEY = "_clean"
PAIRS_PREFIX = "test/small_pairs/"
REAL_PREFIX = "real/"
RAIN100L = "test/Rain100L"
RAIN100L_PAIR = ("rainy", "norain")
# sibling folder names that hold the clean image of a pair set
CLEAN_NAMES = ("gt", "clean", "high", "sharp", "norain", "target", "groundtruth", "ground_truth")
# a known degradation that perception calls by another name
KNOWN_TO_TYPE = {"defocus": "blur", "poisson": "noise"}
NR_METRICS = ("niqe", "brisque", "piqe")  # all lower-is-better
HALVES = ("dev", "test", "all")
TITLE = "Real photos: perception, the whole agent, no-reference quality"
SHEET_PHOTOS = 4  # photos per contact sheet
SHEET_BOX = (240, 180)  # thumbnail box (w, h)
SHEET_MAX_BYTES = 300_000
MAX_NEW_CLIPPED = 0.01  # an output's acceptance bounds (issue "Real photos II")
BORDER_BOUNDS = (0.9, 1.1)
SAFETY_KEYS = ("new_clipped", "colour_shift", "border_ratio")


@dataclass(frozen=True)
class Request:
    """An explicit request: the instruction, the folder (relative to the data root) of the photo
    it runs on, and ``pick``: the first file whose name contains it (case-insensitive; "": the
    first file, natural order)."""

    instruction: str
    folder: str
    pick: str = ""


DEFAULT_REQUESTS: tuple[Request, ...] = (
    Request("make it brighter", "real/LIME_lowlight"),
    Request("remove the noise", "real/RNI15_real_noise", "Dog"),
    Request("remove the snow", "real/snow_real"),
    Request("remove the raindrops", "real/raindrop_real"),
    Request("remove the rain", f"{RAIN100L}/{RAIN100L_PAIR[0]}"),
    Request("remove the haze", "real/haze_real"),
    Request("sharpen it", "real/motion_blur_real"),
    Request("fix the blur", "real/defocus_blur_real"),
    Request("remove the JPEG blocks", "real/AgenticIR_examples", "jpeg"),
    Request("fix this photo", "real/DICM_lowlight"),
)


def half_of(name: str) -> str:
    """A photo's half: ``dev`` when crc32 of its file name is even, else ``test``."""
    return "dev" if zlib.crc32(Path(name).name.encode()) % 2 == 0 else "test"


def perception_types(known: Sequence[str]) -> list[str]:
    """The perception types that a folder's known degradations correspond to."""
    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION, PERCEPTION_TYPES

    out: list[str] = []
    for k in known:
        t = KNOWN_TO_TYPE.get(k, PERCEPTION_TYPE_FOR_DEGRADATION.get(k, k))
        if t in PERCEPTION_TYPES and t not in out:
            out.append(t)
    return out


def short_name(folder: str) -> str:
    """``real/haze_real`` -> ``haze_real``; ``test/small_pairs/X/hazy`` -> ``X/hazy``."""
    for prefix in (PAIRS_PREFIX, REAL_PREFIX, "test/"):
        if folder.startswith(prefix):
            return folder[len(prefix) :]
    return folder


@dataclass
class RealBenchResult:
    """Raw per-image rows of the three parts, and how they were made."""

    data_root: str
    n_per_folder: int | None
    rain100l_n: int | None
    max_side: int
    planner: str
    objective: str
    max_steps: int
    labels: dict[str, list[str]]  # labelled folder -> its known degradations
    clean_sets: list[str]
    detection: list[dict[str, Any]] = field(default_factory=list)  # (a) one per photo
    pairs: list[dict[str, Any]] = field(default_factory=list)  # (b) one per pair
    pairs_told: list[dict[str, Any]] = field(default_factory=list)  # (b') known task asked
    quality: list[dict[str, Any]] = field(default_factory=list)  # (c) one per photo
    requests: list[dict[str, Any]] = field(default_factory=list)  # (d) one per request
    sheets: dict[str, str] = field(default_factory=dict)  # folder -> contact sheet path
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # part -> seconds
    perception: str = ""  # fingerprint of the perception weights
    started: str = ""  # ISO time
    seconds: float = 0.0


# -- data -------------------------------------------------------------------------------------
def real_data_dir(path: str | Path | None = None) -> Path:
    """The data folder holding ``real/LABELS.json`` (a clear error when it is missing)."""
    p = Path(path if path is not None else DEFAULT_REAL_DATA).expanduser()
    resolved = p if p.is_absolute() else Path.cwd() / p
    if not resolved.is_dir():
        raise InputError(
            f"real-photo data folder not found: {resolved} "
            "(pass --data DIR, the folder holding real/LABELS.json, real/ and test/)"
        )
    if not (resolved / LABELS_FILE).is_file():
        raise InputError(
            f"{resolved / LABELS_FILE} not found (pass --data DIR, the folder holding "
            "real/LABELS.json, real/ and test/)"
        )
    return resolved.resolve()


def read_labels(root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """(labelled folder -> known degradations, clean sets) from ``real/LABELS.json``."""
    path = root / LABELS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the labels ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object of folder -> degradations")
    labels: dict[str, list[str]] = {}
    for key, value in raw.items():
        if key.startswith("_"):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{path}: {key!r} must map to a list of degradation names")
        labels[key] = list(value)
    clean = raw.get(CLEAN_KEY, [])
    if not isinstance(clean, list) or not all(isinstance(v, str) for v in clean):
        raise InputError(f"{path}: {CLEAN_KEY!r} must be a list of folders")
    return labels, list(clean)


def sample(files: Sequence[T], n: int | None) -> list[T]:
    """``n`` evenly spaced items of ``files`` (all when ``n`` is None or not smaller)."""
    if n is None or n >= len(files):
        return list(files)
    return [files[(i * len(files)) // n] for i in range(n)]


def clean_match(degraded: Path, clean_files: Sequence[Path]) -> Path | None:
    """The clean counterpart of a degraded photo: the same name, the same stem, the stem
    before the first ``_`` (SOTS: ``0001_0.8_0.2.jpg`` -> ``0001.png``) or ``rain-N`` ->
    ``norain-N`` (Rain100L)."""
    by_name = {p.name: p for p in clean_files}
    by_stem = {p.stem: p for p in clean_files}
    stem = degraded.stem
    for key in (degraded.name,):
        if key in by_name:
            return by_name[key]
    for key in (stem, stem.split("_")[0], re.sub(r"^rain-", "norain-", stem)):
        if key in by_stem:
            return by_stem[key]
    return None


def pair_sets(
    root: Path, labels: dict[str, list[str]], n_per_folder: int | None, rain100l_n: int | None
) -> tuple[list[tuple[str, Path, Path, list[str], int | None]], list[str]]:
    """(set name, degraded folder, clean folder, known degradations, cap: at most this many
    pairs, None: all) of every pair set, and notes on the ones not found. The labelled
    ``test/small_pairs`` folders are capped by ``n_per_folder``, Rain100L by ``rain100l_n``."""
    notes: list[str] = []
    out: list[tuple[str, Path, Path, list[str], int | None]] = []
    for folder, known in labels.items():
        if not folder.startswith(PAIRS_PREFIX):
            continue
        deg = root / folder
        if not deg.is_dir():
            notes.append(f"pair folder {folder} not found: skipped")
            continue
        siblings = [p for p in deg.parent.iterdir() if p.is_dir() and p != deg]
        named = [p for p in siblings if p.name.lower() in CLEAN_NAMES]
        clean = named[0] if named else (siblings[0] if len(siblings) == 1 else None)
        if clean is None:
            notes.append(f"pair folder {folder}: no clean sibling folder found: skipped")
            continue
        out.append((deg.parent.name, deg, clean, known, n_per_folder))
    if rain100l_n is None or rain100l_n > 0:
        deg, clean = (root / RAIN100L / RAIN100L_PAIR[0]), (root / RAIN100L / RAIN100L_PAIR[1])
        if deg.is_dir() and clean.is_dir():
            out.append((Path(RAIN100L).name, deg, clean, ["rain"], rain100l_n))
        else:
            notes.append(f"{RAIN100L} ({'/'.join(RAIN100L_PAIR)}) not found: no Rain100L rows")
    return out, notes


# -- images -----------------------------------------------------------------------------------
def downscale(img: np.ndarray, max_side: int) -> np.ndarray:
    """``img`` with its long side at most ``max_side`` (Pillow Lanczos; unchanged if smaller)."""
    from PIL import Image

    h, w = img.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return img
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    out = Image.fromarray(u8).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(out, dtype=np.float32) / 255.0


def thumbnail(img: np.ndarray, box: tuple[int, int] = SHEET_BOX) -> Any:
    """A small RGB Pillow image of ``img`` fitting in ``box``."""
    from PIL import Image

    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    pil = Image.fromarray(u8)
    pil.thumbnail(box, Image.Resampling.LANCZOS)
    return pil


def contact_sheet(
    title: str,
    columns: Sequence[str],
    rows: Sequence[tuple[str, Sequence[Any]]],
    path: Path,
    box: tuple[int, int] = SHEET_BOX,
    max_bytes: int = SHEET_MAX_BYTES,
) -> Path:
    """Write a JPEG grid: a title line, column names, then per row a caption and the row's
    thumbnails side by side; the quality is lowered until the file is under ``max_bytes``."""
    import io

    from PIL import Image, ImageDraw

    pad, cap, head = 4, 14, 32
    bw, bh = box
    width = len(columns) * (bw + pad) + pad
    height = head + len(rows) * (bh + cap + pad) + pad
    sheet = Image.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 2), title[:120], fill=(255, 255, 255))
    for c, name in enumerate(columns):
        draw.text((pad + c * (bw + pad), 18), name, fill=(200, 200, 200))
    for r, (caption, thumbs) in enumerate(rows):
        y = head + r * (bh + cap + pad)
        draw.text((pad, y), caption[: width // 6], fill=(255, 255, 160))
        for c, th in enumerate(thumbs):
            if th is None:
                continue
            x = pad + c * (bw + pad) + (bw - th.width) // 2
            sheet.paste(th, (x, y + cap + (bh - th.height) // 2))
    data = b""
    for quality in (85, 75, 65, 55, 45, 35):
        buf = io.BytesIO()
        sheet.save(buf, format="JPEG", quality=quality, optimize=True)
        data = buf.getvalue()
        if len(data) < max_bytes:
            break
    while len(data) >= max_bytes and sheet.width > 64:  # still too big: shrink the whole sheet
        sheet = sheet.resize((sheet.width * 3 // 4, sheet.height * 3 // 4))
        buf = io.BytesIO()
        sheet.save(buf, format="JPEG", quality=35, optimize=True)
        data = buf.getvalue()
    atomic_write(path, data)
    return path


def sheet_file(folder: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", short_name(folder)).strip("_") + ".jpg"


# -- running ----------------------------------------------------------------------------------
def _bar(items: Sequence[T], desc: str, show: bool) -> Iterator[T]:
    return progress(items, len(items), desc) if show else iter(items)


def _nr(img: np.ndarray) -> dict[str, float]:
    """NIQE, BRISQUE, PIQE of ``img`` (NaN for one that cannot be computed, e.g. too small)."""
    from restoregraph.metrics import compute

    out: dict[str, float] = {}
    for name in NR_METRICS:
        try:
            out[name] = float(compute(name, img)[name])
        except RestoreGraphError:
            out[name] = math.nan
    return out


def _fr(img: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    from restoregraph.metrics import psnr, ssim

    return float(psnr(img, ref)), float(ssim(img, ref))


def _perceived(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    for ev in events:
        if ev.get("event") == "perception":
            return {str(k): int(v) for k, v in dict(ev.get("present", {})).items()}
    return {}


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, RestoreGraphError):
        return text or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {text}"


def safety(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """The output checks that need no reference: newly clipped share, mean colour shift,
    border-to-interior brightness ratio (output over input)."""
    from restoregraph.metrics.safety import border_ratio, clipped_fraction, colour_shift

    return {
        "new_clipped": clipped_fraction(after) - clipped_fraction(before),
        "colour_shift": colour_shift(before, after),
        "border_ratio": border_ratio(before, after),
    }


def outside_bounds(row: dict[str, Any]) -> list[str]:
    """Why an output is outside the acceptance bounds (``[]`` when inside or not measured)."""
    why = []
    clipped, ratio = row.get("new_clipped", math.nan), row.get("border_ratio", math.nan)
    if math.isfinite(clipped) and clipped > MAX_NEW_CLIPPED:
        why.append(f"{clipped:.1%} newly clipped (> {MAX_NEW_CLIPPED:.0%})")
    lo, hi = BORDER_BOUNDS
    if math.isfinite(ratio) and not lo <= ratio <= hi:
        why.append(f"border ratio {ratio:.3f} (outside {lo:g}-{hi:g})")
    return why


def silent_noop(steps: Sequence[dict[str, Any]], notes: Sequence[str]) -> bool:
    """The input came back unchanged without a word: no step kept, no reason on a step that
    was not kept, no planner note (the stop reason alone does not count: every run has one)."""
    if any(s["status"] == "accepted" for s in steps):
        return False
    return not any(str(s.get("reason", "")).strip() for s in steps) and not any(
        str(n).strip() for n in notes
    )


def pick_photo(folder: Path, pick: str = "") -> Path | None:
    """The first image of ``folder`` in natural order whose name contains ``pick``
    (case-insensitive; "": the first image); None when there is none."""
    files = [p for p in list_images(folder) if pick.lower() in p.name.lower()]
    return files[0] if files else None


class _Agent:
    """Runs the whole agent on files, one fresh run id per photo."""

    def __init__(self, home: Path, work: Path, ctx_kw: dict[str, Any]):
        from restoregraph.runner import Runner

        self.runner = Runner(home)
        self.work = work
        self.ctx_kw = ctx_kw
        self.session = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S-%f")
        self.count = 0

    def run(self, src: Path, required: Sequence[str] = ()) -> tuple[np.ndarray, dict[str, Any]]:
        """(output image, facts: tools kept / rolled back, failed steps, seconds, perceived);
        ``required``: tasks the run must attempt (as if the user had asked for them)."""
        from restoregraph.core.settings import RunContext
        from restoregraph.imageio import load_image

        self.count += 1
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", src.stem)[:40].strip("-") or "image"
        run_id = f"real-{self.session}-{self.count:04d}-{stem}"
        out_path = self.work / f"{self.count:04d}-{stem}-out.png"
        ctx = RunContext(**self.ctx_kw, required_tasks=tuple(required))
        res = self.runner.start(src, out_path, ctx, run_id=run_id)
        hist = res.history
        facts = {
            "kept": [h["tool"] for h in hist if h["status"] == "accepted"],
            "rolled_back": [h["tool"] for h in hist if h["status"] == "rolled_back"],
            "failed_steps": sum(1 for h in hist if h["status"] == "failed"),
            "seconds": float(res.seconds),
            "perceived": _perceived(res.events),
            "stop": str(res.state.get("stop_reason", "")),
        }
        return load_image(out_path), facts


def _detect(
    root: Path,
    folders: Sequence[tuple[str, list[str] | None]],
    n: int | None,
    perceiver: Any,
    show: bool,
    notes: list[str],
) -> list[dict[str, Any]]:
    from restoregraph.imageio import load_image

    jobs: list[tuple[str, list[str] | None, Path]] = []
    for folder, known in folders:
        d = root / folder
        if not d.is_dir():
            what = "clean set" if known is None else "labelled folder"
            notes.append(f"{what} {folder} not found: skipped")
            continue
        files = sample(list_images(d), n)
        if not files:
            notes.append(f"{folder} holds no images: skipped")
        jobs += [(folder, known, p) for p in files]
    rows: list[dict[str, Any]] = []
    for folder, known, path in _bar(jobs, "real: detection", show):
        row: dict[str, Any] = {
            "folder": folder,
            "kind": "clean" if known is None else "labelled",
            "photo": path.name,
            "half": half_of(path.name),
            "known": list(known or []),
            "types": perception_types(known or []),
            "present": {},
            "presence": {},
            "hit": None,
            "status": "ok",
            "error": "",
        }
        try:
            img = load_image(path)
        except RestoreGraphError as exc:
            row.update(status="skipped", error=_error(exc))
            rows.append(row)
            continue
        res = perceiver.perceive(img)
        row["size"] = [int(img.shape[1]), int(img.shape[0])]
        row["present"] = {str(t): int(v) for t, v in res.present.items()}
        row["presence"] = {str(t): round(float(v), 4) for t, v in res.presence().items()}
        if known is None:  # a false alarm on a clean photo: anything but JPEG at level 1
            row["hit"] = any(t != "jpeg" or lvl > 1 for t, lvl in row["present"].items())
        elif row["types"]:
            row["hit"] = any(t in row["present"] for t in row["types"])
        rows.append(row)
    return rows


def known_tasks(known: Sequence[str]) -> list[str]:
    """The tasks that undo a folder's known degradations (``blur`` -> ``deblur``, ...)."""
    from restoregraph.core.tasks import TASK_FOR_PERCEPTION_TYPE

    return list(dict.fromkeys(TASK_FOR_PERCEPTION_TYPE[t] for t in perception_types(known)))


def _pairs(
    root: Path,
    sets: Sequence[tuple[str, Path, Path, list[str], int | None]],
    agent: _Agent,
    show: bool,
    thumbs: dict[str, list[tuple[str, list[Any]]]],
    told: bool = False,
) -> list[dict[str, Any]]:
    """The agent on each pair; ``told``: with the set's known task(s) required, as if the
    user had asked for them (what the tools do when perception is taken out of the loop)."""
    from restoregraph.imageio import load_image

    jobs: list[tuple[str, Path, Path | None, list[str], str]] = []
    for name, deg, clean, known, cap in sets:
        clean_files = list_images(clean)
        files = sample(list_images(deg), cap)
        folder = deg.relative_to(root).as_posix()
        for p in files:
            jobs.append((name, p, clean_match(p, clean_files), known, folder))
    rows: list[dict[str, Any]] = []
    desc = "real: pairs, known task asked" if told else "real: agent on pairs"
    for name, path, clean_path, known, folder in _bar(jobs, desc, show):
        row: dict[str, Any] = {
            "set": name,
            "folder": folder,
            "photo": path.name,
            "clean": clean_path.name if clean_path else "",
            "half": half_of(path.name),
            "known": list(known),
            "status": "ok",
            "error": "",
            "psnr_in": math.nan,
            "ssim_in": math.nan,
            "psnr_out": math.nan,
            "ssim_out": math.nan,
            "kept": [],
            "rolled_back": [],
            "failed_steps": 0,
            "seconds": math.nan,
            "perceived": {},
            "stop": "",
            **dict.fromkeys(SAFETY_KEYS, math.nan),
        }
        rows.append(row)
        if clean_path is None:
            row.update(status="skipped", error="no clean counterpart found")
            continue
        try:
            img, ref = load_image(path), load_image(clean_path)
        except RestoreGraphError as exc:
            row.update(status="skipped", error=_error(exc))
            continue
        row["size"] = [int(img.shape[1]), int(img.shape[0])]
        if img.shape != ref.shape:
            row.update(
                status="failed",
                error=f"input {img.shape[1]}x{img.shape[0]} and reference "
                f"{ref.shape[1]}x{ref.shape[0]} differ in size",
            )
            continue
        row["psnr_in"], row["ssim_in"] = _fr(img, ref)
        try:
            out, facts = agent.run(path, known_tasks(known) if told else ())
        except Exception as exc:  # one photo's failure is a row, not the end of the bench
            row.update(status="failed", error=_error(exc))
            continue
        row.update(facts)
        row.update(safety(img, out))
        if out.shape != ref.shape:
            row.update(
                status="failed",
                error=f"output is {out.shape[1]}x{out.shape[0]}, the reference "
                f"{ref.shape[1]}x{ref.shape[0]} (not resized to fit)",
            )
        else:
            row["psnr_out"], row["ssim_out"] = _fr(out, ref)
        sheet = thumbs.setdefault(folder, [])
        if len(sheet) < SHEET_PHOTOS:
            sheet.append((_caption(row), [thumbnail(img), thumbnail(out), thumbnail(ref)]))
    return rows


def _caption(row: dict[str, Any]) -> str:
    kept = ", ".join(row.get("kept", [])) or "nothing kept"
    back = len(row.get("rolled_back", []))
    text = f"{row['photo']} [{row['half']}]: {kept}"
    if back:
        text += f"; {back} rolled back"
    if "psnr_out" in row and math.isfinite(row["psnr_out"]):
        text += f"; PSNR {row['psnr_in']:.1f}->{row['psnr_out']:.1f}"
    if row.get("status") == "failed":
        text += " (failed)"
    return text


def _quality(
    root: Path,
    folders: Sequence[tuple[str, list[str]]],
    n: int | None,
    max_side: int,
    agent: _Agent,
    show: bool,
    thumbs: dict[str, list[tuple[str, list[Any]]]],
) -> list[dict[str, Any]]:
    from restoregraph.imageio import load_image, save_image

    jobs: list[tuple[str, list[str], Path]] = []
    for folder, known in folders:
        d = root / folder
        if d.is_dir():
            jobs += [(folder, known, p) for p in sample(list_images(d), n)]
    rows: list[dict[str, Any]] = []
    for folder, known, path in _bar(jobs, "real: agent on real photos", show):
        row: dict[str, Any] = {
            "folder": folder,
            "photo": path.name,
            "half": half_of(path.name),
            "known": list(known),
            "status": "ok",
            "error": "",
            "downscaled": False,
            "before": dict.fromkeys(NR_METRICS, math.nan),
            "after": dict.fromkeys(NR_METRICS, math.nan),
            "kept": [],
            "rolled_back": [],
            "failed_steps": 0,
            "seconds": math.nan,
            "perceived": {},
            "stop": "",
            **dict.fromkeys(SAFETY_KEYS, math.nan),
        }
        rows.append(row)
        try:
            img = load_image(path)
        except RestoreGraphError as exc:
            row.update(status="skipped", error=_error(exc))
            continue
        row["size"] = [int(img.shape[1]), int(img.shape[0])]
        src = path
        small = downscale(img, max_side)
        if small.shape != img.shape:
            row["downscaled"] = True
            stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)[:40]
            src = agent.work / f"in-{len(rows):04d}-{stem}.png"
            save_image(small, src)
            img = small
        row["run_size"] = [int(img.shape[1]), int(img.shape[0])]
        row["before"] = _nr(img)
        try:
            out, facts = agent.run(src)
        except Exception as exc:  # one photo's failure is a row, not the end of the bench
            row.update(status="failed", error=_error(exc))
            continue
        row.update(facts)
        row["out_size"] = [int(out.shape[1]), int(out.shape[0])]
        row["after"] = _nr(out)
        row.update(safety(img, out))
        sheet = thumbs.setdefault(folder, [])
        if len(sheet) < SHEET_PHOTOS:
            sheet.append((_caption(row), [thumbnail(img), thumbnail(out)]))
    return rows


def _requests(
    root: Path,
    requests: Sequence[Request],
    max_side: int,
    home: Path,
    work: Path,
    ctx_kw: dict[str, Any],
    show: bool,
) -> list[dict[str, Any]]:
    """Each request through ``restoregraph.api.restore`` (instruction routed by the chat
    router) on its photo, downscaled to ``max_side`` like the other real photos."""
    from restoregraph.api import restore, summarise
    from restoregraph.chat.router import make_router
    from restoregraph.imageio import load_image, save_image

    router = make_router()
    rows: list[dict[str, Any]] = []
    for i, req in enumerate(_bar(list(requests), "real: explicit requests", show), 1):
        row: dict[str, Any] = {
            "instruction": req.instruction,
            "folder": req.folder,
            "pick": req.pick,
            "photo": "",
            "half": "",
            "status": "ok",
            "error": "",
            "routed": "",
            "downscaled": False,
            "steps": [],
            "kept": [],
            "rolled_back": [],
            "failed_steps": 0,
            "not_kept": [],
            "notes": [],
            "stop": "",
            "reply": "",
            "silent": False,
            "seconds": math.nan,
            "perceived": {},
            **dict.fromkeys(SAFETY_KEYS, math.nan),
        }
        rows.append(row)
        d = root / req.folder
        path = pick_photo(d, req.pick) if d.is_dir() else None
        if path is None:
            what = f"no image whose name contains {req.pick!r}" if req.pick else "no image"
            row.update(
                status="skipped",
                error=f"{req.folder} not found" if not d.is_dir() else f"{what} in {req.folder}",
            )
            continue
        row.update(photo=path.name, half=half_of(path.name))
        try:
            img = load_image(path)
        except RestoreGraphError as exc:
            row.update(status="skipped", error=_error(exc))
            continue
        row["size"] = [int(img.shape[1]), int(img.shape[0])]
        src = path
        small = downscale(img, max_side)
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)[:40].strip("-") or "image"
        if small.shape != img.shape:
            row["downscaled"] = True
            src = work / f"req-{i:02d}-{stem}-in.png"
            save_image(small, src)
            img = small
        row["run_size"] = [int(img.shape[1]), int(img.shape[0])]
        route = router.route(req.instruction)
        row["routed"] = route.action + (f": {', '.join(route.tasks)}" if route.tasks else "")
        if route.forbidden:
            row["routed"] += f" (not: {', '.join(route.forbidden)})"
        out_path = work / f"req-{i:02d}-{stem}-out.png"
        try:
            res = restore(src, out_path, home=home, instruction=req.instruction, **ctx_kw)
        except Exception as exc:  # one request's failure is a row, not the end of the bench
            row.update(status="failed", error=_error(exc))
            continue
        steps = [
            {"tool": h["tool"], "task": h["task"], "status": h["status"], "reason": h["reason"]}
            for h in res.history
        ]
        notes = [str(n) for n in res.state.get("planner_notes", [])]
        row.update(
            steps=steps,
            kept=[h["tool"] for h in steps if h["status"] == "accepted"],
            rolled_back=[h["tool"] for h in steps if h["status"] == "rolled_back"],
            failed_steps=sum(1 for h in steps if h["status"] == "failed"),
            not_kept=[f"{h['tool']}: {h['reason']}" for h in steps if h["status"] != "accepted"],
            notes=notes,
            stop=str(res.state.get("stop_reason", "")),
            reply=summarise(res),
            silent=silent_noop(steps, notes),
            seconds=float(res.seconds),
            perceived=_perceived(res.events),
        )
        if res.output is None:
            row.update(status="failed", error="the run wrote no output")
            continue
        row.update(safety(img, load_image(res.output)))
    return rows


def run_real_bench(
    data_root: str | Path | None,
    home: str | Path | None = None,
    n_per_folder: int | None = None,
    rain100l_n: int | None = None,
    max_side: int = 512,
    planner: str = "embedded",
    objective: str = "balanced",
    max_steps: int = 8,
    planner_options: dict[str, Any] | None = None,
    perceiver: Any = None,
    sheets_dir: str | Path | None = None,
    progress: bool = True,
    requests: Sequence[Request] = DEFAULT_REQUESTS,
) -> RealBenchResult:
    """Run parts (a) to (d) (module docstring) and return their raw rows.

    ``n_per_folder``: at most this many photos per folder (evenly spaced; None: all), for every
    folder but Rain100L, which ``rain100l_n`` caps (None: all 100; 0: none). ``home``: the
    runs' home (None: a temporary one, deleted at the end). ``sheets_dir``: where the contact
    sheets are written (None: none written). ``perceiver``: a stand-in for the default one,
    used for detection and by the agent. ``requests``: part (d)'s requests (empty: no part d).
    """
    from restoregraph.lab.bench.perception import fingerprint
    from restoregraph.planners import PLANNERS

    started = _dt.datetime.now(_dt.UTC)
    t_start = time.perf_counter()
    root = real_data_dir(data_root)
    if n_per_folder is not None and n_per_folder < 1:
        raise InputError(f"--n-per-folder must be >= 1, got {n_per_folder}")
    if rain100l_n is not None and rain100l_n < 0:
        raise InputError(f"--rain100l-n must be >= 0, got {rain100l_n}")
    if max_side < 0 or 0 < max_side < 32:
        raise InputError(f"--max-side must be 0 (no downscaling) or >= 32, got {max_side}")
    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; choose from {', '.join(sorted(PLANNERS))}")
    ctx_kw: dict[str, Any] = {
        "planner": planner,
        "objective": objective,
        "max_steps": max_steps,
        "planner_options": dict(planner_options or {}),
        "perceiver": perceiver,
    }
    try:
        from restoregraph.core.settings import RunContext

        RunContext(**ctx_kw)  # bad settings: one line before anything runs
    except RestoreGraphError as exc:
        raise InputError(str(exc)) from None
    labels, clean_sets = read_labels(root)
    result = RealBenchResult(
        data_root=str(root),
        n_per_folder=n_per_folder,
        rain100l_n=rain100l_n,
        max_side=max_side,
        planner=planner,
        objective=objective,
        max_steps=max_steps,
        labels=labels,
        clean_sets=clean_sets,
        started=started.isoformat(),
        perception=fingerprint() if perceiver is None else f"stand-in {type(perceiver).__name__}",
    )
    if perceiver is None:
        from restoregraph.perception import default_perceiver

        perceiver = default_perceiver()
    sets, pair_notes = pair_sets(root, labels, n_per_folder, rain100l_n)
    real_folders = [(f, k) for f, k in labels.items() if f.startswith(REAL_PREFIX)]
    if not any((root / f).is_dir() for f in [*labels, *clean_sets]):
        raise InputError(
            f"none of the folders of {root / LABELS_FILE} exists under {root} "
            "(pass --data DIR, the folder holding real/ and test/)"
        )

    t0 = time.perf_counter()
    folders: list[tuple[str, list[str] | None]] = [
        *labels.items(),
        *((c, None) for c in clean_sets),
    ]
    result.detection = _detect(root, folders, n_per_folder, perceiver, progress, result.notes)
    result.timings["detection"] = time.perf_counter() - t0
    result.notes += pair_notes
    thumbs: dict[str, list[tuple[str, list[Any]]]] = {}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restoregraph-real-")))
        home_path = Path(home) if home is not None else work / "home"
        agent = _Agent(home_path, work, ctx_kw)
        t0 = time.perf_counter()
        result.pairs = _pairs(root, sets, agent, progress, thumbs)
        result.timings["pairs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result.pairs_told = _pairs(root, sets, agent, progress, {}, told=True)
        result.timings["pairs, known task asked"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result.quality = _quality(
            root, real_folders, n_per_folder, max_side, agent, progress, thumbs
        )
        result.timings["quality"] = time.perf_counter() - t0
        if requests:
            t0 = time.perf_counter()
            result.requests = _requests(root, requests, max_side, home_path, work, ctx_kw, progress)
            result.timings["requests"] = time.perf_counter() - t0
    if sheets_dir is not None:
        out_dir = Path(sheets_dir)
        for folder, rows in thumbs.items():
            pair = any(len(t) == 3 for _, t in rows)
            cols = (
                ["input", "agent output", "clean reference"] if pair else ["input", "agent output"]
            )
            title = f"{short_name(folder)} ({', '.join(labels.get(folder, ['rain']))})"
            if not pair and max_side > 0:
                title += f"; photos downscaled to long side <= {max_side} px before the run"
            path = contact_sheet(title, cols, rows, out_dir / sheet_file(folder))
            result.sheets[folder] = str(path)
    result.seconds = time.perf_counter() - t_start
    return result


# -- JSON -------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_json(result: RealBenchResult, path: str | Path) -> Path:
    """Every raw row (and the settings) as JSON; NaN becomes null."""
    p = Path(path)
    atomic_write(p, json.dumps(_jsonable(asdict(result)), indent=1) + "\n")
    return p


# -- report -----------------------------------------------------------------------------------
def _mean(values: Iterable[float]) -> float:
    ok = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(ok)) if ok else math.nan


def _in_half(rows: Iterable[dict[str, Any]], half: str) -> list[dict[str, Any]]:
    return [r for r in rows if half == "all" or r["half"] == half]


def _rate(hits: int, n: int) -> str:
    return f"{hits}/{n} ({100 * hits / n:.0f}%)" if n else "0/0"


def _skipped_note(rows: Sequence[dict[str, Any]]) -> str:
    bad = [r for r in rows if r["status"] == "skipped"]
    if not bad:
        return ""
    return f"{len(bad)} skipped: " + "; ".join(f"{r['photo']} ({r['error']})" for r in bad[:3])


def detection_table(result: RealBenchResult) -> tuple[str, str]:
    """Per labelled folder: the share detected per half, and what else perception reports."""
    rows = []
    for folder, known in result.labels.items():
        recs = [r for r in result.detection if r["folder"] == folder]
        if not recs:
            continue
        ok = [r for r in recs if r["status"] == "ok"]
        types = perception_types(known)
        cells = []
        for half in HALVES:
            hs = _in_half(ok, half)
            cells.append(_rate(sum(1 for r in hs if r["hit"]), len(hs)) if types else "no type")
        reported = Counter(t for r in ok for t in r["present"])
        also = ", ".join(f"{t} {c}" for t, c in reported.most_common(4)) or "nothing"
        name = "/".join(known) + (
            f" (as {'/'.join(types)})" if types and types != list(known) else ""
        )
        rows.append([short_name(folder), name, *cells, also, _skipped_note(recs)])
    table = md_table(
        ["folder", "known", "dev", "test", "all", "types reported (photos, all)", "notes"],
        rows,
        "llrrrll",
    )
    clean = [r for r in result.detection if r["kind"] == "clean" and r["status"] == "ok"]
    crow = []
    for s in result.clean_sets:
        recs = [r for r in clean if r["folder"] == s]
        if recs:
            crow.append(
                [
                    short_name(s),
                    *[
                        _rate(sum(1 for r in _in_half(recs, h) if r["hit"]), len(_in_half(recs, h)))
                        for h in HALVES
                    ],
                ]
            )
    if clean:
        crow.append(
            [
                "**all clean**",
                *[
                    _rate(sum(1 for r in _in_half(clean, h) if r["hit"]), len(_in_half(clean, h)))
                    for h in HALVES
                ],
            ]
        )
    from restoregraph.core.tasks import PERCEPTION_TYPES

    for t in PERCEPTION_TYPES:
        if any(t in r["present"] for r in clean):
            crow.append(
                [
                    f"· {t}",
                    *[
                        _rate(
                            sum(1 for r in _in_half(clean, h) if t in r["present"]),
                            len(_in_half(clean, h)),
                        )
                        for h in HALVES
                    ],
                ]
            )
    ctable = md_table(["clean set / type reported", "dev", "test", "all"], crow, "lrrr")
    return table, ctable


def _tools_cell(rows: Sequence[dict[str, Any]]) -> str:
    kept = Counter(t for r in rows for t in r["kept"])
    return ", ".join(f"{t} ×{c}" for t, c in kept.most_common(3)) or "none"


def pairs_table(result: RealBenchResult, told: bool = False) -> str:
    """Part (b)'s table; ``told``: the runs with the known task asked."""
    pairs = result.pairs_told if told else result.pairs
    names = list(dict.fromkeys(r["set"] for r in pairs))
    rows = []
    groups = [(n, [r for r in pairs if r["set"] == n]) for n in names]
    if len(groups) > 1:
        groups.append(("**all pairs**", list(pairs)))
    for name, recs in groups:
        for half in HALVES:
            hs = _in_half(recs, half)
            ok = [r for r in hs if r["status"] == "ok"]
            failed = sum(1 for r in hs if r["status"] == "failed")
            skipped = sum(1 for r in hs if r["status"] == "skipped")
            p_in, p_out = _mean(r["psnr_in"] for r in ok), _mean(r["psnr_out"] for r in ok)
            s_in, s_out = _mean(r["ssim_in"] for r in ok), _mean(r["ssim_out"] for r in ok)
            better = sum(1 for r in ok if r["psnr_out"] > r["psnr_in"] + 1e-6)
            n_runs = [r for r in hs if r["status"] != "skipped" and math.isfinite(r["seconds"])]
            rows.append(
                [
                    name if half == "dev" else "",
                    half,
                    str(len(ok)),
                    str(failed) + (f" (+{skipped} skipped)" if skipped else ""),
                    fmt(p_in),
                    fmt(p_out),
                    fmt(p_out - p_in, signed=True, bold=half == "test"),
                    f"{better}/{len(ok)}" if ok else "–",
                    fmt(s_in, 3),
                    fmt(s_out, 3),
                    fmt(s_out - s_in, 3, signed=True),
                    fmt(_mean(len(r["kept"]) for r in n_runs), 1),
                    str(sum(len(r["rolled_back"]) for r in n_runs)),
                    fmt_seconds(_mean(r["seconds"] for r in n_runs)),
                ]
            )
    return md_table(
        [
            "set",
            "half",
            "n",
            "failed",
            "PSNR in",
            "PSNR out",
            "gain dB",
            "PSNR up",
            "SSIM in",
            "SSIM out",
            "SSIM gain",
            "tools kept / photo",
            "rolled back",
            "s / photo",
        ],
        rows,
        "ll" + "r" * 12,
    )


def quality_table(result: RealBenchResult, links: dict[str, str]) -> str:
    folders = list(dict.fromkeys(r["folder"] for r in result.quality))
    groups = [(short_name(f), f, [r for r in result.quality if r["folder"] == f]) for f in folders]
    if len(groups) > 1:
        groups.append(("**all real photos**", "", list(result.quality)))
    rows = []
    for name, folder, recs in groups:
        for half in HALVES:
            hs = _in_half(recs, half)
            ok = [r for r in hs if r["status"] == "ok"]
            failed = sum(1 for r in hs if r["status"] == "failed")
            skipped = sum(1 for r in hs if r["status"] == "skipped")
            cells = []
            for m in NR_METRICS:
                both = [
                    r for r in ok if math.isfinite(r["before"][m]) and math.isfinite(r["after"][m])
                ]
                b, a = _mean(r["before"][m] for r in both), _mean(r["after"][m] for r in both)
                cells.append(f"{fmt(b, 1)} → {fmt(a, 1)} ({fmt(a - b, 1, signed=True)})")
            first = name if half == "dev" else ""
            if half == "dev" and folder in links:
                first += f" ([sheet]({links[folder]}))"
            rows.append(
                [
                    first,
                    half,
                    str(len(ok)),
                    str(failed) + (f" (+{skipped} skipped)" if skipped else ""),
                    str(sum(1 for r in hs if r["downscaled"])),
                    *cells,
                    fmt(_mean(len(r["kept"]) for r in ok), 1),
                    str(sum(len(r["rolled_back"]) for r in ok)),
                    _tools_cell(ok) if half == "all" else "",
                    fmt_seconds(_mean(r["seconds"] for r in ok)),
                ]
            )
    return md_table(
        [
            "folder",
            "half",
            "n",
            "failed",
            "downscaled",
            "NIQE before → after",
            "BRISQUE",
            "PIQE",
            "kept / photo",
            "rolled back",
            "most kept tools (all)",
            "s / photo",
        ],
        rows,
        "llrrrrrrrrlr",
    )


def _pct(value: float) -> str:
    return f"{value:+.2%}" if value is not None and math.isfinite(value) else "–"


def _cell(text: str) -> str:
    """Free text in a table cell: one line, no column break."""
    return " ".join(str(text).split()).replace("|", "\\|") or "–"


def _finite(rows: Iterable[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if math.isfinite(r.get(key, math.nan))]


def _safety_groups(result: RealBenchResult) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(part, set / folder, rows) of every group of agent outputs."""
    groups: list[tuple[str, str, list[dict[str, Any]]]] = []
    for name in dict.fromkeys(r["set"] for r in result.pairs):
        groups.append(("pairs", name, [r for r in result.pairs if r["set"] == name]))
    for folder in dict.fromkeys(r["folder"] for r in result.quality):
        rows = [r for r in result.quality if r["folder"] == folder]
        groups.append(("real photos", short_name(folder), rows))
    if result.requests:
        groups.append(("requests", "explicit requests", list(result.requests)))
    return groups


def safety_table(result: RealBenchResult) -> str:
    """Per set / folder: the worst newly clipped share and colour shift, the border ratio's
    range, and how many outputs are outside the bounds per half."""
    rows = []
    for part, name, recs in _safety_groups(result):
        ok = [r for r in recs if math.isfinite(r.get("new_clipped", math.nan))]
        clipped, shift = _finite(ok, "new_clipped"), _finite(ok, "colour_shift")
        ratio = _finite(ok, "border_ratio")
        out = " / ".join(
            f"{sum(1 for r in _in_half(ok, h) if outside_bounds(r))}/{len(_in_half(ok, h))}"
            for h in HALVES
        )
        rows.append(
            [
                part,
                name,
                str(len(ok)),
                _pct(max(clipped)) if clipped else "–",
                fmt(max(shift), 3) if shift else "–",
                fmt(min(ratio), 3) if ratio else "–",
                fmt(max(ratio), 3) if ratio else "–",
                out,
            ]
        )
    return md_table(
        [
            "part",
            "set / folder",
            "outputs",
            "newly clipped, max",
            "colour shift, max",
            "border ratio, min",
            "border ratio, max",
            "outside the bounds (dev / test / all)",
        ],
        rows,
        "llrrrrrr",
    )


def bounds_table(result: RealBenchResult) -> str:
    """Every output outside the bounds ('' when there is none)."""
    rows = []
    for part, name, recs in _safety_groups(result):
        for r in recs:
            why = outside_bounds(r)
            if why:
                what = f"{r['instruction']!r}: " if part == "requests" else ""
                rows.append(
                    [
                        part,
                        name if part != "requests" else short_name(r["folder"]),
                        what + r["photo"],
                        r["half"],
                        ", ".join(r["kept"]) or "–",
                        _pct(r["new_clipped"]),
                        fmt(r["colour_shift"], 3),
                        fmt(r["border_ratio"], 3),
                        "; ".join(why),
                    ]
                )
    if not rows:
        return ""
    return md_table(
        [
            "part",
            "set / folder",
            "photo",
            "half",
            "kept",
            "newly clipped",
            "colour shift",
            "border ratio",
            "outside the bounds",
        ],
        rows,
        "lllllrrrl",
    )


_MARK = {"accepted": "kept", "rolled_back": "rolled back", "failed": "failed"}


def requests_table(result: RealBenchResult) -> str:
    """One row per explicit request: what ran and what came of it."""
    rows = []
    for r in result.requests:
        ran = ", ".join(f"{s['tool']} ({_MARK.get(s['status'], s['status'])})" for s in r["steps"])
        why = [*r["not_kept"], *(f"note: {n}" for n in r["notes"])]
        photo = f"{short_name(r['folder'])}/{r['photo']}" if r["photo"] else short_name(r["folder"])
        if r["downscaled"]:
            photo += " ↓"
        checks = "–"
        if math.isfinite(r["new_clipped"]):
            checks = (
                f"{_pct(r['new_clipped'])} · {fmt(r['colour_shift'], 3)} · "
                f"{fmt(r['border_ratio'], 3)}"
            )
        rows.append(
            [
                f"“{_cell(r['instruction'])}”",
                _cell(photo),
                _cell(r["routed"]) if r["status"] != "skipped" else "–",
                _cell(ran) if r["steps"] else ("none" if r["status"] == "ok" else "–"),
                ", ".join(r["kept"]) or "nothing",
                _cell("; ".join(why)),
                _cell(r["stop"]),
                _cell(r["reply"]),
                "**yes**" if r["silent"] else "no",
                checks,
                fmt_seconds(r["seconds"]),
                _cell(r["error"]) if r["error"] else "",
            ]
        )
    return md_table(
        [
            "request",
            "photo",
            "routed to",
            "ran (status)",
            "kept",
            "why not kept / notes",
            "stop reason",
            "reply (`summarise`)",
            "unchanged silently",
            "clipped · shift · border",
            "s",
            "error",
        ],
        rows,
        "llllllllllrl",
    )


def _levels(d: dict[str, int]) -> str:
    return ", ".join(f"{t} {v}" for t, v in d.items()) or "–"


def _tools(r: dict[str, Any]) -> tuple[str, str]:
    return ", ".join(r.get("kept", [])) or "–", ", ".join(r.get("rolled_back", [])) or "–"


def _checks(r: dict[str, Any]) -> list[str]:
    return [_pct(r["new_clipped"]), fmt(r["colour_shift"], 3), fmt(r["border_ratio"], 3)]


def detail_tables(result: RealBenchResult) -> list[str]:
    det = md_table(
        ["folder", "photo", "half", "known", "reported (level)", "note"],
        [
            [
                short_name(r["folder"]),
                r["photo"],
                r["half"],
                "/".join(r["known"]) or "clean",
                _levels(r["present"]),
                r["error"],
            ]
            for r in result.detection
            if r["kind"] == "labelled" or r["present"] or r["status"] != "ok"
        ],
        "llllll",
    )
    pairs = md_table(
        [
            "set",
            "photo",
            "half",
            "perceived",
            "kept",
            "rolled back",
            "PSNR",
            "SSIM",
            "newly clipped",
            "colour shift",
            "border ratio",
            "s",
            "note",
        ],
        [
            [
                r["set"],
                r["photo"],
                r["half"],
                _levels(r["perceived"]),
                *_tools(r),
                f"{fmt(r['psnr_in'])} → {fmt(r['psnr_out'])}",
                f"{fmt(r['ssim_in'], 3)} → {fmt(r['ssim_out'], 3)}",
                *_checks(r),
                fmt_seconds(r["seconds"]),
                r["error"],
            ]
            for r in result.pairs
        ],
        "lllllllrrrrrl",
    )
    qual = md_table(
        ["folder", "photo", "half", "size", "perceived", "kept", "rolled back"]
        + [m.upper() for m in NR_METRICS]
        + ["newly clipped", "colour shift", "border ratio", "s", "note"],
        [
            [
                short_name(r["folder"]),
                r["photo"],
                r["half"],
                "x".join(map(str, r.get("size", []))) + (" ↓" if r["downscaled"] else ""),
                _levels(r["perceived"]),
                *_tools(r),
                *[f"{fmt(r['before'][m], 1)} → {fmt(r['after'][m], 1)}" for m in NR_METRICS],
                *_checks(r),
                fmt_seconds(r["seconds"]),
                r["error"],
            ]
            for r in result.quality
        ],
        "llllllrrrrrrrrl",
    )
    out = []
    for summary, table in (
        ("detection, per photo (clean photos only when something was reported)", det),
        ("real pairs, per photo", pairs),
        ("real photos, per photo (↓: downscaled before the run)", qual),
    ):
        out += ["", f"<details><summary>{summary} (click)</summary>", "", table, "", "</details>"]
    return out


def findings(result: RealBenchResult) -> str:
    """A generated paragraph: what the tables show (test-half figures first)."""
    parts = []
    rates = []
    for folder in result.labels:
        ok = [
            r
            for r in result.detection
            if r["folder"] == folder and r["status"] == "ok" and r["hit"] is not None
        ]
        if ok:
            rates.append((short_name(folder), sum(1 for r in ok if r["hit"]) / len(ok)))
    if rates:
        good = [f"{n} ({v:.0%})" for n, v in rates if v >= 0.8]
        bad = [f"{n} ({v:.0%})" for n, v in rates if v < 0.3]
        parts.append(
            "Detection (all photos): reliable (≥ 80%) on "
            + (", ".join(good) or "no folder")
            + "; mostly missed (< 30%) on "
            + (", ".join(bad) or "no folder")
            + "."
        )
    clean = [r for r in result.detection if r["kind"] == "clean" and r["status"] == "ok"]
    if clean:
        fa = Counter(t for r in clean for t in r["present"])
        top = ", ".join(f"{t} {c}" for t, c in fa.most_common(3))
        parts.append(
            f"False alarms on clean photos: {sum(1 for r in clean if r['hit'])}/{len(clean)}"
            + (f" (most often {top})" if top else "")
            + "."
        )
    for name in dict.fromkeys(r["set"] for r in result.pairs):
        test = [
            r
            for r in result.pairs
            if r["set"] == name and r["status"] == "ok" and r["half"] == "test"
        ]
        every = [r for r in result.pairs if r["set"] == name and r["status"] == "ok"]
        if every:
            g_all = _mean(r["psnr_out"] - r["psnr_in"] for r in every)
            none = sum(1 for r in every if not r["kept"])
            lead = (
                f"{fmt(_mean(r['psnr_out'] - r['psnr_in'] for r in test), signed=True)} dB on "
                f"the test half ({len(test)})"
                if test
                else "no test-half photo"
            )
            parts.append(
                f"{name}: {lead}, {fmt(g_all, signed=True)} dB on all {len(every)}; the agent "
                f"kept no tool on {none} of {len(every)}."
            )
    failed = [r for r in [*result.pairs, *result.quality] if r["status"] == "failed"]
    if failed:
        parts.append(
            f"{len(failed)} run(s) failed: "
            + "; ".join(f"{r['photo']} ({r['error']})" for r in failed[:4])
            + "."
        )
    ok = [r for r in result.quality if r["status"] == "ok"]
    if ok:
        unchanged = sum(1 for r in ok if not r["kept"])
        parts.append(
            f"On the {len(ok)} real photos the agent kept no tool on {unchanged} "
            "(the output is the input)."
        )
    outputs = [r for _, _, recs in _safety_groups(result) for r in recs]
    measured = [r for r in outputs if math.isfinite(r.get("new_clipped", math.nan))]
    if measured:
        outside = [r for r in measured if outside_bounds(r)]
        parts.append(
            f"Outputs outside the bounds (> {MAX_NEW_CLIPPED:.0%} newly clipped or border ratio "
            f"outside {BORDER_BOUNDS[0]:g}-{BORDER_BOUNDS[1]:g}): {len(outside)} of "
            f"{len(measured)}"
            + (": " + ", ".join(r["photo"] for r in outside[:6]) if outside else "")
            + "."
        )
    ran = [r for r in result.requests if r["status"] == "ok"]
    if ran:
        kept_any = sum(1 for r in ran if r["kept"])
        silent = [r for r in ran if r["silent"]]
        parts.append(
            f"Explicit requests: {kept_any} of {len(ran)} kept a step; "
            f"{len(silent)} returned the input unchanged silently"
            + (": " + ", ".join(f"“{r['instruction']}”" for r in silent) if silent else "")
            + "."
        )
    return " ".join(parts)


def _settings_line(result: RealBenchResult) -> str:
    return (
        f"`Runner.start` with RunContext(planner={result.planner!r}, "
        f"objective={result.objective!r}, max_steps={result.max_steps}), the shipped tools"
    )


def real_markdown(
    result: RealBenchResult,
    command: str,
    machine: str,
    doc: str | Path | None = None,
) -> str:
    """The section: header, setup, the three parts' tables, per-photo details, findings.
    ``doc``: the markdown file written (contact sheets are linked relative to it)."""
    started = _dt.datetime.fromisoformat(result.started) if result.started else _dt.datetime.now()
    links: dict[str, str] = {}
    for folder, path in result.sheets.items():
        base = Path(doc).resolve().parent if doc is not None else Path.cwd()
        links[folder] = Path(os.path.relpath(Path(path).resolve(), base)).as_posix()
    cap = (
        f"at most {result.n_per_folder} evenly spaced photos per folder"
        if result.n_per_folder
        else "every photo"
    )
    r100 = (
        "all" if result.rain100l_n is None else f"{result.rain100l_n} evenly spaced"
    ) + " Rain100L pairs"
    n_down = sum(1 for r in result.quality if r["downscaled"])
    det, clean = detection_table(result)
    timing = ", ".join(f"{k} {fmt_seconds(v)} s" for k, v in result.timings.items())
    lines = [
        header(TITLE, command, started, result.seconds, machine),
        f"- data: `{result.data_root}` (`{LABELS_FILE}`: each folder's known degradation); "
        f"{cap}; {r100}",
        f"- perception: {result.perception}",
        f"- agent: {_settings_line(result)}; a fresh run per photo; seconds per photo include "
        "loading a tool's model the first time it runs",
        f"- time per part: {timing}",
        "- **dev / test halves**: a photo is in the dev half when crc32(file name) is even, in "
        "the test half when odd. Every table gives dev, test and all. Choices (thresholds, "
        "planner settings, tools) are made on the dev half; **the test half is the quoted "
        "figure**.",
    ]
    for note in result.notes:
        lines.append(f"- note: {note}")
    lines += [
        "",
        "### Detection: does perception report each folder's known degradation?",
        "",
        "Each photo at native size through the default perceiver (`perceive(img).present`); a "
        "photo counts when (one of) its folder's known types is present. Cells: detected / "
        "photos.",
        "",
        det,
        "",
        "False alarms: the share of clean photos (" + ", ".join(result.clean_sets) + ") with "
        "any type present other than JPEG at level 1 (these are JPEG or PNG files of compressed "
        "origin), then per type reported (any level).",
        "",
        clean,
        "",
        "### Real pairs: the whole agent, PSNR / SSIM against the clean image",
        "",
        "Every degraded photo of the labelled `test/small_pairs` folders (clean reference: "
        "the sibling folder) and of Rain100L (rainy vs norain), at native size. *gain* = out − "
        "in, mean over the photos that ran (bold: the test half); *PSNR up*: photos whose "
        "PSNR rose. An output whose size differs from the reference is a failed row (never "
        "resized to fit).",
        "",
        pairs_table(result),
        "",
        *(
            [
                "Perception taken out of the loop: the same pairs, each run with its set's "
                "known task required (`RunContext.required_tasks`, as when the user asks for "
                "it: SOTS → dehaze, GoPro → deblur, RainDrop → deraindrop, LOL → lowlight, "
                "Rain100L → derain). The gap between the two tables is what perception misses; "
                "what is left is the tools' (and reflection's) share.",
                "",
                pairs_table(result, told=True),
                "",
            ]
            if result.pairs_told
            else []
        ),
        "### Real photos: no-reference quality before / after the agent",
        "",
        f"The agent on every photo of the labelled `real/` folders; photos whose long side "
        f"exceeds {result.max_side} px are downscaled to it (Lanczos) before the run "
        f"({n_down} of {len(result.quality)} photos here), and the metrics are taken on the "
        "image the agent got and on its output. NIQE, BRISQUE, PIQE: lower is better (a "
        "negative change is an improvement); `–`: not computable (NIQE needs 96×192 px). "
        "*sheet*: the contact sheet (input | output of the first photos).",
        "",
        quality_table(result, links),
    ]
    if links:
        lines += [
            "",
            "Contact sheets: "
            + ", ".join(f"[{short_name(f)}]({p})" for f, p in links.items())
            + ".",
        ]
    if result.requests:
        lines += [
            "",
            "### Explicit requests on real photos",
            "",
            "Each request through `restoregraph.api.restore(photo, instruction=...)` with the "
            "agent settings above, on one photo of the folder it fits (the first in natural "
            "order, or the first whose name contains the request's pick; downscaled like the "
            "other real photos, ↓). *routed to*: the chat router's reading of the request. "
            "*unchanged silently*: no step kept and no reason or planner note given (the stop "
            "reason alone does not count). *clipped · shift · border*: newly clipped pixels, "
            "mean colour shift, border ratio of the output (see below).",
            "",
            requests_table(result),
        ]
    bounds = bounds_table(result)
    lines += [
        "",
        "### Output checks: clipping, colour shift, border",
        "",
        "Per output of the agent, against the image it got (no reference needed, "
        "`restoregraph.metrics.safety`): *newly clipped*: the share of pixels with a blown or "
        "crushed channel in the output minus that in the input; *colour shift*: how far the "
        "mean chromaticity moved; *border ratio*: the output's mean luminance of a border band "
        "(4 % of the short side, all four sides) over its interior's, divided by the same "
        "ratio of the input (1.0: the border was not darkened or brightened relative to the "
        f"interior). Bounds: at most {MAX_NEW_CLIPPED:.0%} newly clipped, border ratio within "
        f"{BORDER_BOUNDS[0]:g}-{BORDER_BOUNDS[1]:g}.",
        "",
        safety_table(result),
        "",
        "Outputs outside the bounds:" if bounds else "Outputs outside the bounds: none.",
    ]
    if bounds:
        lines += ["", bounds]
    lines += detail_tables(result)
    lines += ["", findings(result)]
    return "\n".join(lines)
