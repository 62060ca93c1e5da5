"""The deterministic validation loss: fixed images, fixed timesteps, fixed noise per image.

The training loss of a step depends on its random timestep and noise, so it cannot compare two
epochs. Here a set of images is scored with the same fixed timesteps and the same noise (seeded
per image), so two numbers differ only because the weights do. On held-out images a validation
loss that rises while the training loss falls marks over-fitting; on training images it shows how
closely the network reproduces them. The loss is plain MSE (no min-SNR or prior weighting), so runs
trained with different settings compare.

The training loop scores its live network with it (``live_validation``) and the Evaluate tab
scores saved files (``evaluate.validation``): one measurement for both.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import TrainerError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from . import noise as noise_math
from .conditioning import encode_cached, encode_prompts, sdxl_time_ids
from .step import StepModels

DEFAULT_TIMESTEPS = (100, 300, 500, 700, 900)   # fixed, spread over the schedule (of 1000)
DEFAULT_MAX_IMAGES = 8


@dataclass
class ValidationItem:
    path: str
    caption: str
    bucket: tuple[int, int]          # (width, height) the image is scored at
    original_size: tuple[int, int]   # (height, width) before resizing (SDXL conditioning)
    crop: tuple[int, int]            # (top, left)


@dataclass
class ValidationSet:
    items: list[ValidationItem]
    latents: list[torch.Tensor]      # per item [C, h, w], CPU float32, scaled
    noise: list[torch.Tensor]        # per item [T, C, h, w], CPU float32
    timesteps: tuple[int, ...]
    source: str = "training"         # "training" | "holdout"


# --- which images ------------------------------------------------------------------------------------

def _spread(seq: list, count: int) -> list:
    """``count`` elements evenly spread over ``seq`` (deterministic)."""
    if len(seq) <= count:
        return list(seq)
    return [seq[round(i * (len(seq) - 1) / (count - 1))] for i in range(count)] if count > 1 else [seq[0]]


def items_from_training(cfg, max_images: int = DEFAULT_MAX_IMAGES) -> list[ValidationItem]:
    """Up to ``max_images`` training images of ``cfg`` (evenly picked), at their training buckets."""
    from ..config.steps import scan_and_plan

    _, items, _ = scan_and_plan(cfg)
    return items_from_training_items(items, cfg, max_images)


def items_from_training_items(items: Sequence, cfg, max_images: int = DEFAULT_MAX_IMAGES) -> list[ValidationItem]:
    """Up to ``max_images`` of the training ``items`` (``data.dataset.TrainItem``, regularization
    images left out), evenly picked, at their training buckets."""
    from ..data.captions import process_caption

    items = [it for it in items if not it.is_reg]
    out = []
    for it in _spread(items, max_images):
        caption = process_caption(it.image.caption, shuffle_caption=False, keep_tokens=cfg.keep_tokens,
                                  caption_dropout_rate=0.0, rng=random.Random(0))
        out.append(ValidationItem(str(it.image.path), caption, tuple(it.bucket), it.original_size, it.crop_top_left))
    return out


def items_from_entries(entries: Sequence, cfg) -> list[ValidationItem]:
    """``data.folders.ImageEntry`` objects (e.g. the images ``validation_split`` held out), each at
    the bucket training would give it."""
    from ..data.buckets import BucketSet, crop_conditioning
    from ..data.captions import process_caption

    size = cfg.resolution_wh
    buckets = BucketSet.build(size, cfg.min_bucket_reso, cfg.max_bucket_reso, cfg.bucket_reso_steps) \
        if cfg.enable_bucket else None
    out = []
    for entry in entries:
        bucket = buckets.assign(entry.width, entry.height, no_upscale=cfg.bucket_no_upscale) if buckets else size
        (top, left), original = crop_conditioning(entry.width, entry.height, bucket)
        caption = process_caption(entry.caption, shuffle_caption=False, keep_tokens=cfg.keep_tokens,
                                  caption_dropout_rate=0.0, rng=random.Random(0))
        out.append(ValidationItem(str(entry.path), caption, tuple(bucket), original, (top, left)))
    return out


def held_out_items(cfg) -> list[ValidationItem]:
    """The images ``cfg.validation_split`` keeps out of training (empty when it is 0)."""
    from ..config.steps import scan_and_plan

    if not cfg.validation_split:
        return []
    scan, _, _ = scan_and_plan(cfg)
    return items_from_entries(scan.held_out, cfg)


def items_from_folder(folder: str | os.PathLike, resolution: int | tuple[int, int] = 512, *,
                      caption_extension: str = ".txt", default_caption: str = "",
                      max_images: int = DEFAULT_MAX_IMAGES) -> list[ValidationItem]:
    """Held-out images: every image directly in ``folder`` (caption files beside them, else
    ``default_caption``, e.g. the trigger word), each at the bucket of its shape."""
    from ..data.buckets import BucketSet, as_size, crop_conditioning
    from ..data.captions import read_caption
    from ..data.images import image_size, is_image_file

    if not os.path.isdir(folder):
        raise TrainerError(msg("train.val.no_folder", folder=folder), msg("train.val.no_folder.advice"))
    paths = sorted(p for p in os.listdir(folder) if is_image_file(os.path.join(folder, p)))
    if not paths:
        raise TrainerError(msg("train.val.no_images", folder=folder), msg("train.val.no_images.advice"))
    size = as_size(resolution)
    buckets = BucketSet.build(size, max(64, min(256, min(size) // 2)), max(1024, max(size)), 64)
    out = []
    for name in _spread(paths, max_images):
        path = os.path.join(folder, name)
        width, height = image_size(path)
        bucket = buckets.assign(width, height)
        (top, left), original = crop_conditioning(width, height, bucket)
        caption = read_caption(path, caption_extension)
        out.append(ValidationItem(path, caption if caption else default_caption, bucket, original, (top, left)))
    return out


# --- the fixed set -------------------------------------------------------------------------------------

@torch.no_grad()
def build_validation_set(vae, items: Sequence[ValidationItem], *, seed: int = 0,
                         timesteps: Sequence[int] = DEFAULT_TIMESTEPS, num_train_timesteps: int = 1000,
                         device: torch.device | str = "cpu", source: str = "training",
                         vae_dtype: torch.dtype = torch.float32) -> ValidationSet:
    """Latents (the VAE's mean, no sampling) and per-image noise from ``seed``; the VAE runs in
    ``vae_dtype`` (fp32 by default: SDXL's VAE overflows in fp16) and keeps its dtype after."""
    from ..data.buckets import resize_to_bucket
    from ..data.images import load_image

    if not items:
        raise TrainerError(msg("train.val.nothing"), msg("train.val.nothing.advice"))
    steps = tuple(int(t) for t in timesteps)
    if any(not 0 <= t < num_train_timesteps for t in steps):
        raise TrainerError(msg("train.val.timesteps", steps=steps, last=num_train_timesteps - 1),
                           msg("train.val.timesteps.advice"))
    dtype = next(vae.parameters()).dtype
    vae.to(device, vae_dtype)
    latents, noise = [], []
    try:
        scaling = float(vae.config.scaling_factor)
        for index, item in enumerate(items):
            img, _, _ = resize_to_bucket(load_image(item.path), item.bucket)
            pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            pixels = pixels.view(img.size[1], img.size[0], 3).permute(2, 0, 1).float().div(127.5).sub(1.0)
            latent = vae.encode(pixels[None].to(device, vae_dtype)).latent_dist.mean[0].float().cpu() * scaling
            latents.append(latent)
            gen = torch.Generator("cpu").manual_seed(seed * 100_003 + index)
            noise.append(torch.randn((len(steps),) + tuple(latent.shape), generator=gen))
    finally:
        vae.to(dtype=dtype)
    return ValidationSet(list(items), latents, noise, steps, source)


# --- the loss ---------------------------------------------------------------------------------------------

def step_models_for(base, device, clip_skip: int | None = None, max_token_length: int = 75) -> StepModels:
    """The step code's model bundle for a loaded base model (no LoRA training, no caches)."""
    return StepModels(family=base.family, unet=base.unet, text_encoders=list(base.text_encoders),
                      tokenizers=base.tokenizers,
                      alphas_cumprod=base.noise_scheduler.alphas_cumprod.to(device, torch.float32),
                      num_train_timesteps=int(base.noise_scheduler.config.num_train_timesteps),
                      v_prediction=base.v_prediction, train_text_encoder=False, clip_skip=clip_skip,
                      min_snr_gamma=None, noise_offset=None, max_token_length=max_token_length)


@contextlib.contextmanager
def _eval_mode(models: Sequence[torch.nn.Module]):
    """Evaluation mode (no LoRA dropout) for the duration; the training flags are restored after."""
    flags = [(m, m.training) for m in models]
    for m, _ in flags:
        m.eval()
    try:
        yield
    finally:
        for m, was in flags:
            m.train(was)


@torch.no_grad()
def validation_loss(m: StepModels, vset: ValidationSet, *, batch_size: int | None = None,
                    eval_mode: bool = True) -> float:
    """Mean MSE over every (image, timestep) of ``vset`` with the models as they are now: a live
    training network (call from the loop) or a file applied with ``lora_applied``.

    The timesteps of an image run ``batch_size`` at a time (default: all at once); the training
    loop passes its batch size, which bounds the memory. Captions come from ``m.prompt_cache``
    when the text encoders are frozen and cached. ``eval_mode`` False leaves the modules' flags
    alone (only LoRA dropout depends on them)."""
    device = m.alphas_cumprod.device
    dtype = next(m.unet.parameters()).dtype
    total, count = 0.0, 0
    chunk = max(1, batch_size or len(vset.timesteps))
    with _eval_mode([m.unet, *m.text_encoders] if eval_mode else []):
        captions = list(dict.fromkeys(item.caption for item in vset.items))
        if m.prompt_cache is not None:
            encoded = encode_cached(m.prompt_cache, m.family, m.text_encoders, m.tokenizers, captions,
                                    m.clip_skip, device, m.max_token_length)
        else:
            encoded = encode_prompts(m.family, m.text_encoders, m.tokenizers, captions, m.clip_skip, device,
                                     m.max_token_length)
        row = {caption: i for i, caption in enumerate(captions)}
        all_t = torch.tensor(vset.timesteps, device=device, dtype=torch.long)
        for item, latent, noise in zip(vset.items, vset.latents, vset.noise):
            cond = {key: value[row[item.caption]][None] for key, value in encoded.items()}
            for start in range(0, len(all_t), chunk):
                t = all_t[start:start + chunk]
                lat = latent[None].to(device).expand(len(t), -1, -1, -1)
                eps = noise[start:start + chunk].to(device)
                noisy = noise_math.add_noise(m.alphas_cumprod, lat, eps, t)
                kwargs = {"encoder_hidden_states": cond["encoder_hidden_states"].expand(len(t), -1, -1).to(dtype)}
                if m.family == "sdxl":
                    size = (item.bucket[1], item.bucket[0])
                    time_ids = sdxl_time_ids([item.original_size], [item.crop], [size], device, dtype)
                    kwargs["added_cond_kwargs"] = {"text_embeds": cond["text_embeds"].expand(len(t), -1).to(dtype),
                                                   "time_ids": time_ids.expand(len(t), -1)}
                prediction = m.unet(noisy.to(dtype), t, **kwargs).sample
                target = noise_math.velocity(m.alphas_cumprod, lat, eps, t) if m.v_prediction else eps
                losses = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
                total += float(losses.sum())
                count += len(t)
    return total / count if count else math.nan
