"""Learning-rate schedules by kohya name (``lr_scheduler``), built with diffusers.

Warm-up is a number of steps or, as a float in (0, 1), a fraction of all steps.
Two settings are adjusted rather than refused (``scheduler_notes`` says so):
``constant`` with warm-up becomes ``constant_with_warmup`` (older kohya ignored the
warm-up; taking it is what the user asked for), and Adafactor with ``relative_step=True``
always gets the ``adafactor`` schedule, which only reports the optimizer's own step size.
"""
from __future__ import annotations

import logging
import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..config import messages as config_messages  # noqa: F401  (the settings' sentences used here)
from ..config.option import LR_SCHEDULERS
from ..errors import ConfigError
from ..text.messages import msg, sentence
from .optimizers import initial_lr, uses_relative_step

log = logging.getLogger(__name__)

SCHEDULER_TYPES = LR_SCHEDULERS
_NOTES_ATTR = "_lora_trainer_notes"


def scheduler_notes(scheduler: LambdaLR) -> list[str]:
    """Plain-words notes on how ``build_scheduler`` applied the settings (may be empty)."""
    return list(getattr(scheduler, _NOTES_ATTR, []))


def resolve_warmup_steps(lr_warmup_steps: int | float | None, num_training_steps: int) -> int:
    """Warm-up in steps: an int is steps, a float in (0, 1) a fraction of ``num_training_steps``."""
    value = lr_warmup_steps or 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise ConfigError(msg("sched.warmup_kind", value=repr(lr_warmup_steps)))
    if isinstance(value, float):
        if 0 < value < 1:
            return int(value * num_training_steps)  # kohya truncates too
        if not value.is_integer():
            raise ConfigError(msg("sched.warmup_value", value=f"{value:g}"), msg("sched.warmup_value.advice"))
    return int(value)


def _adafactor_schedule(optimizer: torch.optim.Optimizer, start_lr: float) -> LambdaLR:
    from transformers.optimization import AdafactorSchedule
    return AdafactorSchedule(optimizer, initial_lr=start_lr)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, num_training_steps: int,
                    lr_warmup_steps: int | float = 0, num_cycles: int = 1, power: float = 1.0) -> LambdaLR:
    """A ``LambdaLR`` for ``name``, to be stepped once per optimizer step.

    ``num_cycles`` is the number of hard restarts of ``cosine_with_restarts``; ``power``
    the exponent of ``polynomial`` (1 = linear). kohya's ``adafactor:<lr>`` form is accepted.
    """
    key = str(name or "").strip().lower()
    start_lr = initial_lr(optimizer)
    if key.startswith("adafactor:"):
        key, _, text = key.partition(":")
        try:
            start_lr = float(text)
        except ValueError:
            raise ConfigError(msg("sched.not_number", name=name, text=text)) from None
    if key not in SCHEDULER_TYPES:
        raise ConfigError(msg("config.unknown_choice", name="lr_scheduler", value=name,
                              choices=", ".join(SCHEDULER_TYPES)))
    if isinstance(num_training_steps, bool) or not isinstance(num_training_steps, int) or num_training_steps < 1:
        raise ConfigError(msg("sched.steps", value=repr(num_training_steps)))
    if isinstance(num_cycles, float) and num_cycles.is_integer():
        num_cycles = int(num_cycles)
    if isinstance(num_cycles, bool) or not isinstance(num_cycles, int) or num_cycles < 1:
        raise ConfigError(msg("sched.cycles", value=repr(num_cycles)))
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not power >= 0:
        raise ConfigError(msg("sched.power", value=repr(power)))
    warmup = resolve_warmup_steps(lr_warmup_steps, num_training_steps)
    notes: list[str] = []

    relative = uses_relative_step(optimizer)
    if relative and key != "adafactor":
        notes.append(sentence("sched.replaced", name=name))
        key = "adafactor"
    elif key == "adafactor" and not relative:
        raise ConfigError(msg("sched.adafactor_only"), msg("sched.adafactor_only.advice"))
    if key == "constant" and warmup > 0:
        notes.append(sentence("sched.constant_warmup", warmup=warmup))
        key = "constant_with_warmup"

    if key == "adafactor":
        scheduler = _adafactor_schedule(optimizer, start_lr)
    else:
        from diffusers.optimization import get_scheduler
        try:
            scheduler = get_scheduler(key, optimizer, num_warmup_steps=warmup,
                                      num_training_steps=num_training_steps, num_cycles=num_cycles,
                                      power=float(power))
        except ValueError as err:  # e.g. polynomial with a learning rate below its end value
            raise ConfigError(msg("sched.refused", name=key, error=err)) from err
    for note in notes:
        log.info(note)
    setattr(scheduler, _NOTES_ATTR, notes)
    return scheduler
