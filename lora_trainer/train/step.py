"""One training step's loss: the code path shared by ``train`` and ``bench``.

No host synchronisation happens here: the loss stays on the device until the loop
decides to read it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from . import noise as noise_math
from .flat_params import is_flat
from .conditioning import encode_cached, encode_ids, sdxl_time_ids, tokenize_captions
from .transfer import to_device


@dataclass
class Batch:
    latents: torch.Tensor              # already scaled by the VAE's scaling factor
    captions: list[str]
    loss_weights: torch.Tensor         # 1 for training images, prior_loss_weight for regularization
    original_sizes: list[tuple[int, int]]  # (h, w) before resizing (SDXL conditioning)
    crops: list[tuple[int, int]]           # (top, left)
    target_sizes: list[tuple[int, int]]    # (h, w) of the bucket
    masks: Optional[torch.Tensor] = None   # [B, 1, h, w] loss masks at the latents' size (1: trained)


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
    channels_last: bool = False        # feed the UNet NHWC activations
    compute_dtype: Optional[torch.dtype] = None  # the UNet's input dtype (there may be no autocast to cast it)
    max_token_length: int = 75         # 150 / 225: captions in 2 / 3 chunks of 75 tokens (kohya)
    multires_noise_iterations: Optional[int] = None
    multires_noise_discount: float = 0.3
    ip_noise_gamma: Optional[float] = None
    debiased_estimation: bool = False
    snr_alphas_cumprod: Optional[torch.Tensor] = None  # the ᾱ the SNR weights are read from: kohya's are those of
    #                                  the schedule before zero_terminal_snr rescales it (None: alphas_cumprod)
    host_rng: Optional[random.Random] = None  # the multires noise's random scale factors (drawn on the host)


@dataclass
class StepInputs:
    """What one step consumes, as device tensors: the batch, its noise and timesteps, the
    prompt conditioning (the cached encoder outputs, or the captions' token ids when the text
    encoders run in the step). Sampled outside the differentiated part, so that a CUDA graph
    can take them as static inputs."""
    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    loss_weights: torch.Tensor
    encoder_hidden_states: Optional[torch.Tensor] = None
    text_embeds: Optional[torch.Tensor] = None   # SDXL
    time_ids: Optional[torch.Tensor] = None      # SDXL
    input_ids: Optional[torch.Tensor] = None     # no prompt cache: tokens of the (first) text encoder
    input_ids_2: Optional[torch.Tensor] = None   # and of SDXL's second one
    input_noise: Optional[torch.Tensor] = None   # ip_noise_gamma: the noise in the UNet's input (not the target's)
    masks: Optional[torch.Tensor] = None         # [B, 1, h, w] loss masks

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.latents, self.noise, self.timesteps, self.loss_weights,
                            self.encoder_hidden_states, self.text_embeds, self.time_ids,
                            self.input_ids, self.input_ids_2, self.input_noise, self.masks) if t is not None]


def sample_inputs(m: StepModels, batch: Batch, generator: torch.Generator) -> StepInputs:
    """Noise, timesteps and conditioning for ``batch``: cached encoder outputs, or token ids that
    ``loss_from_inputs`` encodes (so a trained text encoder runs inside the step's graph)."""
    latents = batch.latents
    device = latents.device
    noise = noise_math.sample_noise(latents, m.noise_offset, generator)
    if m.multires_noise_iterations:
        noise = noise_math.pyramid_noise(noise, m.multires_noise_iterations, m.multires_noise_discount,
                                         m.host_rng or random, generator)
    timesteps = noise_math.sample_timesteps(latents.shape[0], m.num_train_timesteps, device, generator)
    inputs = StepInputs(latents=latents, noise=noise, timesteps=timesteps, loss_weights=batch.loss_weights,
                        masks=batch.masks)
    if m.ip_noise_gamma:
        inputs.input_noise = noise_math.perturbed(noise, m.ip_noise_gamma, generator)
    if m.prompt_cache is not None:
        cond = encode_cached(m.prompt_cache, m.family, m.text_encoders, m.tokenizers, batch.captions,
                             m.clip_skip, device, m.max_token_length)
        inputs.encoder_hidden_states = cond["encoder_hidden_states"]
        inputs.text_embeds = cond.get("text_embeds")
    else:
        ids = tokenize_captions(m.family, m.tokenizers, batch.captions, device, m.max_token_length)
        inputs.input_ids, inputs.input_ids_2 = ids[0], (ids[1] if len(ids) > 1 else None)
    if m.family == "sdxl":
        dtype = inputs.text_embeds.dtype if inputs.text_embeds is not None else torch.float32
        inputs.time_ids = to_device(sdxl_time_ids(batch.original_sizes, batch.crops, batch.target_sizes, "cpu",
                                                  dtype), device)
    return inputs


def conditioning(m: StepModels, x: StepInputs) -> dict[str, torch.Tensor]:
    """The UNet's prompt keyword arguments: from the cache, or the text encoders run on the token
    ids (with gradients when they are trained)."""
    if x.input_ids is None:
        kwargs = {"encoder_hidden_states": x.encoder_hidden_states}
        text_embeds = x.text_embeds
    else:
        ids = [x.input_ids] + ([x.input_ids_2] if x.input_ids_2 is not None else [])
        with torch.set_grad_enabled(m.train_text_encoder and torch.is_grad_enabled()):
            cond = encode_ids(m.family, m.text_encoders, ids, m.clip_skip)
        kwargs = {"encoder_hidden_states": cond["encoder_hidden_states"]}
        text_embeds = cond.get("text_embeds")
    if text_embeds is not None:
        kwargs["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": x.time_ids.to(text_embeds.dtype)}
    return kwargs


def loss_from_inputs(m: StepModels, x: StepInputs) -> torch.Tensor:
    """The UNet's denoising loss: no host synchronisation, no data-dependent control flow. A loss mask
    weights the per-pixel error before the mean (kohya's ``apply_masked_loss``)."""
    input_noise = x.noise if x.input_noise is None else x.input_noise
    noisy = noise_math.add_noise(m.alphas_cumprod, x.latents, input_noise, x.timesteps)
    kwargs = conditioning(m, x)
    if m.compute_dtype is not None:
        noisy = noisy.to(m.compute_dtype)
    if m.channels_last:
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    prediction = m.unet(noisy, x.timesteps, **kwargs).sample

    target = noise_math.velocity(m.alphas_cumprod, x.latents, x.noise, x.timesteps) if m.v_prediction else x.noise
    loss = F.mse_loss(prediction.float(), target.float(), reduction="none")
    if x.masks is not None:
        loss = loss * x.masks
    loss = loss.mean(dim=(1, 2, 3)) * x.loss_weights
    snr_from = m.alphas_cumprod if m.snr_alphas_cumprod is None else m.snr_alphas_cumprod
    if m.min_snr_gamma:
        loss = loss * noise_math.min_snr_weights(snr_from, x.timesteps, m.min_snr_gamma, m.v_prediction)
    if m.debiased_estimation:
        loss = loss * noise_math.debiased_weights(snr_from, x.timesteps, m.v_prediction)
    return loss.mean()


def compute_loss(m: StepModels, batch: Batch, generator: torch.Generator) -> torch.Tensor:
    return loss_from_inputs(m, sample_inputs(m, batch, generator))


def optimizer_update(accelerator, optimizer, network, params, max_grad_norm: float) -> None:
    """Gradients to the fp32 masters, clip, optimizer step, clear gradients, masters back to
    the compute copies. Free of host synchronisation (a CUDA graph can capture it)."""
    flat = is_flat(optimizer)   # flat groups: the gradients are views that must stay
    network.grads_to_masters(keep=flat)
    step_optimizer(accelerator, optimizer, network, params, max_grad_norm, keep_gradients=flat)


def accumulate_gradients(accelerator, network, loss: torch.Tensor, accumulation: int) -> None:
    """Backward pass of one of the ``accumulation`` batches of an update, its gradients written (added,
    after the first) into the optimizer's gradient buffers. Those persist between steps (``step_optimizer``
    clears them in place), so that a captured graph writes into the same memory on every replay. Free
    of host synchronisation."""
    accelerator.backward(loss / accumulation if accumulation > 1 else loss)
    network.grads_to_masters(keep=True, add=accumulation > 1)


def step_optimizer(accelerator, optimizer, network, params, max_grad_norm: float,
                   keep_gradients: bool = True) -> None:
    """The update once the masters hold the gradients (after ``accumulate_gradients``; inside
    ``optimizer_update``, which a graph can capture): clip, step the optimizer (fp16's loss scaler may
    skip an overflowing step), clear the gradients (in place when they are kept buffers), masters back
    to the compute copies."""
    if max_grad_norm:
        accelerator.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=not keep_gradients)
    network.masters_to_compute()


def after_update(scheduler, network, scale_weight_norms: float | None) -> None:
    """The host-side rest of an update: the LR schedule and max-norm regularisation."""
    scheduler.step()
    if scale_weight_norms:
        network.apply_max_norm(scale_weight_norms)


def apply_update(accelerator, optimizer, scheduler, network, params, max_grad_norm: float,
                 scale_weight_norms: float | None) -> None:
    """Clip, step the optimizer and the LR schedule, clear gradients, apply max-norm.

    ``params`` are the optimizer's tensors (the fp32 masters when compute copies are used)."""
    optimizer_update(accelerator, optimizer, network, params, max_grad_norm)
    after_update(scheduler, network, scale_weight_norms)
