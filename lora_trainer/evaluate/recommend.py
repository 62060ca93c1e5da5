"""Recommend an epoch and a weight from the grid's scores (and the loss curve), with reasons.

The tutorials' way, measured: throw away the broken cells, the under-fitted ones (the LoRA
barely changes the picture) and the over-fitted ones (a training image comes back); of the
epochs left, prefer the one that works at the most weights; of its weights, prefer 0.6, then
0.7–0.9, then 1.0. The user decides; these are reasons, not a verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .loss_analysis import LossAnalysis
from .messages import Message, msg
from .prompt_tags import format_weight
from .scores import BROKEN_AT, CellScore

PREFERRED_WEIGHTS = (0.6, 0.7, 0.8, 0.9, 1.0, 0.5)   # the tutorials' order
DEFAULT_GRID_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
WEAK_EFFECT = 0.05          # an effect below this is "the LoRA does nothing"
WEAK_SHARE = 0.3            # … and so is one below this share of the grid's strongest effect


@dataclass
class GroupStats:
    """All cells of one epoch at one weight."""

    key: str                    # the file stem (or "epoch N")
    epoch: int | None
    weight: float
    cells: int
    broken: float               # share of broken cells
    overfit: float              # share of cells that copy a training image
    effect: float | None        # mean effect size (None without weight-0 baselines)
    max_ssim: float | None
    psnr: float | None          # of the most similar cell
    nearest: str | None         # its nearest training image
    broken_reasons: list[str] = field(default_factory=list)
    verdict: str = "good"       # good | broken | weak | overfit | baseline


@dataclass
class Recommendation:
    key: str | None = None      # file stem of the recommended epoch
    epoch: int | None = None
    weight: float | None = None
    reasons: list[Message] = field(default_factory=list)
    groups: list[GroupStats] = field(default_factory=list)

    def sentences(self, templates: dict[str, str] | None = None) -> list[str]:
        return [m.format(templates) if templates else str(m) for m in self.reasons]


def _epoch_label(g: GroupStats) -> str:
    return f"epoch {g.epoch}" if g.epoch is not None else g.key


def _cells_text(groups: Sequence[GroupStats]) -> str:
    """"epoch 1 (w 0.1, 0.2), epoch 2 (w 0.1)" — at most 4 epochs named."""
    by_epoch: dict[str, list[float]] = {}
    for g in groups:
        by_epoch.setdefault(_epoch_label(g), []).append(g.weight)
    parts = [f"{label} (w {', '.join(format_weight(w) for w in sorted(ws))})" for label, ws in by_epoch.items()]
    return ", ".join(parts[:4]) + (f" and {len(parts) - 4} more" if len(parts) > 4 else "")


def group_scores(scores: Sequence[CellScore]) -> list[GroupStats]:
    """Per (epoch, weight) shares of broken / over-fitted cells and the mean effect, with a verdict."""
    buckets: dict[tuple[str, float], list[CellScore]] = {}
    for s in scores:
        buckets.setdefault((s.cell.key, round(float(s.cell.weight), 4)), []).append(s)
    groups = []
    for (key, weight), items in buckets.items():
        effects = [s.effect for s in items if s.effect is not None]
        sims = [s.similarity for s in items if s.similarity is not None]
        top = max(sims, key=lambda v: v.ssim) if sims else None
        reasons = sorted({r for s in items if s.broken.score >= BROKEN_AT for r in s.broken.reasons})
        groups.append(GroupStats(
            key=key, epoch=items[0].cell.epoch, weight=weight, cells=len(items),
            broken=sum(s.broken.score >= BROKEN_AT for s in items) / len(items),
            overfit=(sum(v.overfit for v in sims) / len(sims)) if sims else 0.0,
            effect=(sum(effects) / len(effects)) if effects else None,
            max_ssim=top.ssim if top else None, psnr=top.psnr if top else None,
            nearest=top.name if top else None, broken_reasons=reasons))
    strongest = max((g.effect for g in groups if g.effect is not None), default=0.0)
    weak_below = max(WEAK_EFFECT, WEAK_SHARE * strongest)
    for g in groups:
        if g.weight == 0:
            g.verdict = "baseline"
        elif g.broken >= 0.5:
            g.verdict = "broken"
        elif g.overfit >= 0.5:
            g.verdict = "overfit"
        elif g.effect is not None and g.effect < weak_below:
            g.verdict = "weak"
    groups.sort(key=lambda g: (g.epoch is None, g.epoch or 0, g.key, g.weight))
    return groups


def _weight_choice(weights: list[float]) -> tuple[float, bool]:
    """(weight, is the tutorials' first choice 0.6)."""
    for w in PREFERRED_WEIGHTS:
        if any(abs(w - x) < 1e-6 for x in weights):
            return w, w == 0.6
    return min(weights, key=lambda x: (abs(x - 0.6), x)), False


def recommend(scores: Sequence[CellScore], loss: LossAnalysis | None = None) -> Recommendation:
    """The epoch and weight to try first, with reasons (``Message``s) and the per-group table."""
    rec = Recommendation(groups=group_scores(scores))
    groups = [g for g in rec.groups if g.verdict != "baseline"]
    good: dict[str, list[GroupStats]] = {}
    for g in groups:
        if g.verdict == "good":
            good.setdefault(g.key, []).append(g)
    tested: dict[str, list[GroupStats]] = {}
    for g in groups:
        tested.setdefault(g.key, []).append(g)
    if good:
        loss_rank = {c.stem: i for i, c in enumerate(loss.candidates)} if loss else {}
        loss_rank_epoch = {c.epoch: i for i, c in enumerate(loss.candidates)} if loss else {}

        def rank(key: str):
            gs = good[key]
            first = gs[0]
            in_loss = loss_rank.get(key, loss_rank_epoch.get(first.epoch, len(loss_rank) + 1))
            similarity = max((g.max_ssim or 0.0) for g in gs)
            has_06 = any(abs(g.weight - 0.6) < 1e-6 for g in gs)
            return (-len(gs), in_loss, not has_06, similarity, -(first.epoch or 0))

        key = min(good, key=rank)
        chosen = good[key]
        weight, preferred = _weight_choice([g.weight for g in chosen])
        rec.key, rec.epoch, rec.weight = key, chosen[0].epoch, weight
        label = chosen[0].epoch if chosen[0].epoch is not None else key
        rec.reasons.append(msg("rec.choice", epoch=label, weight=format_weight(weight)))
        rec.reasons.append(msg("rec.robust", epoch=label, good=len(chosen), total=len(tested[key]),
                               weights=", ".join(format_weight(g.weight) for g in chosen)))
        rec.reasons.append(msg("rec.weight_preferred" if preferred else "rec.weight_fallback",
                               weight=format_weight(weight)))
        if loss and any(c.stem == key or (c.epoch == chosen[0].epoch and c.epoch is not None)
                        for c in loss.candidates):
            rec.reasons.append(msg("rec.loss_candidate", epoch=label))
    else:
        rec.reasons.append(msg("rec.none"))
    weak = [g for g in groups if g.verdict == "weak"]
    if weak:
        best = max((g.effect for g in rec.groups if g.effect is not None), default=0.0)
        rec.reasons.append(msg("rec.weak", cells=_cells_text(weak),
                               effect=max(g.effect for g in weak), best=best))
    broken = [g for g in groups if g.verdict == "broken"]
    if broken:
        why = sorted({r for g in broken for r in g.broken_reasons})
        rec.reasons.append(msg("rec.broken", cells=_cells_text(broken), why_keys=why,
                               why=", ".join(str(Message(r)) for r in why) or "broken"))
    overfit = [g for g in groups if g.verdict == "overfit"]
    if overfit:
        worst = max(overfit, key=lambda g: g.max_ssim or 0.0)
        rec.reasons.append(msg("rec.overfit", cells=_cells_text(overfit), ssim=worst.max_ssim or 0.0,
                               psnr=worst.psnr or 0.0, image=worst.nearest or "?"))
    rec.reasons.append(msg("rec.user_decides"))
    return rec


@dataclass
class GridPlan:
    """What to put on the X/Y/Z axes: the values in the axes' own syntax, and as lists."""

    epochs: list[str]
    weights: list[float]

    @property
    def epoch_text(self) -> str:
        return ", ".join(self.epochs)

    @property
    def weight_text(self) -> str:
        return ", ".join(format_weight(w) for w in self.weights)


def suggest_grid(run, loss: LossAnalysis | None = None, max_epochs: int = 8) -> GridPlan:
    """Epochs worth rendering (the loss candidates, else the later ~60% of the saved epochs, as the
    tutorial trims epochs 1–3 of 10) and the weights 0.5–1.0. Values are file stems."""
    files = run.epoch_files
    stems = []
    if loss and loss.candidates:
        wanted = {c.stem for c in loss.candidates if c.stem}
        stems = [f.stem for f in files if f.stem in wanted]
    if len(stems) < 2:
        start = int(len(files) * 0.4) if len(files) > 3 else 0
        stems = [f.stem for f in files[start:]]
    if len(stems) > max_epochs:  # evenly thinned, the last one kept
        step = len(stems) / max_epochs
        stems = [stems[min(len(stems) - 1, round((i + 1) * step) - 1)] for i in range(max_epochs)]
    final = run.final
    if final is not None and final.stem not in stems:
        stems.append(final.stem)
    return GridPlan(stems, list(DEFAULT_GRID_WEIGHTS))
