"""The full-size UNet of the shipped configs with random weights, and one step's inputs for it: what the
device-independent CPU measurements (``saved_activations.py``, ``step_ops.py``) run."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import torch

CONFIGS = Path(__file__).resolve().parents[1] / "lora_trainer" / "models" / "configs"


def random_unet(model: str, dtype: torch.dtype = torch.bfloat16):
    """``model`` (sd15 | sdxl) as a UNet with random ``dtype`` weights."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(CONFIGS / model / "unet"))).to(dtype)


def unet_inputs(unet, resolution: int, batch: int = 1, dtype: torch.dtype = torch.bfloat16) -> dict:
    """Random latents, a timestep, prompt embeddings and (SDXL) the added conditioning for ``unet(**inputs)``."""
    side = resolution // 8
    inputs = {"sample": torch.randn(batch, 4, side, side, dtype=dtype), "timestep": torch.tensor([500]),
              "encoder_hidden_states": torch.randn(batch, 77, unet.config.cross_attention_dim, dtype=dtype)}
    if unet.config.addition_embed_type == "text_time":
        inputs["added_cond_kwargs"] = {"text_embeds": torch.randn(batch, 1280, dtype=dtype),
                                       "time_ids": torch.randn(batch, 6, dtype=dtype)}
    return inputs


def median_seconds(step: Callable[[], None], steps: int) -> float:
    """The median wall time of ``steps`` calls of ``step``."""
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)
