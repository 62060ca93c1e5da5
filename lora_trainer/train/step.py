"""One training step's loss: the code path shared by ``train`` and ``bench``.

No host synchronisation happens here: the loss stays on the device until the loop
decides to read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from . import noise as noise_math
from .conditioning import encode_cached, encode_prompts, sdxl_time_ids


@dataclass
class Batch:
    latents: torch.Tensor              # already scaled by the VAE's scaling factor
    captions: list[str]
    loss_weights: torch.Tensor         # 1 for training images, prior_loss_weight for regularization
    original_sizes: list[tuple[int, int]]  # (h, w) before resizing (SDXL conditioning)
    crops: list[tuple[int, int]]           # (top, left)
    target_sizes: list[tuple[int, int]]    # (h, w) of the bucket


@dataclass
class StepModels:
    family: str
    unet: torch.nn.Module
    text_encoders: list
    tokenizers: list
    alphas_cumprod: torch.Tensor       # on the training device, fp32
    num_train_timesteps: int
    v_prediction: bool
    train_text_encoder: bool
    clip_skip: Optional[int]
    min_snr_gamma: Optional[float]
    noise_offset: Optional[float]
    prompt_cache: Optional[dict] = None  # caption → encoder outputs, when the encoders are frozen


def compute_loss(m: StepModels, batch: Batch, generator: torch.Generator) -> torch.Tensor:
    latents = batch.latents
    device = latents.device
    noise = noise_math.sample_noise(latents, m.noise_offset, generator)
    timesteps = noise_math.sample_timesteps(latents.shape[0], m.num_train_timesteps, device, generator)
    noisy = noise_math.add_noise(m.alphas_cumprod, latents, noise, timesteps)

    if m.prompt_cache is not None:
        cond = encode_cached(m.prompt_cache, m.family, m.text_encoders, m.tokenizers, batch.captions,
                             m.clip_skip, device)
    else:
        with torch.set_grad_enabled(m.train_text_encoder and torch.is_grad_enabled()):
            cond = encode_prompts(m.family, m.text_encoders, m.tokenizers, batch.captions, m.clip_skip, device)
    kwargs = {"encoder_hidden_states": cond["encoder_hidden_states"]}
    if m.family == "sdxl":
        time_ids = sdxl_time_ids(batch.original_sizes, batch.crops, batch.target_sizes, device,
                                 cond["text_embeds"].dtype)
        kwargs["added_cond_kwargs"] = {"text_embeds": cond["text_embeds"], "time_ids": time_ids}
    prediction = m.unet(noisy, timesteps, **kwargs).sample

    target = noise_math.velocity(m.alphas_cumprod, latents, noise, timesteps) if m.v_prediction else noise
    loss = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    loss = loss * batch.loss_weights
    if m.min_snr_gamma:
        loss = loss * noise_math.min_snr_weights(m.alphas_cumprod, timesteps, m.min_snr_gamma, m.v_prediction)
    return loss.mean()


def apply_update(accelerator, optimizer, scheduler, network, params, max_grad_norm: float,
                 scale_weight_norms: float | None) -> None:
    """Clip, step the optimizer and the LR schedule, clear gradients, apply max-norm.

    ``params`` are the optimizer's tensors (the fp32 masters when compute copies are used)."""
    network.grads_to_masters()
    if max_grad_norm:
        accelerator.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    network.masters_to_compute()
    if scale_weight_norms:
        network.apply_max_norm(scale_weight_norms)
