"""A self-contained HTML report of one run: plan, each step's thumbnail, scores, decisions."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from restoregraph.core.timing import timed
from restoregraph.imageio import to_uint8
from restoregraph.store.images import ImageStore

THUMB = 256


def thumbnail_data_url(image: np.ndarray, size: int = THUMB) -> str:
    pil = Image.fromarray(to_uint8(image))
    pil.thumbnail((size, size))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(store: ImageStore, ref: Any, caption: str) -> str:
    if not ref:
        return f"<figure><div class='missing'>no image</div><figcaption>{caption}</figcaption></figure>"
    try:
        url = thumbnail_data_url(store.preview(ref, 2 * THUMB))
    except Exception:
        return (
            f"<figure><div class='missing'>missing</div><figcaption>{caption}</figcaption></figure>"
        )
    return f"<figure><img src='{url}'><figcaption>{html.escape(caption)}</figcaption></figure>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.4em} table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;
padding:4px 8px;font-size:.9em;vertical-align:top} figure{display:inline-block;margin:4px;
text-align:center} img{max-width:256px;border:1px solid #999} .accepted{background:#e6ffe6}
.rolled_back{background:#fff0e0} .failed{background:#ffe6e6} code{background:#f4f4f4;padding:2px}
.missing{width:128px;height:96px;background:#eee;line-height:96px}
.fallback{background:#fff3cd;border-left:4px solid #e0a800;padding:4px 8px}
"""


def is_fallback(note: str) -> bool:
    """A planner note that says its plan did not come from the configured planner."""
    return "fell back" in note or "failed" in note


def planner_notes(state: dict[str, Any], events: list[dict[str, Any]] | None = None) -> list[str]:
    """Every planning round's note: kept in the state (so they survive a resume), or, for runs
    from before the state kept them, the notes of this process's plan events."""
    notes = [str(n) for n in state.get("planner_notes", [])]
    if notes:
        return notes
    return [
        f"round {e.get('round', '?')}: {e['note']}"
        for e in (events or [])
        if e.get("event") == "plan" and e.get("note")
    ]


@timed("output")
def write_report(
    path: str | os.PathLike[str],
    run_id: str,
    meta: dict[str, Any],
    state: dict[str, Any],
    store: ImageStore,
    events: list[dict[str, Any]] | None = None,
) -> Path:
    esc = html.escape
    history = state.get("history", [])
    rows = []
    for h in history:
        rows.append(
            f"<tr class='{h['status']}'><td>{h['index']}</td><td><code>{esc(h['tool'])}</code></td>"
            f"<td>{h['status'].replace('_', ' ')}</td><td>{esc(h['reason'])}</td>"
            f"<td>{sum(h['severity_before'].values()):.2f} → {sum(h['severity_after'].values()):.2f}"
            f"</td><td>{h['quality_before']:.2f} → {h['quality_after']:.2f}</td>"
            f"<td>{h['seconds']:.2f} s</td><td>{_img(store, h.get('output'), h['tool'])}</td></tr>"
        )
    plans = [e for e in (events or []) if e.get("event") == "plan"]
    plan_items = (
        "".join(
            f"<li><code>{esc(p['plan'])}</code>{(' — ' + esc(p['note'])) if p.get('note') else ''}</li>"
            for p in plans
        )
        or f"<li><code>{esc(state.get('plan_text', ''))}</code></li>"
    )
    perception = ", ".join(f"{k} (level {v})" for k, v in state.get("perception", {}).items())
    notes = planner_notes(state, events)
    notes_html = "".join(
        f"<li class='{'fallback' if is_fallback(n) else 'note'}'>{esc(n)}</li>" for n in notes
    )
    fallback = [n for n in notes if is_fallback(n)]
    warning = (
        f"<p class='fallback'><b>The planner {esc(str(meta.get('settings', {}).get('planner')))} "
        f"failed {len(fallback)} time(s); those plans came from the fallback planner</b> "
        "(see Planner notes).</p>"
        if fallback
        else ""
    )
    failed_steps = [h for h in history if h["status"] == "failed"]
    if failed_steps:
        warning += (
            f"<p class='fallback'><b>{len(failed_steps)} tool call(s) failed</b> and were rolled "
            "back: " + esc("; ".join(f"{h['tool']}: {h['reason']}" for h in failed_steps)) + "</p>"
        )
    abandoned = "".join(f"<li>{esc(a)}</li>" for a in state.get("abandoned", []))
    settings = meta.get("settings", {})
    doc = f"""<!doctype html><html><head><meta charset="utf-8">
<title>RestoreGraph run {esc(run_id)}</title><style>{CSS}</style></head><body>
<h1>RestoreGraph run <code>{esc(run_id)}</code></h1>
<p>Input: <code>{esc(str(meta.get("input")))}</code> · Output: <code>{esc(str(meta.get("output")))}
</code> · Planner: <code>{esc(str(settings.get("planner")))}</code> · Mode: {esc(str(settings.get("mode")))}
 · Objective: {esc(str(settings.get("objective")))}</p>
<p>Stop reason: {esc(state.get("stop_reason", "not finished"))}</p>
<div>{_img(store, state.get("original"), "input")}{_img(store, state.get("current"), "result")}</div>
{warning}
<h2>Plans</h2><ol>{plan_items}</ol>
{"<h2>Planner notes</h2><ul>" + notes_html + "</ul>" if notes else ""}
<h2>Remaining perceived degradations</h2><p>{esc(perception) or "none"}</p>
{"<h2>Undone branches</h2><ul>" + abandoned + "</ul>" if abandoned else ""}
<h2>Steps</h2><table><tr><th>#</th><th>tool</th><th>decision</th><th>reason</th>
<th>severity</th><th>quality</th><th>time</th><th>image</th></tr>{"".join(rows)}</table>
</body></html>"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".html.part")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    return out
