"""Write a LoRA file (kohya keys + metadata) and its resumable state, atomically."""
from __future__ import annotations

import os

from ..config.metadata import RunFacts, training_metadata
from ..lora.kohya_format import kohya_state_dict
from .state import RngStates, save_state


def checkpoint_names(output_name: str, kind: str, epoch: int) -> tuple[str, str]:
    """(LoRA file name, state folder name) for an epoch, the final file or an interrupted run."""
    stem = {"epoch": f"{output_name}-{epoch:06d}", "final": output_name,
            "interrupted": f"{output_name}-interrupted"}[kind]
    return f"{stem}.safetensors", f"{stem}-state"


def save_checkpoint(run, *, kind: str, epoch: int, step: int, batch_in_epoch: int = 0) -> tuple[str, str | None]:
    from ..io.atomic import save_safetensors_atomic

    cfg = run.cfg
    os.makedirs(cfg.output_dir, exist_ok=True)
    file_name, state_name = checkpoint_names(cfg.output_name, kind, epoch)
    path = os.path.join(cfg.output_dir, file_name)
    tensors = kohya_state_dict(run.network, run.base.family, cfg.save_precision, run.base.unet.config)
    metadata = training_metadata(cfg, RunFacts(
        family=run.base.family, model_name=run.base.model_name,
        num_train_images=sum(1 for it in run.items if not it.is_reg),
        num_reg_images=sum(1 for it in run.items if it.is_reg), epoch=epoch, steps=step,
        training_started_at=run.started_at, tag_frequency=run.scan.tag_frequency(),
        v_prediction=bool(run.base.v_prediction)))
    save_safetensors_atomic(tensors, path, metadata)
    state_dir = None
    if cfg.save_state or kind == "interrupted":
        state_dir = save_state(
            os.path.join(cfg.output_dir, state_name), step=step, epoch=epoch, batch_in_epoch=batch_in_epoch,
            lora=run.network.trainable_state(), optimizer=run.optimizer.state_dict(),
            scheduler=run.scheduler.state_dict(), rng=RngStates.capture(run.caption_rng, run.noise_generator),
            config=cfg.to_dict())
    return path, state_dir
