"""Read a loss curve the way the tutorials teach, with numbers instead of the eye.

Phases (steep fall, slow fall, plateau) and the step where the curve flattens come from a
three-piece continuous linear fit of the binned curve: each piece is classed by how much of
the total fall it carries per share of the run. Large drops ("inflection points") are windows
that fall much more than their neighbours. Divergence is a NaN, a rise after the lowest point,
or repeated up-and-down swings. The final loss is compared with the tutorials' bands, which
are rules of thumb. Candidate epochs are the saved ones before the plateau or the near-zero
region, lowest loss first.

Per-step diffusion losses are very noisy (they depend on the random timestep), so everything
works on bin means and a median-then-mean smoothed curve. numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .curve_math import bin_curve, fit_three_pieces, noise_sigma, smooth, zigzag_rises
from .messages import Message, msg

# Final-loss bands from the tutorials: rules of thumb for kohya-style (unweighted) loss.
BANDS: dict[str, tuple[float, float]] = {"character": (0.07, 0.09), "style": (0.08, 0.11)}
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


@dataclass
class BandCheck:
    kind: str             # the preset kind: character / style / concept / …
    loss: float
    low: float | None
    high: float | None
    status: str           # "inside" | "below" | "above" | "none"
    rule_of_thumb: bool = True
    weighted: bool = False  # min-SNR weighting makes the loss read lower than the bands assume


@dataclass
class Candidate:
    epoch: int
    step: int
    loss: float
    stem: str | None = None


@dataclass
class LossAnalysis:
    steps: list[int] = field(default_factory=list)        # the binned curve (chart x)
    binned: list[float] = field(default_factory=list)     # bin means
    smoothed: list[float] = field(default_factory=list)   # chart line
    phases: list[Phase] = field(default_factory=list)
    plateau_step: int | None = None
    flat: bool = False
    inflections: list[Inflection] = field(default_factory=list)
    divergence: list[Divergence] = field(default_factory=list)
    near_zero_step: int | None = None
    validation_best: int | None = None     # epoch with the lowest held-out validation loss
    validation_rising: bool = False        # … and it rises clearly after that epoch
    final_loss: float | None = None
    band: BandCheck | None = None
    candidates: list[Candidate] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def sentences(self, templates: dict[str, str] | None = None) -> list[str]:
        """The findings as sentences (English, or ``templates`` keyed like ``messages.TEMPLATES``)."""
        return [m.format(templates) if templates else str(m) for m in self.messages]

    def divergence_of(self, kind: str) -> Divergence | None:
        return next((d for d in self.divergence if d.kind == kind), None)


# --- the analysis ------------------------------------------------------------------------------------

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


def analyze_losses(steps: list[int], losses: list[float], *,
                   epochs: list[tuple[int, int | None, float]] | None = None,
                   saved: list[tuple[int, int | None, str | None]] | None = None,
                   kind: str | None = None, nan_step: int | None = None,
                   min_snr_gamma: float | None = None,
                   validation: list[tuple[int, int | None, float]] | None = None) -> LossAnalysis:
    """Analyse a loss curve.

    ``steps``/``losses``: the per-step log (NaN or None where not finite). ``epochs``: (epoch, step,
    mean loss) from the log. ``saved``: (epoch, step, file stem) of the saved epoch files, the
    candidates' pool. ``kind``: the preset kind (character, style, concept) for the band check.
    ``nan_step``: where training stopped on a NaN, when the log says so. ``validation``: (epoch,
    step, loss) on held-out images; epochs after a clear rise are no candidates."""
    out = LossAnalysis()
    st = np.asarray(steps, dtype=float)
    ls = np.asarray([math.nan if v is None else v for v in losses], dtype=float)
    bad = ~np.isfinite(ls)
    if bad.any():
        first_bad = int(st[bad][0])
        nan_step = first_bad if nan_step is None else min(nan_step, first_bad)
    if nan_step is not None:
        keep = st < nan_step
        st, ls = st[keep], ls[keep]
        out.divergence.append(Divergence("nan", int(nan_step)))
    finite = np.isfinite(ls)
    st, ls = st[finite], ls[finite]
    if len(ls) == 0:
        out.messages.append(msg("loss.no_data"))
        _divergence_messages(out)
        return out

    out.final_loss = _final_loss(st, ls, epochs or [], nan_step)
    if len(ls) < MIN_POINTS:
        out.messages.append(msg("loss.few_points", count=int(len(ls))))
        out.steps, out.binned, out.smoothed = [int(s) for s in st], ls.tolist(), ls.tolist()
    else:
        _shape(out, st, ls)
    _divergence_messages(out)
    _band(out, kind, min_snr_gamma)
    _validation(out, validation or [])
    _candidates(out, epochs or [], saved or [])
    return out


VAL_RISE = 0.03   # a held-out loss this much (relative) above its minimum, two epochs on, is a rise


def _validation(out: LossAnalysis, validation: list[tuple[int, int | None, float]]) -> None:
    points = sorted((e, v) for e, _, v in validation if v is not None and math.isfinite(v))
    if len(points) < 2:
        return
    best_i = min(range(len(points)), key=lambda i: points[i][1])
    best_epoch, best = points[best_i]
    out.validation_best = best_epoch
    after = points[best_i + 1:]
    if len(after) >= 2 and after[-1][1] > best * (1 + VAL_RISE) and after[0][1] >= best:
        out.validation_rising = True
        out.messages.append(msg("loss.val_rising", epoch=best_epoch, loss=best, last=after[-1][1],
                                last_epoch=after[-1][0]))
    else:
        out.messages.append(msg("loss.val_best", epoch=best_epoch, loss=best))


def _shape(out: LossAnalysis, st: np.ndarray, ls: np.ndarray) -> None:
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


def _phases(out: LossAnalysis, xb: np.ndarray, yb: np.ndarray, s: np.ndarray, total_fall: float,
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


def _inflections(out: LossAnalysis, xb: np.ndarray, s: np.ndarray, w: int, threshold: float) -> None:
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


def _divergence_messages(out: LossAnalysis) -> None:
    for d in out.divergence:
        if d.kind == "nan":
            out.messages.append(msg("loss.nan", step=d.step))
        elif d.kind == "rising":
            i = int(np.searchsorted(out.steps, d.step)) if out.steps else 0
            low = out.smoothed[min(i, len(out.smoothed) - 1)] if out.smoothed else 0.0
            out.messages.append(msg("loss.rising", step=d.step, low=low, end=low + d.amount))
        elif d.kind == "oscillating":
            out.messages.append(msg("loss.oscillating", amplitude=d.amount))
    if out.near_zero_step is not None:
        i = int(np.searchsorted(out.steps, out.near_zero_step))
        out.messages.append(msg("loss.near_zero", step=out.near_zero_step,
                                loss=float(np.mean(out.smoothed[i:])) if out.smoothed else 0.0))


def band_check(loss: float, kind: str | None, min_snr_gamma: float | None = None) -> BandCheck:
    kind = (kind or "concept").lower()
    low, high = BANDS.get(kind, (None, None))
    if low is None:
        status = "none"
    else:
        status = "below" if loss < low else "above" if loss > high else "inside"
    return BandCheck(kind, loss, low, high, status, True, bool(min_snr_gamma))


def _final_loss(st: np.ndarray, ls: np.ndarray, epochs: list[tuple[int, int | None, float]],
                nan_step: int | None) -> float:
    """The last epoch's mean loss when the log has it (the number the Train tab, the log and the Lora tab's
    card show), else the mean of the last steps (at least 20, or a twentieth of the run)."""
    means = [float(loss) for _, step, loss in epochs if loss is not None and math.isfinite(loss)
             and (nan_step is None or step is None or step < nan_step)]
    if means:
        return means[-1]
    tail = max(1, min(len(ls), max(20, len(ls) // 20)))
    return float(ls[-tail:].mean())


def _band(out: LossAnalysis, kind: str | None, min_snr_gamma: float | None) -> None:
    if out.final_loss is None:
        return
    out.band = band_check(out.final_loss, kind, min_snr_gamma)
    b = out.band
    if b.status == "none":
        out.messages.append(msg("loss.band.none", loss=b.loss, kind=b.kind))
    else:
        out.messages.append(msg(f"loss.band.{b.status}", loss=b.loss, kind=b.kind, low=b.low, high=b.high))
    if b.weighted:
        out.messages.append(msg("loss.band.weighted", gamma=float(min_snr_gamma)))


def _loss_at(out: LossAnalysis, step: int) -> float | None:
    if not out.steps:
        return None
    return float(np.interp(step, out.steps, out.smoothed))


def _candidates(out: LossAnalysis, epochs: list[tuple[int, int | None, float]],
                saved: list[tuple[int, int | None, str | None]]) -> None:
    if not saved:
        return
    means = {e: v for e, _, v in epochs if v is not None and math.isfinite(v)}
    steps_of = {e: s for e, s, _ in epochs if s is not None}
    span = (out.steps[-1] - out.steps[0]) if len(out.steps) > 1 else 0
    slack = 0.05 * span
    limits = [out.plateau_step] if out.plateau_step is not None and not out.flat else []
    hard_limits = [d.step for d in (out.divergence_of("rising"), out.divergence_of("nan"))
                   if d is not None and d.step is not None]
    if out.near_zero_step is not None:
        hard_limits.append(out.near_zero_step)
    pool = []
    for epoch, step, stem in saved:
        step = step if step is not None else steps_of.get(epoch)
        if step is None:
            continue
        loss = means.get(epoch, _loss_at(out, step))
        if loss is None:
            continue
        pool.append(Candidate(int(epoch), int(step), float(loss), stem))
    if not pool:
        return
    chosen = [c for c in pool if all(c.step <= lim + slack for lim in limits)
              and all(c.step <= lim for lim in hard_limits)
              and not (out.validation_rising and c.epoch > (out.validation_best or 0) + 1)]
    if not chosen:
        target = min(limits + hard_limits) if (limits or hard_limits) else pool[0].step
        chosen = [min(pool, key=lambda c: abs(c.step - target))]
        out.messages.append(msg("loss.no_candidates"))
    out.candidates = sorted(chosen, key=lambda c: (c.loss, c.epoch))
    out.messages.append(msg("loss.candidates", epochs=", ".join(f"{c.epoch} ({c.loss:.4f})" for c in out.candidates)))


def analyze_run(run, log=None, kind: str | None = None) -> LossAnalysis:
    """``analyze_losses`` for a ``runs.RunInfo`` and its ``run_log.LossLog`` (read when not given)."""
    from .run_log import read_loss_log

    log = log if log is not None else read_loss_log(run)
    gamma = None
    latest = run.latest
    if latest is not None:
        try:
            from .summary import summary_from_metadata
            gamma = summary_from_metadata(latest.metadata()).min_snr_gamma
        except Exception:  # a damaged file: the analysis still works without the weighting note
            gamma = None
    saved = []
    for f in run.epoch_files:
        if f.step is None:
            try:
                f.fill_from_metadata()
            except Exception:
                pass
        saved.append((f.epoch, f.step, f.stem))
    held_out = log.validation if log.validation_source != "training" else None
    return analyze_losses(log.steps, log.losses, epochs=log.epochs, saved=saved, kind=kind,
                          nan_step=log.nan_step, min_snr_gamma=gamma, validation=held_out)
