"""Symptom → cause → advice, from the tutorial's table and from the run's own numbers.

The table (``SYMPTOMS``) is what the tutorial teaches for what a user sees in the grid. The
rules below check what can be checked from the run itself — image count, repeats × epochs,
steps, the loss band, NaN, divergence, learning rates, image sizes, captions, the grid's
scores — and each finding carries the numbers that triggered it. Thresholds are rules of
thumb from the tutorials and common kohya practice, and are marked as such.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .loss_analysis import BANDS, LossAnalysis, band_check
from .messages import Message, msg
from .summary import TrainingSummary

SYMPTOMS = ("broken", "weak", "rigid")   # many broken images / weak likeness / cannot be steered
IMAGES_PER_KIND = {"character": (20, 50)}
SEEN_PER_IMAGE = (30, 400)     # repeats × epochs below/above this: under/over-training risk
MIN_STEPS = 500
ADAPTIVE_OPTIMIZERS = ("prodigy", "dadapt")
LR_RANGE = {"adamw": (1e-5, 5e-4), "lion": (1e-6, 1e-4), "adafactor": (1e-5, 1e-3), "sgd": (1e-4, 1e-1)}


@dataclass
class Finding:
    key: str                    # stable id, e.g. "few_images"
    symptom: str | None         # which table row it explains: broken / weak / rigid, or None (general)
    message: Message            # what was found, with the numbers
    advice: Message | None = None
    severity: str = "warning"   # "info" | "warning" | "problem"
    rule_of_thumb: bool = True


@dataclass
class SymptomRow:
    symptom: str
    title: Message
    cause: Message
    advice: Message
    findings: list[Finding] = field(default_factory=list)   # the run's numbers that support this row


def table() -> list[SymptomRow]:
    """The tutorial's table, rows in its order."""
    return [SymptomRow(s, msg(f"diag.symptom.{s}"), msg(f"diag.cause.{s}"), msg(f"diag.advice.{s}"))
            for s in SYMPTOMS]


def _optimizer_family(name: str | None) -> str:
    lowered = (name or "").lower()
    for family in ("adamw", "lion", "adafactor", "sgd"):
        if family in lowered:
            return family
    return "adamw" if "adam" in lowered else ""


def _data_rules(s: TrainingSummary, kind: str) -> list[Finding]:
    out = []
    images = s.num_train_images
    if images is not None and kind in IMAGES_PER_KIND:
        low, high = IMAGES_PER_KIND[kind]
        if images < low:
            out.append(Finding("few_images", "weak", msg("diag.few_images", images=images, kind=kind, low=low,
                                                         high=high), msg("diag.advice.weak")))
        elif images > high:
            out.append(Finding("many_images", "rigid", msg("diag.many_images", images=images, kind=kind, low=low,
                                                           high=high), msg("diag.advice.rigid"), "info"))
    repeats, epochs = s.repeats, s.epochs or s.epoch
    if repeats and epochs:
        seen = repeats * epochs
        low, high = SEEN_PER_IMAGE
        if seen < low:
            out.append(Finding("few_repeats", "weak", msg("diag.few_repeats", seen=seen, repeats=repeats,
                                                          epochs=epochs, low=low), msg("diag.advice.weak")))
        elif seen > high:
            out.append(Finding("many_repeats", "rigid", msg("diag.many_repeats", seen=seen, repeats=repeats,
                                                            epochs=epochs, high=high), msg("diag.advice.rigid")))
    if s.steps is not None and s.steps < MIN_STEPS:
        out.append(Finding("few_steps", "broken", msg("diag.few_steps", steps=s.steps, low=MIN_STEPS),
                           msg("diag.advice.broken")))
    return out


def _lr_rules(s: TrainingSummary) -> list[Finding]:
    out = []
    lr, optimizer = s.unet_lr, s.optimizer or ""
    if lr is None:
        return out
    if any(a in optimizer.lower() for a in ADAPTIVE_OPTIMIZERS):
        if not 0.1 <= lr <= 10:
            out.append(Finding("lr_adaptive", None, msg("diag.lr_adaptive", optimizer=optimizer, lr=lr),
                               msg("diag.lr.advice", suggested=1.0), "problem", False))
        return out
    family = _optimizer_family(optimizer)
    if family in LR_RANGE:
        low, high = LR_RANGE[family]
        if lr > high:
            out.append(Finding("lr_high", "broken", msg("diag.lr_high", lr=lr, optimizer=optimizer, high=high),
                               msg("diag.lr.advice", suggested=high / 5)))
        elif lr < low:
            out.append(Finding("lr_low", "weak", msg("diag.lr_low", lr=lr, optimizer=optimizer, low=low),
                               msg("diag.lr.advice", suggested=low * 10)))
    te = s.text_encoder_lr
    if te is not None and s.train_text_encoder is not False and te > lr * 1.01:
        out.append(Finding("te_lr_high", "rigid", msg("diag.te_lr_high", te_lr=te, unet_lr=lr),
                           msg("diag.lr.advice", suggested=lr / 2)))
    return out


def _loss_rules(s: TrainingSummary, loss: LossAnalysis, kind: str) -> list[Finding]:
    out = []
    lr = s.unet_lr or 0.0
    te = s.text_encoder_lr or 0.0
    nan = loss.divergence_of("nan")
    if nan is not None:
        out.append(Finding("nan", "broken", msg("diag.nan", step=nan.step),
                           msg("diag.nan.advice", unet_lr=lr, te_lr=te), "problem", False))
    for d in loss.divergence:
        if d.kind in ("rising", "oscillating"):
            found = (msg("diag.rising", step=d.step, unet_lr=lr) if d.kind == "rising"
                     else msg("diag.oscillating", amount=d.amount, unet_lr=lr))
            out.append(Finding(d.kind, "broken", found,
                               msg("diag.diverging.advice", suggested=lr / 2 if lr else 1e-4), "problem", False))
    if loss.final_loss is not None and kind in BANDS:
        band = loss.band or band_check(loss.final_loss, kind)
        if band.status == "above":
            out.append(Finding("loss_high", "weak", msg("diag.loss_high", loss=band.loss, kind=kind, low=band.low,
                                                         high=band.high), msg("diag.advice.weak")))
        elif band.status == "below":
            out.append(Finding("loss_low", "rigid", msg("diag.loss_low", loss=band.loss, kind=kind, low=band.low,
                                                         high=band.high), msg("diag.advice.rigid")))
    if loss.plateau_step is not None and not loss.flat and loss.steps:
        total = loss.steps[-1]
        if total and loss.plateau_step < 0.5 * total:
            out.append(Finding("early_plateau", "rigid", msg("diag.early_plateau", step=loss.plateau_step,
                                                              total=total), msg("diag.early_plateau.advice"),
                               "info", False))
    return out


def _caption_rules(s: TrainingSummary) -> list[Finding]:
    out = []
    triggers = {t.lower() for t in s.trigger_words()}
    for concept in s.concepts:
        count = concept.images or max(concept.tags.values(), default=0)
        if count < 3:
            continue
        fixed = [t for t, n in concept.tags.items() if n >= count and t.lower() not in triggers]
        if len(fixed) >= 2:
            out.append(Finding("fixed_tags", "rigid", msg("diag.fixed_tags", tags=", ".join(sorted(fixed)[:8])),
                               msg("diag.fixed_tags.advice"), "info"))
    return out


def _size_rules(s: TrainingSummary, image_sizes: Sequence[tuple[int, int]] | None) -> list[Finding]:
    if not image_sizes or not s.resolution:
        return []
    rw, rh = s.resolution
    area = rw * rh
    small = [(w, h) for w, h in image_sizes if w * h < 0.5 * area]
    if not small or len(small) < max(1, 0.1 * len(image_sizes)):
        return []
    smallest = min(small, key=lambda wh: wh[0] * wh[1])
    return [Finding("small_images", "broken",
                    msg("diag.small_images", count=len(small), images=len(image_sizes), resolution=f"{rw}x{rh}",
                        smallest=f"{smallest[0]}x{smallest[1]}"), msg("diag.small_images.advice"))]


def _score_rules(groups) -> list[Finding]:
    if not groups:
        return []
    tested = [g for g in groups if g.verdict != "baseline"]
    total = sum(g.cells for g in tested)
    out = []
    for verdict, symptom, key in (("broken", "broken", "diag.scores.broken"), ("weak", "weak", "diag.scores.weak"),
                                  ("overfit", "rigid", "diag.scores.overfit")):
        count = sum(g.cells for g in tested if g.verdict == verdict)
        if count and total and count / total >= 0.25:
            out.append(Finding(f"scores_{verdict}", symptom, msg(key, count=count, total=total),
                               msg(f"diag.advice.{symptom}"), "info", False))
    return out


def diagnose(summary: TrainingSummary, loss: LossAnalysis | None = None, *, kind: str | None = None,
             groups=None, image_sizes: Sequence[tuple[int, int]] | None = None) -> list[Finding]:
    """Every rule that fires for this run. ``groups``: ``recommend.group_scores`` of a grid;
    ``image_sizes``: (width, height) of the training images when the dataset is at hand."""
    kind = (kind or "concept").lower()
    findings = _data_rules(summary, kind) + _lr_rules(summary)
    if loss is not None:
        findings += _loss_rules(summary, loss, kind)
    findings += _caption_rules(summary) + _size_rules(summary, image_sizes) + _score_rules(groups)
    return findings


def diagnosis_table(findings: list[Finding], symptoms: Sequence[str] = SYMPTOMS) -> list[SymptomRow]:
    """The tutorial's rows for ``symptoms`` (what the user reports or the grid shows), each with the
    findings of this run that explain it."""
    rows = [r for r in table() if r.symptom in symptoms]
    for row in rows:
        row.findings = [f for f in findings if f.symptom == row.symptom]
    return rows
