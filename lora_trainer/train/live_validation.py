"""The validation loss while training: a fixed set built once at setup, scored after chosen epochs.

The set (latents, noise, fixed timesteps) is built by ``validation_loss``, which the Evaluate tab
scores saved files with too, so the numbers logged here and those computed later from the Evaluate tab are
the same measurement. Held-out images come from ``validation_split`` and/or a
``validation_data_dir``; without either, ``validate_every_n_epochs`` scores a few training
images with fixed noise.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)
from .graphs import dropout_active
from .validation_loss import (DEFAULT_MAX_IMAGES, ValidationSet, build_validation_set, items_from_entries,
                              items_from_folder, items_from_training_items, validation_loss)

MAX_FOLDER_IMAGES = 32


@dataclass
class LiveValidation:
    vset: ValidationSet
    every: int                 # epochs between two validations
    batch_size: int            # timesteps scored together (the training batch size bounds the memory)
    eval_mode: bool            # switch to eval mode (only needed when LoRA dropout is on)

    @property
    def captions(self) -> list[str]:
        return [item.caption for item in self.vset.items]

    @property
    def source(self) -> str:
        return self.vset.source

    def due(self, epoch: int, last: bool) -> bool:
        return last or epoch % self.every == 0

    def compute(self, run) -> float:
        """The loss with the network as it is now. Runs eagerly (compiled blocks are bypassed: a
        no-grad pass would compile them again) and outside any DDP wrapper."""
        m = run.step_models
        unwrap = run.accelerator.unwrap_model
        models = dataclasses.replace(m, unet=unwrap(m.unet), text_encoders=[unwrap(te) for te in m.text_encoders])
        with _eager():
            return validation_loss(models, self.vset, batch_size=self.batch_size, eval_mode=self.eval_mode)


@contextlib.contextmanager
def _eager():
    stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    if stance is None:   # torch < 2.6: no stance switch; compiled blocks recompile once for no-grad
        yield
        return
    stance("force_eager")
    try:
        yield
    finally:
        stance("default")


def prepare_validation(cfg, scan, items, vae, device, vae_dtype, num_train_timesteps: int,
                       log=print) -> LiveValidation | None:
    """The validation set of ``cfg`` while the VAE is on ``device`` (None when validation is off)."""
    if not cfg.validation_enabled:
        return None
    chosen = items_from_entries(scan.held_out, cfg)
    if cfg.validation_data_dir:
        chosen += items_from_folder(cfg.validation_data_dir, cfg.resolution_wh, caption_extension=cfg.caption_extension,
                                    max_images=MAX_FOLDER_IMAGES)
    source = "holdout"
    if not chosen:
        chosen, source = items_from_training_items(items, cfg, DEFAULT_MAX_IMAGES), "training"
    log(sentence("train.log.validation_holdout" if source == "holdout" else "train.log.validation_training",
                 count=len(chosen)))
    vset = build_validation_set(vae, chosen, seed=cfg.effective_validation_seed,
                                num_train_timesteps=num_train_timesteps, device=device, source=source,
                                vae_dtype=vae_dtype)
    every = cfg.validate_every_n_epochs or 1
    return LiveValidation(vset, every, max(1, cfg.train_batch_size), dropout_active(cfg))
