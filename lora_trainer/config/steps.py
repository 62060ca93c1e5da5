"""Step maths: images × repeats × epochs ÷ batch ÷ accumulation = steps.

Reported before training (and live in the UI) so a user sees why a run takes the
steps it takes. With regularization images kohya pairs every training sample with
one regularization sample, which doubles the samples per epoch.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..data.buckets import BucketSet
from ..data.checks import settings_warnings
from ..data.dataset import build_items, count_steps_per_epoch
from ..data.folders import scan_dataset
from ..data.holdout import split_validation
from ..errors import DatasetError
from ..text.messages import Joined, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)


@dataclass
class ConceptRow:
    folder: str
    images: int
    repeats: int
    is_reg: bool

    @property
    def samples(self) -> int:
        return self.images * self.repeats


@dataclass
class StepPlan:
    rows: list[ConceptRow]
    batch_size: int
    gradient_accumulation_steps: int
    batches_per_epoch: int          # per process when several share the work
    epochs: int
    total_steps: int
    notes: list[str] = field(default_factory=list)
    num_processes: int = 1

    @property
    def train_samples(self) -> int:
        return sum(r.samples for r in self.rows if not r.is_reg)

    @property
    def reg_samples_available(self) -> int:
        return sum(r.samples for r in self.rows if r.is_reg)

    @property
    def reg_samples(self) -> int:
        """Regularization samples used per epoch: as many as training samples (kohya's balance)."""
        return self.train_samples if self.reg_samples_available else 0

    @property
    def samples_per_epoch(self) -> int:
        return self.train_samples + self.reg_samples

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch / self.gradient_accumulation_steps)


def plan_steps(rows: list[ConceptRow], *, batch_size: int, gradient_accumulation_steps: int,
               batches_per_epoch: int | None = None, max_train_epochs: int | None,
               max_train_steps: int | None, num_processes: int = 1) -> StepPlan:
    """Work out epochs and optimizer steps. ``batches_per_epoch`` comes from the bucketed
    dataset (buckets can add partial batches); without it the plain ceil(samples/batch) is used."""
    plan = StepPlan(rows=rows, batch_size=batch_size, gradient_accumulation_steps=gradient_accumulation_steps,
                    batches_per_epoch=0, epochs=0, total_steps=0, num_processes=num_processes)
    if batches_per_epoch is None:
        batches_per_epoch = math.ceil(plan.samples_per_epoch / batch_size) if plan.samples_per_epoch else 0
    plan.batches_per_epoch = batches_per_epoch
    per_epoch = plan.steps_per_epoch
    if max_train_epochs:
        plan.epochs = max_train_epochs
        plan.total_steps = per_epoch * max_train_epochs
        if max_train_steps and max_train_steps != plan.total_steps:
            plan.notes.append(sentence("steps.epochs_decide", epochs=max_train_epochs, steps=max_train_steps))
    elif max_train_steps:
        plan.total_steps = max_train_steps
        plan.epochs = math.ceil(max_train_steps / per_epoch) if per_epoch else 0
    available, train = plan.reg_samples_available, plan.train_samples
    if available and available < train:
        plan.notes.append(sentence("steps.reg_fewer", available=available, train=train))
    elif available > train:
        plan.notes.append(sentence("steps.reg_more", available=available, train=train))
    plain = math.ceil(plan.samples_per_epoch / batch_size) if batch_size else 0
    if num_processes > 1:
        plain //= num_processes
    if batches_per_epoch > plain:
        plan.notes.append(sentence("steps.bucket_batches", count=batches_per_epoch - plain))
    return plan


def format_plan(plan: StepPlan) -> Joined:
    """The step maths as a small table a user can check by hand (English; ``localized`` in another language)."""
    lines: list = [msg("steps.title")]
    width = max([len(r.folder) for r in plan.rows] + [14])
    lines.append(msg("steps.header", pad=" " * (width - 14)))
    for r in plan.rows:
        row = f"{r.folder:<{width}}  {r.images:>6} × {r.repeats:>7} = {r.samples:>7}"
        lines.append(msg("steps.row_reg" if r.is_reg else "steps.row", row=row))
    if plan.reg_samples_available:
        lines.append(msg("steps.reg_matched", train=plan.train_samples, reg=plan.reg_samples,
                         samples=plan.samples_per_epoch))
    if plan.num_processes > 1:
        lines.append(msg("steps.batches_processes", samples=plan.samples_per_epoch, batch=plan.batch_size,
                         processes=plan.num_processes, batches=plan.batches_per_epoch))
    else:
        lines.append(msg("steps.batches", samples=plan.samples_per_epoch, batch=plan.batch_size,
                         batches=plan.batches_per_epoch))
    if plan.gradient_accumulation_steps > 1:
        lines.append(msg("steps.accumulation", batches=plan.batches_per_epoch,
                         accumulation=plan.gradient_accumulation_steps, steps=plan.steps_per_epoch))
    if plan.num_processes > 1:
        lines.extend(global_batch_lines(plan))
    lines.append(msg("steps.total", per_epoch=plan.steps_per_epoch, epochs=plan.epochs, steps=plan.total_steps)
                 if plan.total_steps == plan.steps_per_epoch * plan.epochs else
                 msg("steps.total_by_steps", steps=plan.total_steps, epochs=plan.epochs))
    for note in plan.notes:
        lines.append(msg("steps.note", note=note))
    return Joined(lines)


def global_batch_lines(plan: StepPlan) -> list:
    """What one optimizer step learns from when several processes train, and what that does not change."""
    accumulation = plan.gradient_accumulation_steps
    samples = plan.batch_size * plan.num_processes * accumulation
    line = msg("steps.global_batch_accumulation", batch=plan.batch_size, processes=plan.num_processes,
               accumulation=accumulation, samples=samples) if accumulation > 1 else \
        msg("steps.global_batch", batch=plan.batch_size, processes=plan.num_processes, samples=samples)
    return [line, msg("steps.lr_unscaled")]


def scan_and_plan(cfg, num_processes: int = 1) -> tuple:
    """Dataset scan, bucketed items and the step plan for ``cfg`` (torch-free: the UI calls it live)."""
    scan = scan_dataset(cfg.train_data_dir, cfg.reg_data_dir or None, cfg.caption_extension)
    if not scan.train_concepts or scan.num_train_images == 0:
        raise DatasetError(msg("steps.no_images", folder=cfg.train_data_dir), msg("steps.no_images.advice"))
    fraction = float(getattr(cfg, "validation_split", 0.0) or 0.0)
    if fraction > 0:
        scan = split_validation(scan, fraction, cfg.effective_validation_seed)
    size = cfg.resolution_wh
    buckets = BucketSet.build(size, cfg.min_bucket_reso, cfg.max_bucket_reso, cfg.bucket_reso_steps) \
        if cfg.enable_bucket else None
    items = build_items(scan, buckets, size, cfg.enable_bucket, cfg.bucket_no_upscale, cfg.prior_loss_weight)
    scan.warnings += settings_warnings(items, cfg.keep_tokens if keeps_tags(cfg) else 0)
    return scan, items, plan_items(cfg, scan, items, num_processes)


def keeps_tags(cfg) -> bool:
    """keep_tokens keeps tags in place only where tags move or drop out."""
    return bool(cfg.shuffle_caption or cfg.caption_tag_dropout_rate)


def plan_items(cfg, scan, items, num_processes: int = 1) -> StepPlan:
    """The step plan of ``items`` (again after images that could not be read were taken out)."""
    rows = [ConceptRow(os.path.basename(str(c.path)), len(c.images), c.repeats, c.is_reg) for c in scan.concepts]
    batches = count_steps_per_epoch(items, cfg.train_batch_size)
    plan = plan_steps(rows, batch_size=cfg.train_batch_size,
                      gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                      batches_per_epoch=batches if num_processes == 1 else batches // num_processes,
                      max_train_epochs=cfg.max_train_epochs, max_train_steps=cfg.max_train_steps,
                      num_processes=num_processes)
    if scan.held_out:
        plan.notes.append(sentence("steps.held_out", count=len(scan.held_out), split=f"{cfg.validation_split:g}"))
    if num_processes > 1:
        dropped = batches % num_processes
        if dropped:
            plan.notes.append(sentence("steps.processes_dropped", processes=num_processes, dropped=dropped))
    warmup = cfg.lr_warmup_steps or 0
    if warmup >= 1 and plan.total_steps and warmup >= plan.total_steps:
        plan.notes.append(sentence("steps.warmup_long", warmup=f"{warmup:g}", steps=plan.total_steps))
    return plan
