"""Write a LoRA file (kohya keys + metadata) and its resumable state, atomically.

The LoRA files go to the output folder (the WebUI's Lora tab lists each as a card); a state goes to the
run's folder beside its logs, so that the output folder holds nothing else. Only the newest
``save_last_n_epochs_state`` states of a run are kept.
"""
from __future__ import annotations

import os
import shutil
from typing import Callable

from ..config.metadata import RunFacts, training_metadata
from ..lora.kohya_format import kohya_state_dict
from .state import RngStates, save_state


def checkpoint_names(output_name: str, kind: str, epoch: int) -> tuple[str, str]:
    """(LoRA file name, state folder name) for an epoch, the final file or an interrupted run."""
    stem = {"epoch": f"{output_name}-{epoch:06d}", "final": output_name,
            "interrupted": f"{output_name}-interrupted"}[kind]
    return f"{stem}.safetensors", f"{stem}-state"


def _size(value) -> int:
    """Bytes of the tensors in ``value`` (nested dicts and lists): what writing it needs on disk."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return 0


def _write(write, path: str, needed: int, what: str):
    """``write()``; a failed write (a full disk above all) becomes the user's ``OutputError``."""
    from ..io.disk import write_error

    try:
        return write()
    except Exception as err:
        user_error = write_error(err, path, needed, what)
        if user_error is None:
            raise
        raise user_error from None


def save_checkpoint(run, *, kind: str, epoch: int, step: int, state_root: str, batch_in_epoch: int = 0,
                    on_lora_saved: Callable[[str], None] | None = None,
                    rank_rngs: list | None = None) -> tuple[str, str | None]:
    """The LoRA file into the output folder, then (when wanted) its state folder into ``state_root``;
    ``on_lora_saved(path)`` is told of the file as soon as it is on disk, so that a state that cannot be
    written does not hide it. ``rank_rngs``: every process's random states (``RngStates``) of a run of several.
    Returns (file path, state folder or None); a failed write raises ``OutputError``."""
    from ..io.atomic import save_safetensors_atomic

    cfg = run.cfg
    _write(lambda: os.makedirs(cfg.output_dir, exist_ok=True), cfg.output_dir, 0, cfg.output_dir)
    file_name, state_name = checkpoint_names(cfg.output_name, kind, epoch)
    path = os.path.join(cfg.output_dir, file_name)
    tensors = kohya_state_dict(run.network, run.base.family, cfg.save_precision, run.base.unet.config)
    metadata = training_metadata(cfg, RunFacts(
        family=run.base.family, model_name=run.base.model_name,
        num_train_images=sum(1 for it in run.items if not it.is_reg),
        num_reg_images=sum(1 for it in run.items if it.is_reg), epoch=epoch, steps=step,
        training_started_at=run.started_at, tag_frequency=run.scan.tag_frequency(),
        v_prediction=bool(run.base.v_prediction)))
    _write(lambda: save_safetensors_atomic(tensors, path, metadata), path,
           _size(tensors) + sum(len(k) + len(v) for k, v in metadata.items()), file_name)
    if on_lora_saved is not None:
        on_lora_saved(path)
    state_dir = None
    if cfg.save_state or kind == "interrupted":
        lora, optimizer = run.network.trainable_state(), run.optimizer.state_dict()
        state_path = os.path.join(state_root, state_name)
        rng = rank_rngs[0] if rank_rngs else RngStates.capture(run.caption_rng, run.noise_generator)
        state_dir = _write(lambda: save_state(
            state_path, step=step, epoch=epoch, batch_in_epoch=batch_in_epoch, lora=lora, optimizer=optimizer,
            scheduler=run.scheduler.state_dict(), rng=rng, config=cfg.to_dict(), rank_rngs=rank_rngs),
            state_path, _size(lora) + _size(optimizer) + (1 << 20), f"{state_name}/")
    return path, state_dir


class StateKeeper:
    """The states one run saved, oldest first; keeps the newest ``keep`` (None: all of them).

    When states are pruned, one saved at the same step as the one before (the final file's after the last
    epoch's) holds the same training position, so it replaces that one."""

    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self.saved: list[tuple[int, str]] = []   # (step, state folder)

    def added(self, step: int, state_dir: str) -> list[str]:
        """Record a new state; delete and return the ones it makes unnecessary."""
        drop = []
        if self.keep and self.saved and self.saved[-1][0] == step:
            drop.append(self.saved.pop()[1])
        self.saved.append((step, state_dir))
        if self.keep:
            while len(self.saved) > self.keep:
                drop.append(self.saved.pop(0)[1])
        removed = []
        for folder in drop:
            if os.path.normcase(os.path.abspath(folder)) == os.path.normcase(os.path.abspath(state_dir)):
                continue   # saved again under the same name: nothing to delete
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        return removed
