"""Validation loss of saved LoRA files, on demand after training: a second loss curve, per epoch.

Every file is applied to the base model as hooks (``lora.file_hooks``) and scored with the fixed set
of ``train.validation_loss``, the measurement the training loop logs while it trains, so the numbers
computed here and those logged during training are the same.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..lora.file_hooks import lora_applied, module_table
from ..train.validation_loss import (DEFAULT_MAX_IMAGES, DEFAULT_TIMESTEPS, build_validation_set, held_out_items,
                                     items_from_folder, items_from_training, step_models_for, validation_loss)


@dataclass
class ValidationResult:
    path: str
    stem: str
    epoch: int | None
    step: int | None
    loss: float
    weight: float = 1.0
    unmatched_keys: int = 0          # modules of the file the base model does not have
    source: str = "training"         # the images: "training" | "holdout"


def validate_files(cfg, files: Sequence, *, holdout_dir: str | None = None, max_images: int = DEFAULT_MAX_IMAGES,
                   seed: int | None = None, timesteps: Sequence[int] = DEFAULT_TIMESTEPS, multiplier: float = 1.0,
                   device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[ValidationResult]:
    """Validation loss of each file (``runs.RunFile`` or path), on demand after training.

    ``cfg`` (a ``TrainConfig``) names the base model and, without ``holdout_dir``, the images:
    those its ``validation_split`` kept out of training, else up to ``max_images`` training
    images; its resolution, clip skip and v-prediction setting are used."""
    from ..models.loading import load_base_model
    from .runs import LORA_SUFFIX, RunFile

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    source = "holdout"
    if holdout_dir:
        items = items_from_folder(holdout_dir, cfg.resolution_wh, caption_extension=cfg.caption_extension,
                                  max_images=max_images)
    else:
        items = held_out_items(cfg)   # the images the run kept out of training, if it did
        if not items:
            items, source = items_from_training(cfg, max_images), "training"
    base = load_base_model(cfg.pretrained_model_name_or_path, dtype=dtype,
                           v_parameterization=cfg.v_parameterization)
    seed = cfg.effective_validation_seed if seed is None else seed   # what the training run used
    vset = build_validation_set(base.vae, items, seed=seed, timesteps=timesteps,
                                num_train_timesteps=int(base.noise_scheduler.config.num_train_timesteps),
                                device=device, source=source)
    base.vae.to("cpu")
    base.unet.to(device, dtype)
    for te in base.text_encoders:
        te.to(device, dtype)
    models = step_models_for(base, device, cfg.clip_skip, cfg.max_token_length)
    table = module_table(base.family, base.unet, base.text_encoders)
    results = []
    for index, f in enumerate(files):
        if not isinstance(f, RunFile):
            path = os.fspath(f)
            name = os.path.basename(path)
            f = RunFile(path, name[: -len(LORA_SUFFIX)] if name.lower().endswith(LORA_SUFFIX) else name,
                        "final", None)
        with lora_applied(table, f.path, multiplier) as unmatched:
            loss = validation_loss(models, vset)
        results.append(ValidationResult(f.path, f.stem, f.epoch, f.step, loss, multiplier, unmatched, vset.source))
        if progress is not None:
            progress(index + 1, len(files))
    return results


def log_validation(log_dir: str | os.PathLike, results: Sequence[ValidationResult]) -> None:
    """Append the results to the run's ``metrics.jsonl`` as ``validation`` events (read back by ``run_log``)."""
    from ..train.metrics import MetricsLogger

    with MetricsLogger(log_dir, tensorboard=False) as logger:
        for r in results:
            if r.epoch is not None:
                logger.log_event("validation", epoch=r.epoch, step=r.step, loss=r.loss, file=r.stem,
                                 source=r.source, weight=r.weight)
