"""Draw the agent graph offline: Mermaid text, or a PNG rendered with Pillow.

(``draw_mermaid_png`` calls a web service, which fails offline; pygraphviz needs system
Graphviz. This renderer needs neither.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from restoregraph.core.errors import OutputError


def graph_edges() -> tuple[list[str], list[tuple[str, str, bool]]]:
    """(nodes in order, edges as (source, target, conditional)) of the compiled graph."""
    from restoregraph.graph.builder import compile_graph

    g = compile_graph().get_graph()
    nodes = list(g.nodes)
    edges = [(e.source, e.target, bool(e.conditional)) for e in g.edges]
    return nodes, edges


def _arrow(
    draw: ImageDraw.ImageDraw, pts: list[tuple[float, float]], dashed: bool, colour: Any
) -> None:
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if dashed:
            n = max(1, int(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 // 8))
            for i in range(0, n, 2):
                a, b = i / n, min(1.0, (i + 1) / n)
                draw.line(
                    [
                        (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                        (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b),
                    ],
                    fill=colour,
                    width=2,
                )
        else:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=2)
    (xa, ya), (xb, yb) = pts[-2], pts[-1]
    import math

    ang = math.atan2(yb - ya, xb - xa)
    for d in (2.6, -2.6):
        draw.line(
            [(xb, yb), (xb + 10 * math.cos(ang + d), yb + 10 * math.sin(ang + d))],
            fill=colour,
            width=2,
        )


def render_png(path: Path) -> None:
    nodes, edges = graph_edges()
    order = {n: i for i, n in enumerate(nodes)}
    w, box_w, box_h, gap = 640, 180, 44, 40
    h = len(nodes) * (box_h + gap) + gap
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    cx = 200
    centre = {n: (cx, gap + i * (box_h + gap) + box_h / 2) for i, n in enumerate(nodes)}
    for n, (x, y) in centre.items():
        fill = "#bfb6fc" if n == "__end__" else "#f2f0ff"
        draw.rounded_rectangle(
            [x - box_w / 2, y - box_h / 2, x + box_w / 2, y + box_h / 2],
            radius=12,
            fill=fill,
            outline="#444",
            width=2,
        )
        draw.text((x, y), n, fill="black", anchor="mm")
    lanes: dict[int, int] = {}
    for src, dst, cond in edges:
        (x0, y0), (x1, y1) = centre[src], centre[dst]
        colour = "#555" if not cond else "#2a6"
        if order[dst] == order[src] + 1:
            _arrow(draw, [(x0, y0 + box_h / 2), (x1, y1 - box_h / 2)], cond, colour)
            continue
        lane = lanes.setdefault(order[src], 0)
        lanes[order[src]] += 1
        xr = cx + box_w / 2 + 25 + 30 * (len(lanes) + lane) % 400
        _arrow(draw, [(x0 + box_w / 2, y0), (xr, y0), (xr, y1), (x1 + box_w / 2, y1)], cond, colour)
    draw.text((10, h - 16), "solid: fixed edge   dashed: routed by Command", fill="#666")
    img.save(path)


def write_graph(path: str | Path, overwrite: bool = False) -> Path:
    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.suffix.lower() in (".mmd", ".md", ".txt"):
        from restoregraph.graph.builder import compile_graph

        out.write_text(compile_graph().get_graph().draw_mermaid())
    elif out.suffix.lower() == ".png":
        render_png(out)
    else:
        raise OutputError(f"{out}: use a .png or .mmd file name")
    return out
