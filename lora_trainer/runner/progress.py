"""A job's record follows its run: each event of the training loop becomes the job's step, losses, files and
log lines (keyed sentences, so the API and the tab show them in their reader's language)."""
from __future__ import annotations

import os

from ..text.messages import msg, sentence
from ..train import events as ev
from .job import Job


def apply_event(job: Job, kinds: dict, event) -> bool:
    """Record ``event`` in ``job`` (the caller holds the job's lock); ``kinds`` maps each saved LoRA to its
    kind ("epoch", "final", "interrupted"). True when the record on disk should be written now."""
    if isinstance(event, ev.Started):
        if job.status == "preparing":
            job.status = "training"
        job.total_steps, job.epochs, job.step = event.total_steps, event.epochs, event.start_step
        job.run_dir = event.run_dir or job.run_dir
        job.plan_text, job.warnings = event.plan_text, list(event.warnings)
        job.add_log(event.plan_text)
        for warning in event.warnings:
            job.add_log(sentence("job.warning", text=warning))
        return False
    if isinstance(event, ev.StepEnd):
        job.step, job.total_steps, job.epoch = event.step, event.total_steps, event.epoch
        if event.loss is not None:
            job.losses.append([event.step, event.loss])
        job.lr = dict(event.lrs)
        job.it_per_s = event.it_per_s
        job.eta_s = (event.total_steps - event.step) / event.it_per_s if event.it_per_s else None
        if event.peak_memory_gb is not None:
            job.vram_gb = event.peak_memory_gb
        return False
    if isinstance(event, ev.EpochEnd):
        job.epoch = event.epoch
        job.epoch_losses.append([event.epoch, event.step, event.mean_loss])
        job.add_log(sentence("job.epoch_loss", epoch=event.epoch, loss=event.mean_loss, step=event.step))
        return True
    if isinstance(event, ev.Validated):
        job.validation.append([event.epoch, event.step, event.loss])
        which = msg("job.images.holdout" if event.source == "holdout" else "job.images.training", count=event.images)
        job.add_log(sentence("job.validation_loss", epoch=event.epoch, loss=event.loss, images=which))
        return True
    if isinstance(event, ev.FileSaved):
        gone = {os.path.normcase(os.path.abspath(p)) for p in event.removed_states}
        for record in job.files:   # states the run deleted (only the newest are kept)
            if record.get("state_dir") and os.path.normcase(os.path.abspath(record["state_dir"])) in gone:
                record["state_dir"] = None
        job.files.append({"path": event.path, "epoch": event.epoch, "step": event.step, "kind": event.kind,
                          "state_dir": event.state_dir})
        kinds[event.path] = event.kind
        job.add_log(sentence("job.saved", path=event.path))
        return True
    return False
