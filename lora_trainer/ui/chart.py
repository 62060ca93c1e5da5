"""The live loss chart as inline SVG: step loss, a smoothed curve, epoch boundaries with the epoch mean.

SVG inside an HTML component renders the same on gradio 3.41 and 4.40, needs no plotting package
(Forge's environment has no altair), writes no temp files while it refreshes, and can draw the
epoch boundaries that gradio's LinePlot cannot mark on both versions. Gradio-free.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

MAX_POINTS = 600
SMOOTHING = 0.9


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard draws it): the first points
    are not pulled towards zero."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * value
        out.append(avg / (1 - weight ** i))
    return out


def _thin(points: list[tuple[int, float]], limit: int = MAX_POINTS) -> list[tuple[int, float]]:
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    return [points[int(i * stride)] for i in range(limit)] + [points[-1]]


def nice_ticks(low: float, high: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values from ``low`` to at least ``high``; ``whole``: steps of 1 or more (step counts)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1, round(step))
    first = math.floor(low / step) * step
    ticks = [round(first, 10)]
    while ticks[-1] < high - step * 1e-9:   # the last tick reaches the highest value
        ticks.append(round(first + len(ticks) * step, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def loss_chart_svg(losses: Sequence[Sequence[float]], epoch_losses: Sequence[Sequence[float]] = (),
                   validation: Sequence[Sequence[float]] = (), width: int = 520, height: int = 230) -> str:
    """``losses``: (step, loss); ``epoch_losses``: (epoch, last step, mean loss); ``validation``:
    (epoch, step, validation loss), drawn on its own scale at the right (it is a plain MSE on other
    images, not comparable in level with the training loss). Empty string without data."""
    points = [(int(s), float(v)) for s, v in losses if v is not None and math.isfinite(float(v))]
    if not points:
        return ""
    epochs = [(int(e), int(s), float(m)) for e, s, m in epoch_losses if m is not None and math.isfinite(float(m))]
    val = [(int(e), int(s), float(v)) for e, s, v in validation
           if s is not None and v is not None and math.isfinite(float(v))]
    smoothed = list(zip([s for s, _ in points], smooth([v for _, v in points])))
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.05
    y_ticks = nice_ticks(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
    y_min, y_max = y_ticks[0], y_ticks[-1]
    x_min, x_max = min(points[0][0], 0), max(points[-1][0], 1)
    left, right, top, bottom = 52, 52 if val else 12, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(step: float) -> float:
        return left + (step - x_min) / max(1, x_max - x_min) * plot_w

    def y(value: float) -> float:
        return top + (1 - (value - y_min) / ((y_max - y_min) or 1)) * plot_h

    def polyline(series: list[tuple[int, float]], cls: str) -> str:
        coords = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in _thin(series))
        return f'<polyline class="{cls}" points="{coords}" fill="none"/>'

    parts = [f'<svg class="lora-trainer-chart" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" role="img">',
             '<style>.lt-grid{stroke:#8884;stroke-width:1}.lt-raw{stroke:#7aa7e0;stroke-width:1;opacity:.55}'
             '.lt-smooth{stroke:#e8590c;stroke-width:2.2}.lt-epoch{stroke:#888;stroke-width:1;stroke-dasharray:4 3}'
             '.lt-mean{fill:#2b8a3e}.lt-now{fill:#e8590c}.lt-val{stroke:#7048e8;stroke-width:2}'
             '.lt-val-dot{fill:#7048e8}.lt-val-text{fill:#7048e8;opacity:1}'
             '.lt-text{font:12px sans-serif;fill:currentColor;opacity:.8}</style>']
    for tick in y_ticks:
        parts.append(f'<line class="lt-grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        parts.append(f'<text class="lt-text" x="{left - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{_fmt(tick)}</text>')
    for tick in nice_ticks(x_min, x_max, 6, whole=True):
        if x_min <= tick <= x_max:
            parts.append(f'<text class="lt-text" x="{x(tick):.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{int(tick)}</text>')
    for epoch, step, mean in epochs:
        parts.append(f'<line class="lt-epoch" x1="{x(step):.1f}" x2="{x(step):.1f}" y1="{top}" y2="{top + plot_h}"/>')
        parts.append(f'<text class="lt-text" x="{x(step) - 3:.1f}" y="{top + 10}" text-anchor="end">{epoch}</text>')
    parts.append(polyline(points, "lt-raw"))
    parts.append(polyline(smoothed, "lt-smooth"))
    last_step, last_value = smoothed[-1]
    parts.append(f'<circle class="lt-now" cx="{x(last_step):.1f}" cy="{y(last_value):.1f}" r="2.5"/>')
    for epoch, step, mean in epochs:
        parts.append(f'<circle class="lt-mean" cx="{x(step):.1f}" cy="{y(mean):.1f}" r="3.5">'
                     f'<title>{escape(f"{epoch}: {mean:.4f}")}</title></circle>')
    if val:
        v_ticks = nice_ticks(min(v for *_, v in val) * 0.98, max(v for *_, v in val) * 1.02, 4)

        def y_val(value: float) -> float:
            return top + (1 - (value - v_ticks[0]) / ((v_ticks[-1] - v_ticks[0]) or 1)) * plot_h

        for tick in v_ticks:
            parts.append(f'<text class="lt-text lt-val-text" x="{width - right + 6}" y="{y_val(tick) + 4:.1f}">'
                         f'{_fmt(tick)}</text>')
        coords = " ".join(f"{x(s):.1f},{y_val(v):.1f}" for _, s, v in val)
        parts.append(f'<polyline class="lt-val" points="{coords}" fill="none"/>')
        for epoch, step, value in val:
            parts.append(f'<circle class="lt-val-dot" cx="{x(step):.1f}" cy="{y_val(value):.1f}" r="3">'
                         f'<title>{escape(f"{epoch}: {value:.4f}")}</title></circle>')
    parts.append('</svg>')
    key = '<span style="display:inline-block;width:18px;height:0;margin:0 4px 3px 12px;border-top:{}"></span>'
    legend = ('<div class="lora-trainer-legend" style="font-size:12px;opacity:.85">'
              + key.format("1px solid #7aa7e0") + "<span>step loss</span>"
              + key.format("2px solid #e8590c") + "<span>smoothed</span>"
              + key.format("1px dashed #888") + "<span>epoch end and mean loss</span>"
              + (key.format("2px solid #7048e8") + "<span>validation loss (right scale)</span>" if val else "")
              + "</div>")
    return f'<div class="lora-trainer-chart-box">{"".join(parts)}{legend}</div>'
