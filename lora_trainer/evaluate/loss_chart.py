"""The loss curve as inline SVG, for the Train tab's live chart and the Evaluate tab's analysis.

Live, it draws each step's loss, a smoothed line and a mark at each epoch's end with its mean loss.
Analysed, it draws the binned curve and its smoothed line, the phases shaded, the plateau, large
drops, NaN and the candidate epochs. Both draw the validation loss on its own scale at the right (a
plain MSE on other images: its level differs from the training loss, its trend is what matters).

SVG in an HTML component looks the same on gradio 3.41 and 4.40, needs no plotting package (Forge's
environment has no altair), writes no temp files while it refreshes, and can mark epochs. Gradio-free.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

import numpy as np

from .curve_math import smooth
from ..text.messages import msg
from .loss_analysis import LossAnalysis
from . import messages  # noqa: F401  (registers the legend's words)

MAX_POINTS = 600          # per line: longer series are thinned
PHASE_FILL = {"steep": "#e8590c22", "slow": "#f59f0014", "plateau": "#2b8a3e1c", "rising": "#c92a2a22"}
LEGEND = ("raw", "smoothed", "epoch", "analysed", "validation", "candidate", "plateau", "drop", "nan", "steep",
          "slow", "rising")


def chart_labels(language=None) -> dict[str, str]:
    """The legend's words in ``language`` (a code such as "zh_CN", or a table of templates; None: English)."""
    return {name: msg(f"chart.{name}").format(language or "en") for name in LEGEND}


LABELS = chart_labels()
STYLE = ('<style>.lt-grid{stroke:#8884;stroke-width:1}.lt-raw{stroke:#7aa7e0;stroke-width:1;opacity:.55}'
         '.lt-smooth{stroke:#e8590c;stroke-width:2.2}.lt-epoch{stroke:#888;stroke-width:1;stroke-dasharray:4 3}'
         '.lt-mean{fill:#2b8a3e}.lt-now{fill:#e8590c}.lt-val{stroke:#7048e8;stroke-width:2}.lt-val-dot{fill:#7048e8}'
         '.lt-val-text{fill:#7048e8;opacity:1}.lt-plateau{stroke:#2b8a3e;stroke-width:1.5;stroke-dasharray:5 3}'
         '.lt-nan{stroke:#c92a2a;stroke-width:2}.lt-cand{fill:#2b8a3e;stroke:#fff;stroke-width:1}.lt-drop{fill:#1971c2}'
         '.lt-text{font:12px sans-serif;fill:currentColor;opacity:.8}</style>')


def nice_ticks(low: float, high: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values from ``low`` to at least ``high``; ``whole``: steps of 1 or more (step counts)."""
    if not high > low:
        high = low + (abs(low) * 0.1 or 1.0)
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


def tick_label(value: float, ticks: Sequence[float] = ()) -> str:
    """A tick label with as many decimals as the tick spacing needs (so neighbours never read the same)."""
    spacing = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 0.0
    if spacing > 0:
        leading = round(spacing / 10 ** math.floor(math.log10(spacing)), 6)
        decimals = max(0, -math.floor(math.log10(spacing)) + (0 if leading in (1, 2, 5) else 1))
        return f"{value:.{decimals}f}"
    return f"{value:.3g}"


def smooth_live(values: Sequence[float]) -> list[float]:
    """The live chart's smoothed line: the analysis' rolling median-then-mean, over about a tenth of the run."""
    if not values:
        return []
    return smooth(np.asarray(values, dtype=float), max(1, min(51, len(values) // 10))).tolist()


def _thin(points: list[tuple[int, float]], limit: int = MAX_POINTS) -> list[tuple[int, float]]:
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    return [points[int(i * stride)] for i in range(limit)] + [points[-1]]


def _pad(lo: float, hi: float, share: float) -> float:
    """Room above and below a range; a flat range (rounding noise included) gets 5% of its level."""
    if hi - lo > 1e-9 * max(1.0, abs(hi)):
        return (hi - lo) * share
    return abs(hi) * 0.05 or 0.05


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def loss_chart_svg(curve: LossAnalysis | Sequence[Sequence[float]], validation: Sequence[Sequence] = (),
                   epochs: Sequence[Sequence[float]] = (), *, width: int | None = None, height: int | None = None,
                   labels: dict[str, str] | None = None) -> str:
    """``curve``: a ``LossAnalysis`` (the Evaluate tab), or the live (step, loss) pairs of a run (the Train
    tab) with ``epochs`` as (epoch, last step, mean loss). ``validation``: (epoch, step, loss). ``labels``
    replaces the legend's English words. Empty string when there is nothing to draw."""
    words = {**LABELS, **(labels or {})}
    analysis = curve if isinstance(curve, LossAnalysis) else None
    if analysis is not None:
        raw = [(s, v) for s, v in zip(analysis.steps, analysis.binned) if math.isfinite(v)]
        line = [(s, v) for s, v in zip(analysis.steps, analysis.smoothed) if math.isfinite(v)]
        marks: list[tuple[int, int, float]] = []
    else:
        raw = [(int(s), float(v)) for s, v in curve if _finite(v)]
        line = list(zip([s for s, _ in raw], smooth_live([v for _, v in raw])))
        marks = [(int(e), int(s), float(m)) for e, s, m in epochs if _finite(m)]
    if not line:
        return ""
    val = [(int(e), int(s), float(v)) for e, s, v in validation if s is not None and _finite(v)]
    width = width or (640 if analysis else 520)
    height = height or (260 if analysis else 230)
    values = [v for _, v in line] + [v for _, v in raw]
    lo, hi = min(values), max(values)
    pad = _pad(lo, hi, 0.05)
    y_ticks = nice_ticks(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
    y_min, y_max = y_ticks[0], y_ticks[-1]
    steps = [s for s, _ in line] + [s for _, s, _ in val]
    nan = analysis.divergence_of("nan") if analysis is not None else None
    if nan is not None and nan.step is not None:
        steps.append(nan.step)
    x_min, x_max = min(0, min(steps)), max(max(steps), 1)
    left, right, top, bottom = 52, 52 if val else 14, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(step: float) -> float:
        return left + (step - x_min) / max(1, x_max - x_min) * plot_w

    def y(value: float, lo_: float = y_min, hi_: float = y_max) -> float:
        return top + (1 - (value - lo_) / ((hi_ - lo_) or 1)) * plot_h

    def polyline(series: list[tuple[int, float]], cls: str, to_y=y) -> str:
        coords = " ".join(f"{x(s):.1f},{to_y(v):.1f}" for s, v in _thin(series))
        return f'<polyline class="{cls}" points="{coords}" fill="none"/>'

    def vline(step: float, cls: str, title: str = "") -> str:
        tip = f"<title>{escape(title)}</title>" if title else ""
        return f'<line class="{cls}" x1="{x(step):.1f}" x2="{x(step):.1f}" y1="{top}" y2="{top + plot_h}">{tip}</line>'

    parts = [f'<svg class="lora-trainer-chart" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" role="img">', STYLE]
    for phase in analysis.phases if analysis is not None else []:
        if phase.kind in PHASE_FILL:
            parts.append(f'<rect x="{x(phase.start_step):.1f}" y="{top}" '
                         f'width="{max(0.0, x(phase.end_step) - x(phase.start_step)):.1f}" height="{plot_h}" '
                         f'fill="{PHASE_FILL[phase.kind]}"><title>{escape(words.get(phase.kind, phase.kind))}: '
                         f'{phase.start_step}–{phase.end_step}</title></rect>')
    for tick in y_ticks:
        parts.append(f'<line class="lt-grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        parts.append(f'<text class="lt-text" x="{left - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick_label(tick, y_ticks)}</text>')
    for tick in nice_ticks(x_min, x_max, 6, whole=True):
        if x_min <= tick <= x_max:
            parts.append(f'<text class="lt-text" x="{x(tick):.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{int(tick)}</text>')
    for epoch, step, _ in marks:
        parts.append(vline(step, "lt-epoch"))
        parts.append(f'<text class="lt-text" x="{x(step) - 3:.1f}" y="{top + 10}" text-anchor="end">{epoch}</text>')
    parts.append(polyline(raw, "lt-raw"))
    parts.append(polyline(line, "lt-smooth"))
    if analysis is None:
        last_step, last_value = line[-1]
        parts.append(f'<circle class="lt-now" cx="{x(last_step):.1f}" cy="{y(last_value):.1f}" r="2.5"/>')
    for epoch, step, mean in marks:
        parts.append(f'<circle class="lt-mean" cx="{x(step):.1f}" cy="{y(mean):.1f}" r="3.5">'
                     f'<title>{escape(f"{epoch}: {mean:.4f}")}</title></circle>')
    if analysis is not None:
        parts += _analysis_marks(analysis, line, words, x, y, vline)
    if val:
        v_lo, v_hi = min(v for *_, v in val), max(v for *_, v in val)
        v_pad = _pad(v_lo, v_hi, 0.1)
        v_ticks = nice_ticks(v_lo - v_pad, v_hi + v_pad)

        def y_val(value: float) -> float:
            return y(value, v_ticks[0], v_ticks[-1])

        for tick in v_ticks:
            parts.append(f'<text class="lt-text lt-val-text" x="{width - right + 6}" y="{y_val(tick) + 4:.1f}">'
                         f'{tick_label(tick, v_ticks)}</text>')
        parts.append(polyline([(s, v) for _, s, v in val], "lt-val", y_val))
        for epoch, step, value in val:
            parts.append(f'<circle class="lt-val-dot" cx="{x(step):.1f}" cy="{y_val(value):.1f}" r="3">'
                         f'<title>{escape(words["validation"])} {epoch}: {value:.4f}</title></circle>')
    parts.append("</svg>")
    return f'<div class="lora-trainer-chart-box">{"".join(parts)}{_legend(analysis, bool(val), words)}</div>'


def _analysis_marks(analysis: LossAnalysis, line: list[tuple[int, float]], words: dict, x, y, vline) -> list[str]:
    """The plateau, NaN, large drops and candidate epochs of an analysed curve."""
    def at(step: float) -> float:   # the smoothed curve at a step
        for (s0, v0), (s1, v1) in zip(line, line[1:]):
            if s0 <= step <= s1:
                return v0 + (v1 - v0) * ((step - s0) / ((s1 - s0) or 1))
        return line[0][1] if step < line[0][0] else line[-1][1]

    parts = []
    if analysis.plateau_step is not None and not analysis.flat:
        parts.append(vline(analysis.plateau_step, "lt-plateau", f"{words['plateau']}: {analysis.plateau_step}"))
    nan = analysis.divergence_of("nan")
    if nan is not None and nan.step is not None:
        parts.append(vline(nan.step, "lt-nan", f"{words['nan']}: {nan.step}"))
    for drop in analysis.inflections:
        parts.append(f'<path class="lt-drop" d="M{x(drop.step) - 5:.1f},{y(drop.before):.1f} h10 l-5,8 z">'
                     f'<title>{escape(words["drop"])}: {drop.step} ({drop.before:.4f} → {drop.after:.4f})</title></path>')
    for c in analysis.candidates:
        cx, cy = x(c.step), y(at(c.step))
        parts.append(f'<circle class="lt-cand" cx="{cx:.1f}" cy="{cy:.1f}" r="5"><title>{escape(words["candidate"])} '
                     f'{c.epoch}: {c.loss:.4f}</title></circle>')
        parts.append(f'<text class="lt-text" x="{cx:.1f}" y="{cy - 8:.1f}" text-anchor="middle">{c.epoch}</text>')
    return parts


def _legend(analysis: LossAnalysis | None, validation: bool, words: dict) -> str:
    key = '<span style="display:inline-block;width:18px;height:0;margin:0 4px 3px 12px;border-top:{}"></span>'
    dot = ('<span style="display:inline-block;width:9px;height:9px;border-radius:50%;background:#2b8a3e;'
           'margin:0 4px 0 12px"></span>')
    if analysis is None:
        items = [(key.format("1px solid #7aa7e0"), "raw"), (key.format("2px solid #e8590c"), "smoothed"),
                 (key.format("1px dashed #888"), "epoch")]
    else:
        items = [(key.format("2px solid #e8590c"), "analysed")]
    if validation:
        items.append((key.format("2px solid #7048e8"), "validation"))
    if analysis is not None and analysis.candidates:
        items.append((dot, "candidate"))
    if analysis is not None and analysis.plateau_step is not None and not analysis.flat:
        items.append((key.format("1.5px dashed #2b8a3e"), "plateau"))
    return ('<div class="lora-trainer-legend" style="font-size:12px;opacity:.85">'
            + "".join(f"{mark}<span>{escape(words[name])}</span>" for mark, name in items) + "</div>")
