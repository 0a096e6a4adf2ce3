"""Line charts as inline SVG: the HTML report's plots, with no library and no network.

A chart is an ``<svg class="plot">`` with a frame, axis ticks, and one
``<path class="series">`` per series; long series are reduced to at most ``MAX_POINTS``
points per series by keeping each bucket's minimum and maximum, so spikes survive.
Output is deterministic: the same data gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

MAX_POINTS = 800         # points kept per series after min/max decimation
WIDTH, HEIGHT = 880, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 62, 16, 30, 40
HEADROOM = 0.05          # fraction added above the data when the top is automatic
# Tableau-10: distinguishable, and readable by most colour-blind viewers.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    color: str = ""
    width: float = 1.5
    step: bool = False     # draw as a step function (counters)


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: each bucket's min and max, in time order."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) <= max_points:
        return x, y
    buckets = np.array_split(np.arange(len(x)), max_points // 2)
    idx = []
    for b in buckets:
        lo, hi = b[np.argmin(y[b])], b[np.argmax(y[b])]
        idx.extend(sorted({int(lo), int(hi)}))
    idx_a = np.array(idx)
    return x[idx_a], y[idx_a]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.1e}"
    return f"{v:g}"


def line_chart(series: list[Series], *, title: str, xlabel: str, ylabel: str,
               plot_id: str, ylim: tuple[float | None, float | None] = (None, None),
               width: int = WIDTH, height: int = HEIGHT) -> str:
    """An SVG line chart; an empty chart says 'no data' instead of drawing nothing."""
    pts = [(s, *decimate(np.asarray(s.x, float), np.asarray(s.y, float))) for s in series]
    pts = [(s, x, y) for s, x, y in pts if len(x)]
    xs = np.concatenate([x for _, x, _ in pts]) if pts else np.zeros(0)
    ys = np.concatenate([y for _, _, y in pts]) if pts else np.zeros(0)
    x0, x1 = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 1.0)
    y0 = ylim[0] if ylim[0] is not None else (float(ys.min()) if len(ys) else 0.0)
    y1 = ylim[1] if ylim[1] is not None else (float(ys.max()) if len(ys) else 1.0)
    if ylim[0] is None and y0 > 0 and y0 < 0.5 * y1:
        y0 = 0.0     # small positive data reads best from a zero baseline
    if ylim[1] is None and y1 > y0:
        y1 += HEADROOM * (y1 - y0)      # a line at the maximum stays off the frame
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y1 = y0 + (abs(y0) or 1.0)
    pw, ph = width - MARGIN_L - MARGIN_R, height - MARGIN_T - MARGIN_B

    def sx(v: np.ndarray) -> np.ndarray:
        return MARGIN_L + (v - x0) / (x1 - x0) * pw

    def sy(v: np.ndarray) -> np.ndarray:
        return MARGIN_T + ph - (np.clip(v, y0, y1) - y0) / (y1 - y0) * ph

    out = [f'<svg class="plot" id="{escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}">',
           f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="title">'
           f'{escape(title)}</text>',
           f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{pw}" height="{ph}" class="frame"/>']
    for v in nice_ticks(y0, y1):
        y = float(sy(np.array([v]))[0])
        out.append(f'<line x1="{MARGIN_L}" x2="{MARGIN_L + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'class="grid"/><text x="{MARGIN_L - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end" class="tick">{_fmt(v)}</text>')
    for v in nice_ticks(x0, x1, 8):
        x = float(sx(np.array([v]))[0])
        out.append(f'<text x="{x:.1f}" y="{MARGIN_T + ph + 16}" text-anchor="middle" '
                   f'class="tick">{_fmt(v)}</text>')
    out.append(f'<text x="{MARGIN_L + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" '
               f'class="axis">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(14 {MARGIN_T + ph / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle" class="axis">{escape(ylabel)}</text>')
    for k, (s, x, y) in enumerate(pts):
        color = s.color or PALETTE[k % len(PALETTE)]
        px, py = sx(x), sy(y)
        if s.step and len(px) > 1:
            px = np.repeat(px, 2)[1:]
            py = np.repeat(py, 2)[:-1]
        d = "M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        out.append(f'<path class="series" data-series="{escape(s.label)}" d="{d}" '
                   f'fill="none" stroke="{color}" stroke-width="{s.width}" '
                   f'stroke-linejoin="round"><title>{escape(s.label)}</title></path>')
    if not pts:
        out.append(f'<text x="{MARGIN_L + pw / 2:.0f}" y="{MARGIN_T + ph / 2:.0f}" '
                   f'text-anchor="middle" class="empty">no data</text>')
    out.append("</svg>")
    return "\n".join(out)


def legend(series: list[Series], max_items: int = 16) -> str:
    """An HTML legend below a chart (the chart itself keeps the plotting area free)."""
    items = [f'<span class="key"><i style="background:{s.color or PALETTE[k % len(PALETTE)]}">'
             f'</i>{escape(s.label)}</span>' for k, s in enumerate(series[:max_items])]
    if len(series) > max_items:
        items.append(f'<span class="key">… and {len(series) - max_items} more</span>')
    return f'<div class="legend">{"".join(items)}</div>'
