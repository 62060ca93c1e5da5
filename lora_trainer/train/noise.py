"""Diffusion-training maths: noise, timesteps, targets and min-SNR weights.

Written here rather than imported from ``diffusers.training_utils``, which does not
import under the transformers version A1111 ships.
"""
from __future__ import annotations

import torch


def sample_noise(latents: torch.Tensor, noise_offset: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise; with an offset, plus a per-channel constant (helps very dark/bright images)."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1),
                                                   generator=generator, device=latents.device,
                                                   dtype=latents.dtype)
    return noise


def sample_timesteps(batch: int, num_train_timesteps: int, device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, num_train_timesteps, (batch,), generator=generator, device=device).long()


def add_noise(alphas_cumprod: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor,
              timesteps: torch.Tensor) -> torch.Tensor:
    a = alphas_cumprod[timesteps].to(latents.dtype)
    shape = (-1,) + (1,) * (latents.dim() - 1)
    return a.sqrt().view(shape) * latents + (1 - a).sqrt().view(shape) * noise


def velocity(alphas_cumprod: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor,
             timesteps: torch.Tensor) -> torch.Tensor:
    """v-prediction target: sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x₀."""
    a = alphas_cumprod[timesteps].to(latents.dtype)
    shape = (-1,) + (1,) * (latents.dim() - 1)
    return a.sqrt().view(shape) * noise - (1 - a).sqrt().view(shape) * latents


def snr(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    a = alphas_cumprod[timesteps]
    return a / (1 - a)


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float,
                    v_prediction: bool) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023), as kohya applies them: min(SNR, γ)/SNR for ε,
    min(SNR, γ)/(SNR+1) for v-prediction."""
    s = snr(alphas_cumprod, timesteps).float()
    clipped = torch.clamp(s, max=gamma)
    return clipped / (s + 1) if v_prediction else clipped / s
