"""Diffusion-training maths: noise, timesteps, targets and the loss's SNR weights.

Written here rather than imported from ``diffusers.training_utils``, which does not
import under the transformers version A1111 ships. The options kohya sd-scripts has follow its
definitions (``library/custom_train_functions.py``, ``train_util.get_noise_noisy_latents_and_timesteps``):
multires (pyramid) noise, input perturbation noise, zero terminal SNR, debiased estimation.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

SNR_CAP = 1000.0   # kohya caps the SNR of the first timesteps (near infinite) at 1000 for its weights


def sample_noise(latents: torch.Tensor, noise_offset: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise; with an offset, plus a per-channel constant (helps very dark/bright images)."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1),
                                                   generator=generator, device=latents.device,
                                                   dtype=latents.dtype)
    return noise


def pyramid_noise(noise: torch.Tensor, iterations: int, discount: float, rng: random.Random,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Multi-resolution noise (kohya's ``pyramid_noise_like``): noise drawn at sizes shrinking by a random
    factor of 2–4 per iteration, upsampled (bilinear) and added with weight discount**i, until a side
    reaches 1; then scaled back to unit standard deviation (over the whole batch, as kohya)."""
    b, c, h, w = noise.shape
    for i in range(int(iterations)):
        r = rng.random() * 2 + 2
        hn, wn = max(1, int(h / (r ** i))), max(1, int(w / (r ** i)))
        coarse = torch.randn((b, c, hn, wn), generator=generator, device=noise.device, dtype=noise.dtype)
        noise = noise + F.interpolate(coarse, size=(h, w), mode="bilinear") * discount ** i
        if hn == 1 or wn == 1:
            break
    return noise / noise.std()


def perturbed(noise: torch.Tensor, gamma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Input perturbation (Ning et al. 2023, kohya's ``ip_noise_gamma``): the noise that goes into the
    noised latents, noise + γ·ε'; the target keeps the plain noise."""
    extra = torch.randn(noise.shape, generator=generator, device=noise.device, dtype=noise.dtype)
    return noise + gamma * extra


def zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """The ᾱ of a schedule rescaled to zero terminal SNR (Lin et al. 2023, Algorithm 1), computed as
    kohya's ``fix_noise_scheduler_betas_for_zero_terminal_snr`` does: sqrt(ᾱ) shifted so that its last
    value is 0 and scaled so that its first is kept, back to betas, then ᾱ again. The last ᾱ is 0."""
    alphas_bar_sqrt = (1 - betas.float()).cumprod(0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    return torch.cumprod(1.0 - (1 - alphas), dim=0)


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


def debiased_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, v_prediction: bool) -> torch.Tensor:
    """Debiased estimation loss weights (Yu et al. 2023), as kohya's ``apply_debiased_estimation``:
    1/sqrt(SNR) for ε, 1/(SNR+1) for v-prediction, the SNR capped at 1000."""
    s = torch.clamp(snr(alphas_cumprod, timesteps).float(), max=SNR_CAP)
    return 1 / (s + 1) if v_prediction else 1 / torch.sqrt(s)
