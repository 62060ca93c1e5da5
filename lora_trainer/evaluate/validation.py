"""Deterministic validation loss of saved LoRA files: a second loss curve, per epoch.

The training loss of a step depends on its random timestep and noise, so it cannot compare
two epochs. Here every file is scored on the same images with the same fixed timesteps and
the same noise (seeded per image), so the numbers differ only because the weights do. On
held-out images a validation loss that rises while the training loss falls marks
over-fitting; on training images it shows how closely each epoch reproduces them.

A file is applied as forward hooks adding ``multiplier · alpha/rank · up(down(x))`` to each
layer it names: the base model is never modified (no weight backup in memory), and any
kohya-format file applies, not only ours. The loss is plain MSE (no min-SNR or prior
weighting), so runs trained with different settings compare.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import TrainerError
from ..lora.kohya_format import KEY_RE, module_key, sdxl_unet_namer
from ..train import noise as noise_math
from ..train.conditioning import encode_cached, encode_prompts, sdxl_time_ids
from ..train.step import StepModels

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


# --- which images ------------------------------------------------------------------------------------

def _spread(seq: list, count: int) -> list:
    """``count`` elements evenly spread over ``seq`` (deterministic)."""
    if len(seq) <= count:
        return list(seq)
    return [seq[round(i * (len(seq) - 1) / (count - 1))] for i in range(count)] if count > 1 else [seq[0]]


def items_from_training(cfg, max_images: int = DEFAULT_MAX_IMAGES) -> list[ValidationItem]:
    """Up to ``max_images`` training images of ``cfg`` (evenly picked), at their training buckets."""
    from ..steps import scan_and_plan

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
    from ..steps import scan_and_plan

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
        raise TrainerError(f"the held-out folder {folder} does not exist",
                           "choose a folder with a few images that were NOT used for training")
    paths = sorted(p for p in os.listdir(folder) if is_image_file(os.path.join(folder, p)))
    if not paths:
        raise TrainerError(f"no images in the held-out folder {folder}",
                           "put a few PNG/JPEG images (with .txt captions) into it")
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
        raise TrainerError("no images to compute a validation loss on",
                           "add training images, or choose a held-out folder with images")
    steps = tuple(int(t) for t in timesteps)
    if any(not 0 <= t < num_train_timesteps for t in steps):
        raise TrainerError(f"validation timesteps {steps} must lie in 0…{num_train_timesteps - 1}",
                           "leave the timesteps at their default")
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


# --- a LoRA file as hooks --------------------------------------------------------------------------------

def module_table(family: str, unet, text_encoders: Sequence, unet_config=None) -> dict[str, torch.nn.Module]:
    """kohya module key → layer, for every Linear/Conv2d of the UNet and text encoders (our save naming)."""
    table: dict[str, torch.nn.Module] = {}
    namer = sdxl_unet_namer(unet_config if unet_config is not None else unet.config) if family == "sdxl" else None
    for name, module in unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            table[module_key("lora_unet", name, namer)] = module
    prefixes = ["lora_te1", "lora_te2"] if family == "sdxl" else ["lora_te"]
    for prefix, te in zip(prefixes, text_encoders):
        for name, module in te.named_modules():
            if isinstance(module, torch.nn.Linear):
                table[module_key(prefix, name)] = module
    return table


def read_lora_modules(path: str) -> dict[str, dict[str, torch.Tensor]]:
    """{module key: {"down", "up", "alpha"}} of a kohya-format file (``safe_open``: never a pickle)."""
    from safetensors import safe_open

    modules: dict[str, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(path, framework="pt") as fh:
            for key in fh.keys():
                match = KEY_RE.match(key)
                if not match:
                    continue
                part = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}[match.group(3)]
                modules.setdefault(f"{match.group(1)}_{match.group(2)}", {})[part] = fh.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types
        raise TrainerError(f"{path} is not a readable .safetensors file ({err})",
                           "the file may be incomplete; use another epoch") from None
    return {k: v for k, v in modules.items() if "down" in v and "up" in v}


def _hook(down: torch.Tensor, up: torch.Tensor, scale: float, conv: dict | None):
    def hook(module, inputs, output):
        x = inputs[0]
        d, u = down.to(x.device, x.dtype), up.to(x.device, x.dtype)
        if conv is None:
            delta = F.linear(F.linear(x, d), u)
        else:
            delta = F.conv2d(F.conv2d(x, d, **conv), u)
        return output + scale * delta
    return hook


@contextlib.contextmanager
def lora_applied(table: dict[str, torch.nn.Module], path: str, multiplier: float = 1.0) -> Iterator[int]:
    """Apply the file at ``path`` while inside; yields the number of its modules the model lacks."""
    modules = read_lora_modules(path)
    matched = [k for k in modules if k in table]
    if modules and not matched:
        raise TrainerError(f"{os.path.basename(path)} does not fit this base model (none of its "
                           f"{len(modules)} layers exist in it)",
                           "choose the base model the LoRA was trained on (SD1 / SD2 / SDXL must match)")
    handles = []
    try:
        for key in matched:
            layer, parts = table[key], modules[key]
            down, up = parts["down"].float(), parts["up"].float()
            rank = down.shape[0]
            alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
            conv = None
            if isinstance(layer, torch.nn.Conv2d):
                conv = {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}
            elif down.dim() == 4:
                down, up = down.flatten(1), up.flatten(1)
            handles.append(layer.register_forward_hook(_hook(down, up, multiplier * alpha / rank, conv)))
        yield len(modules) - len(matched)
    finally:
        for handle in handles:
            handle.remove()


# --- the loss ---------------------------------------------------------------------------------------------

def step_models_for(base, device, clip_skip: int | None = None) -> StepModels:
    """The step code's model bundle for a loaded base model (no LoRA training, no caches)."""
    return StepModels(family=base.family, unet=base.unet, text_encoders=list(base.text_encoders),
                      tokenizers=base.tokenizers,
                      alphas_cumprod=base.noise_scheduler.alphas_cumprod.to(device, torch.float32),
                      num_train_timesteps=int(base.noise_scheduler.config.num_train_timesteps),
                      v_prediction=base.v_prediction, train_text_encoder=False, clip_skip=clip_skip,
                      min_snr_gamma=None, noise_offset=None)


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
                                    m.clip_skip, device)
        else:
            encoded = encode_prompts(m.family, m.text_encoders, m.tokenizers, captions, m.clip_skip, device)
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
    models = step_models_for(base, device, cfg.clip_skip)
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
