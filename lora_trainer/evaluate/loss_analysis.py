"""Read a loss curve the way the tutorials teach, with numbers instead of the eye.

The curve's shape (phases, plateau, inflections, divergence, near zero) comes from ``loss_shape``; here a NaN
stops the curve, the final loss is compared with the tutorials' bands (rules of thumb), held-out validation
losses mark the epoch after which the LoRA over-fits, and the candidate epochs are the saved ones before the
plateau or the near-zero region, lowest loss first. numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .loss_shape import MIN_POINTS, Divergence, Inflection, Phase, describe
from .messages import Message, msg

# Final-loss bands from the tutorials: rules of thumb for kohya-style (unweighted) loss.
BANDS: dict[str, tuple[float, float]] = {"character": (0.07, 0.09), "style": (0.08, 0.11)}


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
        describe(out, st, ls)
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
        out.messages.append(msg("loss.band.none", loss=b.loss, kind=_kind(b.kind)))
    else:
        out.messages.append(msg(f"loss.band.{b.status}", loss=b.loss, kind=_kind(b.kind), low=b.low, high=b.high))
    if b.weighted:
        out.messages.append(msg("loss.band.weighted", gamma=float(min_snr_gamma)))


def _kind(kind: str):
    """The kind of LoRA as a word of the reader's language (an unknown one as it is)."""
    return msg(f"eval.kind.{kind}") if kind in ("character", "style", "concept") else kind


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
