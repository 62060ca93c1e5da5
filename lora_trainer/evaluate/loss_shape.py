"""The shape of a loss curve: its phases (steep fall, slow fall, plateau, rise), the step where it flattens,
its large drops ("inflection points"), a rise after the lowest point or repeated swings, and where it nears
zero. A three-piece continuous linear fit of the binned curve classes each piece by how much of the total fall
it carries per share of the run; inflections are windows that fall much more than their neighbours. Works on
bin means and a median-then-mean smoothed curve (per-step diffusion losses are very noisy). numpy only.

``describe(out, steps, losses)`` fills the curve fields of a ``LossAnalysis`` and its sentences about them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .curve_math import bin_curve, fit_three_pieces, noise_sigma, smooth, zigzag_rises
from .messages import msg

if TYPE_CHECKING:
    from .loss_analysis import LossAnalysis

NEAR_ZERO = 0.02          # a loss this low means the LoRA reproduces its training images
MAX_POINTS = 200          # bins the curve is reduced to
MIN_POINTS = 12           # fewer finite values: no phase analysis
STEEP_RATE = 2.0          # a piece falling this many times faster than average is "steep"
PLATEAU_SHARE = 0.1       # a piece carrying less than this share of the total fall is flat
MIN_PLATEAU_SHARE = 0.1   # a plateau must last at least this share of the run
PLATEAU_RATE = 0.3        # … and falls at less than this share of the run's average rate
FLAT_SHARE = 0.02         # total fall below this share of the start loss (and noise): no learning


@dataclass
class Phase:
    kind: str             # "steep" | "slow" | "plateau" | "rising"
    start_step: int
    end_step: int
    start_loss: float
    end_loss: float


@dataclass
class Inflection:
    step: int
    before: float
    after: float

    @property
    def drop(self) -> float:
        return self.before - self.after


@dataclass
class Divergence:
    kind: str             # "nan" | "rising" | "oscillating"
    step: int | None
    amount: float = 0.0   # rise above the lowest point, or swing amplitude


def _classify(x: np.ndarray, fit: np.ndarray, b1: float, b2: float, total_fall: float,
              noise: float) -> list[tuple[str, int, int]]:
    """Kind and index range of each fitted piece, neighbours of one kind merged; a change smaller
    than ``noise`` counts as flat."""
    m = len(x)
    knots = [0, int(np.searchsorted(x, b1)), int(np.searchsorted(x, b2)), m - 1]
    span = x[-1] - x[0] or 1.0
    pieces = []
    for a, b in zip(knots, knots[1:]):
        if b <= a:
            continue
        fall = fit[a] - fit[b]
        share_time = (x[b] - x[a]) / span
        flat_below = max(PLATEAU_SHARE * total_fall, noise)
        if fall < -flat_below:
            kind = "rising"
        elif fall < flat_below:
            kind = "plateau"
        elif (fall / total_fall) / max(share_time, 1e-9) >= STEEP_RATE:
            kind = "steep"
        else:
            kind = "slow"
        if pieces and pieces[-1][0] == kind:
            pieces[-1] = (kind, pieces[-1][1], b)
        else:
            pieces.append((kind, a, b))
    return pieces


def describe(out: "LossAnalysis", st: np.ndarray, ls: np.ndarray) -> None:
    xb, yb = bin_curve(st, ls, MAX_POINTS)
    m = len(yb)
    window = max(3, (m // 25) | 1)
    s = smooth(yb, window)
    out.steps, out.binned, out.smoothed = [int(round(v)) for v in xb], yb.tolist(), s.tolist()
    sigma_s = 1.5 * noise_sigma(yb) / math.sqrt(window)  # noise left in the smoothed curve
    low_i = int(np.argmin(s))
    total_fall = float(s[0] - s[low_i])
    swings = zigzag_rises(s, max(4 * sigma_s, 0.05 * abs(float(s.mean()))))
    oscillating = len(swings) >= 2

    if total_fall < max(3 * sigma_s, FLAT_SHARE * float(s[0])) or not _fell(ls):
        out.flat = True
        out.phases = [Phase("plateau", int(xb[0]), int(xb[-1]), float(s[0]), float(s[-1]))]
        out.plateau_step = int(xb[0])
        if not oscillating:
            out.messages.append(msg("loss.flat", start_loss=float(s[0]), end_loss=float(s[-1])))
    else:
        _phases(out, xb, yb, s, total_fall, 2 * sigma_s, describe=not oscillating)  # an oscillation has no phases
        if not oscillating:  # nor are its falls inflections
            _inflections(out, xb, s, window, threshold=max(4 * sigma_s, 0.15 * total_fall))

    end_level = float(s[-max(1, m // 20):].mean())
    rise = end_level - float(s[low_i])
    if low_i < 0.85 * m and rise > max(3 * sigma_s, 0.1 * abs(float(s[low_i]))):
        out.divergence.append(Divergence("rising", int(round(xb[low_i])), rise))
    if oscillating:
        amplitude = float(np.median([size for _, size in swings])) / 2
        out.divergence.append(Divergence("oscillating", int(round(xb[swings[0][0]])), amplitude))
    below = np.nonzero(s < NEAR_ZERO)[0]
    if len(below):
        out.near_zero_step = int(round(xb[below[0]]))


def _fell(ls: np.ndarray) -> bool:
    """Whether the loss clearly fell: the lowest fifth of the run (by time) against the first,
    beyond 2.5 standard errors of the two means (raw values: their noise is what matters)."""
    k = max(2, len(ls) // 5)
    head, tail = ls[:k], ls[k:]
    if len(tail) < 2:
        return False
    # the lowest stretch of the rest, so that a fall followed by a rise still counts as a fall
    means = np.convolve(tail, np.ones(k) / k, mode="valid") if len(tail) >= k else np.array([tail.mean()])
    j = int(np.argmin(means))
    low = tail[j: j + k]
    se = math.sqrt(head.var(ddof=1) / len(head) + (low.var(ddof=1) / len(low) if len(low) > 1 else 0.0))
    return float(head.mean() - low.mean()) > max(2.5 * se, FLAT_SHARE * float(head.mean()))


def _phases(out: "LossAnalysis", xb: np.ndarray, yb: np.ndarray, s: np.ndarray, total_fall: float,
            noise: float, describe: bool) -> None:
    span = xb[-1] - xb[0] or 1.0
    xn = (xb - xb[0]) / span
    b1, b2, fit = fit_three_pieces(xn, yb)
    pieces = _classify(xn, fit, b1, b2, total_fall, noise)
    plateau_at = _plateau_start(xb, s, pieces, total_fall)
    if plateau_at is not None:  # the flat tail may start inside the last fitted piece
        kind, a, b = pieces[-1]
        if kind == "plateau":
            pieces[-1] = ("plateau", plateau_at, b)
            if len(pieces) > 1:
                pieces[-2] = (pieces[-2][0], pieces[-2][1], plateau_at)
        elif plateau_at > a:
            pieces[-1] = (kind, a, plateau_at)
            pieces.append(("plateau", plateau_at, b))
        out.plateau_step = int(xb[plateau_at])
    for index, (kind, a, b) in enumerate(pieces):
        if kind == "plateau" and index < len(pieces) - 1:
            kind = "slow"  # a pause followed by more learning is not the plateau
        if out.phases and out.phases[-1].kind == kind:
            a = int(np.searchsorted(xb, out.phases.pop().start_step))
        out.phases.append(Phase(kind, int(xb[a]), int(xb[b]), float(s[a]), float(s[b])))
    if not describe:
        return
    for phase in out.phases:
        if phase.kind in ("steep", "slow"):
            out.messages.append(msg(f"loss.{phase.kind}", start=phase.start_step, end=phase.end_step,
                                    start_loss=phase.start_loss, end_loss=phase.end_loss))
    if out.plateau_step is not None:
        i = int(np.searchsorted(xb, out.plateau_step))
        out.messages.append(msg("loss.plateau", step=out.plateau_step, loss=float(s[i:].mean())))
    elif not any(p.kind == "rising" for p in out.phases):
        out.messages.append(msg("loss.no_plateau", step=int(xb[-1])))


def _inflections(out: "LossAnalysis", xb: np.ndarray, s: np.ndarray, w: int, threshold: float) -> None:
    """Windows of 2·w points that fall by more than ``threshold`` beyond the larger fall of the
    windows on either side (a step, not the steady slope of a steep phase or a V's descent)."""
    m = len(s)
    if m < 6 * w + 1:
        return
    excess = np.full(m, -math.inf)
    for i in range(3 * w, m - 3 * w):
        centre = s[i - w] - s[i + w]
        left, right = s[i - 3 * w] - s[i - w], s[i + w] - s[i + 3 * w]
        excess[i] = centre - max(left, right, 0.0)
    taken: list[int] = []
    for i in np.argsort(-excess):
        if excess[i] <= threshold:
            break
        if all(abs(int(i) - j) > 3 * w for j in taken):
            taken.append(int(i))
    for i in sorted(taken):
        step = int(round(xb[i]))
        out.inflections.append(Inflection(step, float(s[i - w]), float(s[i + w])))
        out.messages.append(msg("loss.inflection", step=step, before=float(s[i - w]), after=float(s[i + w])))


def _plateau_start(xb: np.ndarray, s: np.ndarray, pieces: list[tuple[str, int, int]],
                   total_fall: float) -> int | None:
    """Index where the flat tail begins: the fitted plateau piece, else the first point after which
    the smoothed curve falls less than PLATEAU_SHARE of the total fall. None when the tail is too
    short (still falling) or rises."""
    if not pieces or pieces[-1][0] == "rising":
        return None
    span = xb[-1] - xb[0] or 1.0
    if pieces[-1][0] == "plateau":
        a = pieces[-1][1]
    else:
        remaining = s - np.minimum.accumulate(s[::-1])[::-1]  # fall still to come from each point
        flat = np.nonzero(remaining < PLATEAU_SHARE * total_fall)[0]
        a = int(flat[0]) if len(flat) else len(s) - 1
        while a < len(s) - 1 and remaining[a:].max() >= PLATEAU_SHARE * total_fall:
            a += 1
    tail_time = (xb[-1] - xb[a]) / span
    if tail_time < MIN_PLATEAU_SHARE:
        return None
    tail_fall = float(s[a] - s[a:].min()) / total_fall
    # flat, not just the last stretch of a steady fall: a plateau falls far slower than the average
    if tail_fall >= 2 * PLATEAU_SHARE or tail_fall / tail_time >= PLATEAU_RATE:
        return None
    return a
