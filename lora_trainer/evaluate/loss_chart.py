"""The analysed loss curve as inline SVG: phases shaded, the plateau, large drops, NaN, the
candidate epochs marked, and the validation loss beside the training loss.

SVG in an HTML component looks the same on gradio 3.41 and 4.40 and needs no plotting
package. The validation loss has its own scale on the right (plain MSE on other images: its
level differs from the training loss, its trend is what matters).
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

from .loss_analysis import LossAnalysis

PHASE_FILL = {"steep": "#e8590c22", "slow": "#f59f0014", "plateau": "#2b8a3e1c", "rising": "#c92a2a22"}
LABELS = {"smoothed": "loss (smoothed)", "validation": "validation loss (right scale)", "candidate": "candidate epoch",
          "plateau": "plateau", "drop": "large drop", "nan": "NaN", "steep": "steep", "slow": "slow",
          "rising": "rising"}


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not high > low:
        high = low + (abs(low) * 0.1 or 1.0)
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    value, out = math.floor(low / step) * step, []
    while not out or out[-1] < high - step * 1e-9:   # the last tick reaches the highest value
        out.append(round(value, 10))
        value += step
    return out


def _fmt(value: float, ticks: Sequence[float] = ()) -> str:
    """A tick label with as many decimals as the tick spacing needs (so neighbours never read the same)."""
    if len(ticks) > 1:
        spacing = abs(ticks[1] - ticks[0])
        decimals = max(0, -math.floor(math.log10(spacing)) + (0 if round(spacing / 10 ** math.floor(
            math.log10(spacing)), 6) in (1, 2, 5) else 1))
        return f"{value:.{decimals}f}"
    return f"{value:.3g}"


def loss_chart_svg(analysis: LossAnalysis, validation: Sequence[tuple[int, int | None, float]] = (),
                   width: int = 640, height: int = 260, labels: dict[str, str] | None = None) -> str:
    """``validation``: (epoch, step, loss) as ``run_log.LossLog.validation`` holds it. Empty string
    when there is nothing to draw. ``labels`` replaces the legend's English words."""
    words = {**LABELS, **(labels or {})}
    points = [(s, v) for s, v in zip(analysis.steps, analysis.smoothed) if math.isfinite(v)]
    val = [(s, v) for _, s, v in validation if s is not None and v is not None and math.isfinite(v)]
    if not points:
        return ""
    values = [v for _, v in points] + list(analysis.binned)
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.05
    y_ticks = _ticks(max(0.0, lo - pad), hi + pad)
    y_min, y_max = y_ticks[0], y_ticks[-1]
    steps = [s for s, _ in points] + [s for s, _ in val]
    if analysis.divergence_of("nan") is not None:
        steps.append(analysis.divergence_of("nan").step)
    x_min, x_max = min(0, min(steps)), max(max(steps), 1)
    left, right, top, bottom = 52, 52 if val else 14, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(step: float) -> float:
        return left + (step - x_min) / max(1, x_max - x_min) * plot_w

    def y(value: float, lo_: float = y_min, hi_: float = y_max) -> float:
        return top + (1 - (value - lo_) / ((hi_ - lo_) or 1)) * plot_h

    def at(step: float) -> float:  # the smoothed curve at a step
        for (s0, v0), (s1, v1) in zip(points, points[1:]):
            if s0 <= step <= s1:
                return v0 + (v1 - v0) * ((step - s0) / ((s1 - s0) or 1))
        return points[0][1] if step < points[0][0] else points[-1][1]

    parts = [f'<svg class="lora-trainer-eval-chart" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" role="img">',
             '<style>.le-grid{stroke:#8884;stroke-width:1}.le-raw{stroke:#7aa7e0;stroke-width:1;opacity:.5}'
             '.le-smooth{stroke:#e8590c;stroke-width:2.2}.le-val{stroke:#7048e8;stroke-width:2}'
             '.le-plateau{stroke:#2b8a3e;stroke-width:1.5;stroke-dasharray:5 3}.le-nan{stroke:#c92a2a;stroke-width:2}'
             '.le-cand{fill:#2b8a3e;stroke:#fff;stroke-width:1}.le-drop{fill:#1971c2}'
             '.le-text{font:12px sans-serif;fill:currentColor;opacity:.8}</style>']
    for phase in analysis.phases:
        fill = PHASE_FILL.get(phase.kind)
        if fill:
            parts.append(f'<rect x="{x(phase.start_step):.1f}" y="{top}" width="{max(0.0, x(phase.end_step) - x(phase.start_step)):.1f}" '
                         f'height="{plot_h}" fill="{fill}"><title>{escape(words.get(phase.kind, phase.kind))}: '
                         f'{phase.start_step}–{phase.end_step}</title></rect>')
    for tick in y_ticks:
        parts.append(f'<line class="le-grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        parts.append(f'<text class="le-text" x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{_fmt(tick, y_ticks)}</text>')
    for tick in _ticks(x_min, x_max, 6):
        if x_min <= tick <= x_max:
            parts.append(f'<text class="le-text" x="{x(tick):.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{int(tick)}</text>')
    raw = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(analysis.steps, analysis.binned) if math.isfinite(v))
    parts.append(f'<polyline class="le-raw" points="{raw}" fill="none"/>')
    parts.append('<polyline class="le-smooth" points="'
                 + " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points) + '" fill="none"/>')
    if analysis.plateau_step is not None and not analysis.flat:
        px = x(analysis.plateau_step)
        parts.append(f'<line class="le-plateau" x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + plot_h}">'
                     f'<title>{escape(words["plateau"])}: {analysis.plateau_step}</title></line>')
    nan = analysis.divergence_of("nan")
    if nan is not None and nan.step is not None:
        parts.append(f'<line class="le-nan" x1="{x(nan.step):.1f}" x2="{x(nan.step):.1f}" y1="{top}" '
                     f'y2="{top + plot_h}"><title>{escape(words["nan"])}: {nan.step}</title></line>')
    for drop in analysis.inflections:
        parts.append(f'<path class="le-drop" d="M{x(drop.step) - 5:.1f},{y(drop.before):.1f} h10 l-5,8 z">'
                     f'<title>{escape(words["drop"])}: {drop.step} ({drop.before:.4f} → {drop.after:.4f})</title></path>')
    for rank, c in enumerate(analysis.candidates, start=1):
        cx, cy = x(c.step), y(at(c.step))
        parts.append(f'<circle class="le-cand" cx="{cx:.1f}" cy="{cy:.1f}" r="5"><title>{escape(words["candidate"])} '
                     f'{c.epoch}: {c.loss:.4f}</title></circle>')
        parts.append(f'<text class="le-text" x="{cx:.1f}" y="{cy - 8:.1f}" text-anchor="middle">{c.epoch}</text>')
    if val:
        v_lo, v_hi = min(v for _, v in val), max(v for _, v in val)
        v_pad = (v_hi - v_lo) * 0.1 or abs(v_hi) * 0.05 or 0.05
        v_ticks = _ticks(v_lo - v_pad, v_hi + v_pad)
        vy = lambda v: y(v, v_ticks[0], v_ticks[-1])  # noqa: E731
        for tick in v_ticks:
            parts.append(f'<text class="le-text" x="{width - right + 6}" y="{vy(tick) + 4:.1f}">{_fmt(tick, v_ticks)}</text>')
        parts.append('<polyline class="le-val" points="' + " ".join(f"{x(s):.1f},{vy(v):.1f}" for s, v in val)
                     + '" fill="none"/>')
        for s, v in val:
            parts.append(f'<circle cx="{x(s):.1f}" cy="{vy(v):.1f}" r="3" fill="#7048e8">'
                         f'<title>{escape(words["validation"])}: {v:.4f}</title></circle>')
    parts.append("</svg>")
    key = '<span style="display:inline-block;width:18px;height:0;margin:0 4px 3px 12px;border-top:{}"></span>'
    legend = [key.format("2px solid #e8590c") + f"<span>{escape(words['smoothed'])}</span>"]
    if val:
        legend.append(key.format("2px solid #7048e8") + f"<span>{escape(words['validation'])}</span>")
    if analysis.candidates:
        legend.append('<span style="display:inline-block;width:9px;height:9px;border-radius:50%;background:#2b8a3e;'
                      f'margin:0 4px 0 12px"></span><span>{escape(words["candidate"])}</span>')
    if analysis.plateau_step is not None and not analysis.flat:
        legend.append(key.format("1.5px dashed #2b8a3e") + f"<span>{escape(words['plateau'])}</span>")
    return (f'<div class="lora-trainer-eval-chart-box">{"".join(parts)}'
            f'<div class="lora-trainer-legend" style="font-size:12px;opacity:.85">{"".join(legend)}</div></div>')
