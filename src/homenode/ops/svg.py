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


def x_ticks(x0: float, x1: float, sx, y: float) -> list[str]:
    out = []
    for v in nice_ticks(x0, x1, 8):
        x = float(sx(np.array([v]))[0])
        out.append(f'<text x="{x:.1f}" y="{y:g}" text-anchor="middle" class="tick">'
                   f'{_fmt(v)}</text>')
    return out


def event_marks(events: list[float], x0: float, x1: float, sx, top: float,
                bottom: float) -> list[str]:
    """Dashed vertical lines at the scenario's events (starts, stops, demand changes)."""
    out = []
    for t in events:
        if x0 <= t <= x1:
            x = float(sx(np.array([t]))[0])
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" '
                       f'class="event"><title>event at t={t:g} s</title></line>')
    return out


def line_chart(series: list[Series], *, title: str, xlabel: str, ylabel: str,
               plot_id: str, ylim: tuple[float | None, float | None] = (None, None),
               width: int = WIDTH, height: int = HEIGHT, events: list[float] = ()) -> str:
    """An SVG line chart; an empty chart says 'no data' instead of drawing nothing.
    ``events`` are marked as dashed vertical lines."""
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
    out += x_ticks(x0, x1, sx, MARGIN_T + ph + 16)
    out.append(f'<text x="{MARGIN_L + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" '
               f'class="axis">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(14 {MARGIN_T + ph / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle" class="axis">{escape(ylabel)}</text>')
    out += event_marks(list(events), x0, x1, sx, MARGIN_T, MARGIN_T + ph)
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


# --- heatmaps -------------------------------------------------------------------------------

HEAT_COLUMNS = 240       # time buckets of a heatmap at most
HEAT_ROW_MAX = 14        # px per row when few rows
HEAT_HEIGHT_MAX = 640    # px of the plotting area at most (rows get thinner past it)
# Locality 0..100 % in ten steps, dark red (all remote) to pale green (all local): a
# sequential scale that stays readable in grey and to most colour-blind viewers.
LOCALITY_STEPS = ("#67000d", "#a50f15", "#d7301f", "#ef6548", "#fc8d59", "#fdbb84",
                  "#fdd49e", "#d9f0a3", "#a1d99b", "#41ab5d")
ABSENT = "#f4f4f4"


def locality_color(v: float) -> str:
    if not math.isfinite(v):
        return ABSENT
    return LOCALITY_STEPS[min(int(v * len(LOCALITY_STEPS)), len(LOCALITY_STEPS) - 1)]


def home_color(v: float) -> str:
    return ABSENT if not math.isfinite(v) or v < 0 else PALETTE[int(v) % len(PALETTE)]


def bucket_columns(times: np.ndarray, values: np.ndarray, columns: int = HEAT_COLUMNS,
                   worst: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) values into at most ``columns`` time buckets: each bucket keeps its minimum
    (``worst``: a dip in locality stays visible) or its last value (a home node)."""
    n = len(times)
    if n <= columns:
        return times, values
    edges = np.array_split(np.arange(n), columns)
    starts = np.array([times[b[0]] for b in edges])
    out = np.full((len(edges), values.shape[1]), np.nan)
    for k, b in enumerate(edges):
        block = values[b]
        if worst:
            with np.errstate(all="ignore"):
                finite = np.isfinite(block)
                out[k] = np.where(finite.any(axis=0),
                                  np.nanmin(np.where(finite, block, np.inf), axis=0), np.nan)
        else:
            out[k] = block[-1]
    return starts, out


def heatmap(rows: list[str], times: np.ndarray, values: np.ndarray, color, *, title: str,
            plot_id: str, scale: list[tuple[str, str]], events: list[float] = (),
            worst: bool = True, width: int = WIDTH) -> str:
    """Rows (clients) x time as coloured cells; runs of one colour in a row are one
    rectangle, so a mostly steady run of hundreds of clients stays small.  ``scale`` is
    the key: (colour, label) pairs drawn under the plot."""
    times = np.asarray(times, float)
    values = np.asarray(values, float)
    starts, cells = bucket_columns(times, values, worst=worst)
    n_rows = len(rows)
    row_h = max(1.0, min(HEAT_ROW_MAX, HEAT_HEIGHT_MAX / max(n_rows, 1)))
    ph = row_h * n_rows
    label_rows = row_h >= 9
    left = MARGIN_L + (60 if label_rows else 0)
    pw = width - left - MARGIN_R
    height = MARGIN_T + ph + MARGIN_B + 22
    x0 = float(times[0]) if len(times) else 0.0
    x1 = float(times[-1]) if len(times) > 1 else x0 + 1.0
    step = (x1 - x0) / max(len(starts) - 1, 1)
    ends = np.append(starts[1:], x1 + step) if len(starts) else starts

    def sx(v: np.ndarray) -> np.ndarray:
        return left + (v - x0) / (x1 + step - x0) * pw

    out = [f'<svg class="plot heat" id="{escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" '
           f'role="img" aria-label="{escape(title)}">',
           f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="title">'
           f'{escape(title)}</text>',
           f'<rect x="{left}" y="{MARGIN_T}" width="{pw}" height="{ph:.1f}" class="frame"/>']
    for r, name in enumerate(rows):
        y = MARGIN_T + r * row_h
        col = cells[:, r] if cells.size else np.zeros(0)
        colors = [color(v) for v in col]
        k = 0
        while k < len(colors):
            j = k
            while j + 1 < len(colors) and colors[j + 1] == colors[k]:
                j += 1
            if colors[k] != ABSENT:
                xa, xb = float(sx(np.array([starts[k]]))[0]), float(sx(np.array([ends[j]]))[0])
                out.append(f'<rect x="{xa:.1f}" y="{y:.1f}" width="{max(xb - xa, 0.5):.1f}" '
                           f'height="{row_h:.2f}" fill="{colors[k]}" class="cell"/>')
            k = j + 1
        if label_rows:
            out.append(f'<text x="{left - 4}" y="{y + row_h * 0.75:.1f}" text-anchor="end" '
                       f'class="tick">{escape(name)}</text>')
    if not label_rows:
        out.append(f'<text transform="translate(14 {MARGIN_T + ph / 2:.0f}) rotate(-90)" '
                   f'text-anchor="middle" class="axis">{n_rows} clients (by name, top '
                   f'to bottom)</text>')
    out += x_ticks(x0, x1, sx, MARGIN_T + ph + 16)
    out.append(f'<text x="{left + pw / 2:.0f}" y="{MARGIN_T + ph + 32:.0f}" '
               f'text-anchor="middle" class="axis">time (s)</text>')
    out += event_marks(list(events), x0, x1 + step, sx, MARGIN_T, MARGIN_T + ph)
    x = left
    y = MARGIN_T + ph + 44
    for c, label in scale:
        out.append(f'<rect x="{x}" y="{y:.0f}" width="14" height="10" fill="{c}" '
                   f'stroke="#999" stroke-width="0.5"/><text x="{x + 18}" y="{y + 9:.0f}" '
                   f'class="tick">{escape(label)}</text>')
        x += 26 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out)


def locality_scale() -> list[tuple[str, str]]:
    n = len(LOCALITY_STEPS)
    return [(c, f"{100 * k // n}–{100 * (k + 1) // n}%") for k, c in enumerate(LOCALITY_STEPS)]
