"""A run's loss history, from our ``metrics.jsonl`` or from kohya's TensorBoard events."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TrainerError
from .runs import METRICS_FILE, RunInfo

_NAN_RE = re.compile(r"loss became (nan|inf|-inf) at step (\d+)", re.IGNORECASE)
# kohya's TensorBoard tags, most specific first
KOHYA_STEP_TAGS = ("loss/current", "loss/average")
KOHYA_EPOCH_TAGS = ("loss/epoch",)
KOHYA_VALIDATION_TAGS = ("loss/validation/epoch_average", "loss/validation_epoch_average",
                         "loss/validation/epoch", "loss/validation")


@dataclass
class LossLog:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)           # NaN where the loss was not finite
    epochs: list[tuple[int, int | None, float]] = field(default_factory=list)  # (epoch, step, mean loss)
    validation: list[tuple[int, int | None, float]] = field(default_factory=list)  # (epoch, step, loss)
    validation_source: str | None = None   # "holdout" | "training": what the validation loss was computed on
    learning_rates: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    nan_step: int | None = None       # where training stopped on a non-finite loss
    failed: str | None = None         # the error a failed run logged
    source: str | None = None         # "metrics" | "tensorboard" | None

    @property
    def empty(self) -> bool:
        return not self.steps


def _number(value) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_metrics_log(log_dir: str | os.PathLike) -> LossLog:
    """Our ``metrics.jsonl``: step losses, epoch means, learning rates, a NaN stop."""
    from ..train.metrics import read_metrics

    log = LossLog(source="metrics")
    by_step: dict[int, float] = {}
    for rec in read_metrics(log_dir):
        kind = rec.get("type")
        if kind == "step" and isinstance(rec.get("step"), int):
            step = rec["step"]
            by_step[step] = _number(rec.get("loss"))  # a resumed run re-logs steps: the later wins
            for key, value in rec.items():
                if key.startswith("lr/") and isinstance(value, (int, float)):
                    log.learning_rates.setdefault(key[3:], []).append((step, float(value)))
        elif kind == "epoch" and isinstance(rec.get("epoch"), int):
            log.epochs.append((rec["epoch"], rec.get("step"), _number(rec.get("mean_loss"))))
        elif kind == "event" and rec.get("kind") == "validation" and isinstance(rec.get("epoch"), int):
            log.validation.append((rec["epoch"], rec.get("step"), _number(rec.get("loss"))))
            log.validation_source = str(rec.get("source") or "holdout")  # the latest computation wins
        elif kind == "event" and rec.get("kind") == "failed":
            log.failed = str(rec.get("error") or "")
            match = _NAN_RE.search(log.failed)
            if match:
                log.nan_step = int(match[2])
    log.steps = sorted(by_step)
    log.losses = [by_step[s] for s in log.steps]
    log.epochs = sorted({e: (e, s, v) for e, s, v in log.epochs}.values())
    log.validation = sorted({e: (e, s, v) for e, s, v in log.validation}.values())
    for name, points in log.learning_rates.items():
        log.learning_rates[name] = sorted(dict(points).items())
    first_nan = next((s for s, v in zip(log.steps, log.losses) if not math.isfinite(v)), None)
    if log.nan_step is None:
        log.nan_step = first_nan
    return log


def read_tensorboard_log(folder: str | os.PathLike) -> LossLog:
    """kohya's TensorBoard logs: ``loss/current`` per step, ``loss/epoch`` per epoch."""
    from .tb_reader import read_scalars

    scalars = read_scalars(folder)
    log = LossLog(source="tensorboard")
    step_tag = next((t for t in KOHYA_STEP_TAGS if t in scalars), None)
    if step_tag is None:
        return LossLog()
    log.steps = [s for s, _ in scalars[step_tag]]
    log.losses = [v for _, v in scalars[step_tag]]
    epoch_tag = next((t for t in KOHYA_EPOCH_TAGS if t in scalars), None)
    if epoch_tag:  # logged against the epoch number
        log.epochs = [(int(e), None, v) for e, v in scalars[epoch_tag]]
    val_tag = next((t for t in KOHYA_VALIDATION_TAGS if t in scalars), None)
    if val_tag:  # kohya validates on a split of the dataset that is not trained on
        log.validation = [(int(e), None, v) for e, v in scalars[val_tag]]
        log.validation_source = "holdout"
    for tag, points in scalars.items():
        if tag.startswith("lr/"):
            log.learning_rates[tag[3:]] = list(points)
    log.nan_step = next((s for s, v in zip(log.steps, log.losses) if not math.isfinite(v)), None)
    return log


def read_loss_log(run: RunInfo, log_dir: str | os.PathLike | None = None) -> LossLog:
    """The loss history of ``run`` from ``log_dir`` (default: the run's own log), or an empty log.

    ``log_dir`` may be our run log folder or a kohya logging folder with TensorBoard events."""
    chosen = log_dir or run.log_dir
    if not chosen:   # no log: never Path(""), which is the working folder (a WebUI's root, searched recursively)
        return LossLog()
    folder = Path(chosen)
    if not folder.is_dir():
        return LossLog()
    if (folder / METRICS_FILE).is_file():
        log = read_metrics_log(folder)
    else:
        log = read_tensorboard_log(folder)
    for f in run.epoch_files:  # kohya logs epochs without steps; the files' metadata has them
        if f.step is None:
            try:
                f.fill_from_metadata()
            except TrainerError:
                pass
    epoch_steps = {f.epoch: f.step for f in run.files if f.kind == "epoch" and f.step is not None}
    log.epochs = [(e, s if s is not None else epoch_steps.get(e), v) for e, s, v in log.epochs]
    log.validation = [(e, s if s is not None else epoch_steps.get(e), v) for e, s, v in log.validation]
    return log
