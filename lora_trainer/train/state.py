"""Resumable training state: LoRA (fp32), optimizer, scheduler, RNGs, position.

Saved as a folder next to each saved epoch (``<name>-000003-state/``). The folder is
written under a temporary name and renamed when complete, so a crash never leaves a
state that looks whole but is not.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import TrainerError

STATE_VERSION = 1
# settings that must match for a resumed run to be the same run
RESUME_KEYS = ("network_dim", "network_alpha", "conv_dim", "conv_alpha", "network_args",
               "network_train_unet_only", "network_train_text_encoder_only", "train_batch_size",
               "gradient_accumulation_steps", "seed", "optimizer_type", "validation_split")


@dataclass
class RngStates:
    python: Any
    torch_cpu: torch.Tensor
    torch_cuda: list | None
    noise: torch.Tensor

    @classmethod
    def capture(cls, caption_rng: random.Random, noise_gen: torch.Generator) -> "RngStates":
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return cls(caption_rng.getstate(), torch.get_rng_state(), cuda, noise_gen.get_state())

    def restore(self, caption_rng: random.Random, noise_gen: torch.Generator) -> None:
        caption_rng.setstate(self.python)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.torch_cuda)
        noise_gen.set_state(self.noise)


@dataclass
class TrainingState:
    step: int                 # optimizer steps done
    epoch: int                # epochs fully done
    batch_in_epoch: int       # batches of the next epoch already consumed (interrupted runs)
    lora: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    rng: RngStates
    config: dict


def save_state(state_dir: str, *, step: int, epoch: int, batch_in_epoch: int, lora: dict[str, torch.Tensor],
               optimizer: dict, scheduler: dict, rng: RngStates, config: dict) -> str:
    from safetensors.torch import save_file

    parent = os.path.dirname(os.path.abspath(state_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(state_dir)}.tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        save_file({k: v.contiguous().cpu() for k, v in lora.items()}, os.path.join(tmp, "lora.safetensors"))
        torch.save(optimizer, os.path.join(tmp, "optimizer.pt"))
        torch.save(scheduler, os.path.join(tmp, "scheduler.pt"))
        torch.save({"python": rng.python, "torch_cpu": rng.torch_cpu, "torch_cuda": rng.torch_cuda,
                    "noise": rng.noise}, os.path.join(tmp, "rng.pt"))
        with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as fh:
            json.dump({"version": STATE_VERSION, "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                       "config": config}, fh, ensure_ascii=False, indent=1)
        if os.path.exists(state_dir):
            old = tmp + ".old"
            os.replace(state_dir, old)
            os.replace(tmp, state_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, state_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return state_dir


def load_state(state_dir: str) -> TrainingState:
    from safetensors.torch import load_file

    info_path = os.path.join(state_dir, "state.json")
    if not os.path.isfile(info_path):
        raise TrainerError(f"{state_dir} is not a training state folder (state.json is missing)",
                           "choose a folder ending in -state that a run saved next to its LoRA files")
    try:
        with open(info_path, encoding="utf-8") as fh:
            info = json.load(fh)
        lora = load_file(os.path.join(state_dir, "lora.safetensors"))
        optimizer = torch.load(os.path.join(state_dir, "optimizer.pt"), map_location="cpu", weights_only=False)
        scheduler = torch.load(os.path.join(state_dir, "scheduler.pt"), map_location="cpu", weights_only=False)
        rng = torch.load(os.path.join(state_dir, "rng.pt"), map_location="cpu", weights_only=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise TrainerError(f"the training state in {state_dir} cannot be read: {err}",
                           "resume from an earlier -state folder of the same run") from None
    return TrainingState(step=info["step"], epoch=info["epoch"], batch_in_epoch=info.get("batch_in_epoch", 0),
                         lora=lora, optimizer=optimizer, scheduler=scheduler,
                         rng=RngStates(rng["python"], rng["torch_cpu"], rng["torch_cuda"], rng["noise"]),
                         config=info.get("config", {}))


def resume_mismatches(saved: dict, current: dict) -> list[str]:
    return [f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in RESUME_KEYS
            if k in saved and saved.get(k) != current.get(k)]
