"""Everything a run needs, built in order: config → dataset → model → LoRA → optimizer.

Each stage fails with a ``TrainerError`` that names the file or setting at fault,
before any training step runs.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..config.schema import TrainConfig
from ..config.validation import validate
from ..config.steps import StepPlan, plan_items, scan_and_plan
from ..data.dataset import TrainItem, unreadable_images, without_images
from ..data.folders import DatasetScan
from ..data.masks import mask_set
from ..errors import DatasetError
from ..io.disk import check_writable
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .checkpointing import checkpoint_unet_blocks, text_encoder_checkpointing
from .compile import compiles_unet
from .graphs import dropout_active, torch_older_than
from .optimizers import require_optimizer
from .precision import WEIGHT_DTYPES, make_accelerator, prepare_model
from .setup_clock import SetupClock, collection_paused
from .state import refuse_other_process_count, saved_processes
from .step import StepModels


@dataclass
class Run:
    cfg: TrainConfig
    accelerator: object
    base: object                       # models.loading.BaseModel
    network: object                    # lora.network.LoraNetwork
    optimizer: torch.optim.Optimizer
    scheduler: object
    scan: DatasetScan
    items: list[TrainItem]
    plan: StepPlan
    step_models: StepModels
    latent_cache: Optional[object]
    encode: object                     # pixels → scaled latents (used when latents are not cached)
    warnings: list[str]
    caption_rng: random.Random
    noise_generator: torch.Generator
    started_at: float = field(default_factory=time.time)
    validation: Optional[object] = None  # live_validation.LiveValidation when the validation loss is on
    masks: Optional[object] = None       # data.masks.MaskSet with alpha_mask / masked_loss
    clock: Optional[SetupClock] = None   # the setup's phase times, logged before the first step

    @property
    def device(self) -> torch.device:
        return self.accelerator.device


def use_expandable_segments() -> bool:
    """Let PyTorch's allocator grow memory segments in place instead of caching fixed blocks:
    the same allocations then reserve less (0.4–1 GB less at SDXL batch 1 with checkpointing).
    Left alone when the user set ``PYTORCH_CUDA_ALLOC_CONF``."""
    if not torch.cuda.is_available() or "PYTORCH_CUDA_ALLOC_CONF" in os.environ or torch_older_than(2, 4):
        return False
    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None)
    if setter is None:
        setter = getattr(torch.cuda.memory, "_set_allocator_settings", None)
    if setter is None:
        return False
    try:
        setter("expandable_segments:True")
    except (RuntimeError, ValueError):
        return False
    return True


def _encode_fn(vae, device, dtype, generator: torch.Generator):
    scaling = float(vae.config.scaling_factor)

    @torch.no_grad()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        dist = vae.encode(pixels.to(device, dtype)).latent_dist
        noise = torch.randn(dist.mean.shape, generator=generator, device=generator.device).to(dist.mean)
        return ((dist.mean + dist.std * noise) * scaling).float()
    return encode


def place_vae(cfg: TrainConfig, base, device) -> torch.dtype:
    """The VAE on the training device (fp32 unless bf16); returns its dtype."""
    vae_dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float32
    base.place(base.vae, device, vae_dtype)
    base.vae.requires_grad_(False).eval()
    return vae_dtype


def place_models(cfg: TrainConfig, base, device, *, vae: bool = True) -> torch.dtype:
    """Frozen base on the training device (the VAE too unless ``vae`` is false); returns the VAE dtype.
    With ``fp8_base`` the UNet (and the text encoders when they are not trained) go there in fp8."""
    vae_dtype = place_vae(cfg, base, device) if vae else (torch.bfloat16 if cfg.mixed_precision == "bf16"
                                                           else torch.float32)
    dtype = WEIGHT_DTYPES[cfg.mixed_precision]
    if cfg.fp8_base:
        from .fp8 import store_in_fp8, to_device_keeping_fp8

        frozen = [base.unet] + ([] if cfg.train_text_encoder else list(base.text_encoders))
        for model in [base.unet, *base.text_encoders]:
            model.requires_grad_(False)
            if model in frozen:
                base.place(model, "cpu", dtype)   # on the CPU: the device never holds the wider copy
                store_in_fp8(model, dtype)
                to_device_keeping_fp8(model, device, dtype)
            else:
                base.place(model, device, dtype)
        for te in base.text_encoders:
            te.eval()
    else:
        base.place(base.unet, device, dtype)
        base.unet.requires_grad_(False)
        for te in base.text_encoders:
            base.place(te, device, dtype)
            te.requires_grad_(False).eval()
    if cfg.gradient_checkpointing:   # the UNet's blocks: attach_training
        if cfg.train_text_encoder:
            for te in base.text_encoders:
                text_encoder_checkpointing(te, keep_rng=dropout_active(cfg))
    return vae_dtype


def release_cached_memory(device) -> None:
    """Give the allocator's cached blocks back after a phase (latent caching, prompt caching): the
    next phase's tensors then do not fill the holes the last one left, and the training step
    starts from the memory it needs."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def attach_training(cfg: TrainConfig, base, accelerator, total_steps: int, clock: Optional[SetupClock] = None):
    """LoRA network, optimizer, LR schedule and the step's models, ready for ``compute_loss``.

    Shared by ``train`` and ``bench`` so that both time the same step."""
    clock = clock or SetupClock()
    from ..config.optimizer_fields import field_kwargs
    from .network_setup import build_run_network
    from .flat_params import flat_groups, flattens
    from .optimizers import build_optimizer
    from .schedulers import build_scheduler

    device = accelerator.device
    network, block_weight = build_run_network(cfg, base)
    if cfg.train_unet:
        base.unet.train()
    if cfg.train_text_encoder:
        for te in base.text_encoders:
            te.train()
    for p in network.parameters():
        p.data = p.data.to(device)
    network.use_compute_dtype(WEIGHT_DTYPES[cfg.mixed_precision])
    compiled = compiles_unet(cfg, device)
    if compiled:
        from .compile import compile_unet_blocks
        compile_unet_blocks(base.unet)
    else:
        from .geglu import use_lean_geglu
        from .unit_scales import use_unit_scale_blocks
        use_lean_geglu(base.unet)
        use_unit_scale_blocks(base.unet)
    if cfg.gradient_checkpointing:   # as the eager step runs it (the captured step's: train/loop, graphed_step)
        checkpoint_unet_blocks(base.unet, keep_rng=dropout_active(cfg), wrap_blocks=not compiled,
                               reentrant=accelerator.num_processes == 1 and not compiled)
    clock.lap("network")

    groups = network.param_groups(cfg.effective_unet_lr, cfg.effective_text_encoder_lr, block_weight)
    if flattens(cfg.optimizer_type, accelerator.num_processes):
        groups = flat_groups(groups)
    optimizer = build_optimizer(cfg.optimizer_type, groups, cfg.learning_rate, cfg.optimizer_args,
                                field_kwargs(cfg))
    scheduler_name = cfg.lr_scheduler
    if scheduler_name == "constant" and cfg.lr_warmup_steps:
        scheduler_name = "constant_with_warmup"
    scheduler = build_scheduler(scheduler_name, optimizer, total_steps, cfg.lr_warmup_steps,
                                cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)

    unet = base.unet
    text_encoders = list(base.text_encoders)
    if cfg.train_unet:
        unet = prepare_model(accelerator, unet)
    optimizer = accelerator.prepare(optimizer)
    if cfg.train_text_encoder:
        text_encoders = [prepare_model(accelerator, te) for te in text_encoders]

    scheduler_cfg = base.noise_scheduler.config
    alphas_cumprod = base.noise_scheduler.alphas_cumprod.to(device, torch.float32)
    step_models = StepModels(
        family=base.family, unet=unet, text_encoders=text_encoders, tokenizers=base.tokenizers,
        alphas_cumprod=alphas_cumprod, num_train_timesteps=int(scheduler_cfg.num_train_timesteps),
        v_prediction=base.v_prediction, train_text_encoder=cfg.train_text_encoder, clip_skip=cfg.clip_skip,
        min_snr_gamma=cfg.min_snr_gamma, noise_offset=cfg.noise_offset,
        prompt_cache={} if captions_are_fixed(cfg) else None, compute_dtype=WEIGHT_DTYPES[cfg.mixed_precision],
        max_token_length=cfg.max_token_length, multires_noise_iterations=cfg.multires_noise_iterations,
        multires_noise_discount=cfg.multires_noise_discount, ip_noise_gamma=cfg.ip_noise_gamma,
        debiased_estimation=cfg.debiased_estimation_loss)
    if cfg.zero_terminal_snr:   # the SNR weights keep the schedule's own ᾱ, as kohya's do
        from .noise import zero_terminal_snr
        step_models.snr_alphas_cumprod = alphas_cumprod
        step_models.alphas_cumprod = zero_terminal_snr(base.noise_scheduler.betas).to(device, torch.float32)
    clock.lap("optimizer")
    return network, optimizer, scheduler, step_models


def captions_are_fixed(cfg: TrainConfig) -> bool:
    """Frozen text encoders and captions that never change: their outputs can be cached."""
    return not cfg.train_text_encoder and not cfg.shuffle_caption and not cfg.caption_dropout_rate \
        and not cfg.caption_tag_dropout_rate


PROMPT_CHUNK = 16   # captions encoded together while caching: ~0.15 GB for SDXL at 77 tokens, three times at 225


def cache_prompts(step_models: StepModels, captions: list[str]) -> None:
    """Encode every caption once, ``PROMPT_CHUNK`` at a time (one pass of the encoders each rather than one per
    caption: at a training batch of 1 that was a pass per image), then move the text encoders off the
    training device."""
    from .conditioning import encode_cached

    device = step_models.alphas_cumprod.device
    unique = list(dict.fromkeys(captions))
    for start in range(0, len(unique), PROMPT_CHUNK):
        encode_cached(step_models.prompt_cache, step_models.family, step_models.text_encoders,
                      step_models.tokenizers, unique[start:start + PROMPT_CHUNK], step_models.clip_skip, device,
                      step_models.max_token_length)
    for te in step_models.text_encoders:
        te.to("cpu")


def _quiet(*_args, **_kwargs) -> None:
    pass


def _drop_unreadable(cfg: TrainConfig, scan, items: list, plan: StepPlan, failed: dict, warnings: list[str],
                     num_processes: int) -> tuple[list, StepPlan]:
    """Images that could not be decoded leave the run, each with a warning, and the steps are counted again."""
    if not failed:
        return items, plan
    warnings += [sentence("train.skipped", path=path, why=why) for path, why in failed.items()]
    items = without_images(scan, items, failed)
    if not any(not it.is_reg for it in items):
        raise DatasetError(msg("train.none_readable", folder=cfg.train_data_dir), msg("train.none_readable.advice"))
    return items, plan_items(cfg, scan, items, num_processes)


def prepare_run(cfg: TrainConfig, *, log=print) -> Run:
    """The run's data, models, network and optimizer, up to the first step (``Run``)."""
    with collection_paused():
        return _prepare_run(cfg, log)


def _prepare_run(cfg: TrainConfig, log) -> Run:
    from ..models.loading import load_base_model
    from ..models.prefetch import read_ahead

    clock = SetupClock()
    warnings = validate(cfg)
    # before anything expensive: the folders the run writes into can be written
    check_writable(cfg.output_dir, "output_dir")
    check_writable(cfg.effective_logging_dir, "logging_dir" if cfg.logging_dir else "output_dir")
    accelerator = make_accelerator(cfg)
    clock.device = accelerator.device
    # the model's files read from disk while the dataset is scanned (from the CLI: since the settings were checked)
    reading = read_ahead(cfg.pretrained_model_name_or_path) if accelerator.is_local_main_process else None
    if not accelerator.is_main_process:
        log = _quiet
    if cfg.resume:   # before the model loads: a state resumes with the process count that saved it
        saved = saved_processes(cfg.resume)
        if saved is not None:
            refuse_other_process_count(cfg.resume, saved, accelerator.num_processes)
    scan, items, plan = scan_and_plan(cfg, accelerator.num_processes)
    warnings += list(scan.warnings) + [sentence("train.skipped", path=p, why=why) for p, why in scan.skipped]
    if not cfg.cache_latents:   # each image is decoded now, so that the step maths count only what trains
        log(sentence("train.log.reading", count=len(items)))
        items, plan = _drop_unreadable(cfg, scan, items, plan, unreadable_images(items), warnings,
                                       accelerator.num_processes)
    if plan.total_steps <= 0:
        raise DatasetError(msg("train.no_steps", folder=cfg.train_data_dir), msg("train.no_steps.advice"))

    device = accelerator.device
    if device.type == "cuda":
        use_expandable_segments()
    masks = mask_set(cfg, items)   # before the model loads: a missing mask stops the run at once
    require_optimizer(cfg.optimizer_type)   # and so does a missing optimizer package
    warnings += masks.notes if masks is not None else []
    clock.lap("dataset")
    if reading is not None:   # the load then finds every page cached: no second reader seeking on the disk
        reading.join()
    # the weights are cast when they reach the device (place_vae, place_models), not on the CPU here
    base = load_base_model(cfg.pretrained_model_name_or_path, dtype=WEIGHT_DTYPES[cfg.mixed_precision],
                           v_parameterization=cfg.v_parameterization, cast_later=True)
    clock.lap("load")
    torch.manual_seed(cfg.seed)
    # one phase at a time on the device: the VAE alone while it encodes (its activations at 1024²
    # take GBs), then the UNet and text encoders; the text encoders leave once the prompts are cached
    vae_dtype = place_vae(cfg, base, device)
    clock.lap("to_device")

    validation = None
    if accelerator.is_main_process:
        from .live_validation import prepare_validation
        validation = prepare_validation(cfg, scan, items, base.vae, device, vae_dtype,
                                        int(base.noise_scheduler.config.num_train_timesteps), log=log)
        clock.lap("validation")

    # latents: cached once (memory or disk) or encoded every step
    cache_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    encode = _encode_fn(base.vae, device, vae_dtype, cache_gen)
    latent_cache = None
    if cfg.cache_latents and cfg.latents_cacheable:
        from ..data.latent_cache import LatentCache
        mode = "disk" if cfg.cache_latents_to_disk else "memory"
        settings_key = f"{base.model_name}|{base.family}|vae={vae_dtype}|scale={base.vae.config.scaling_factor}"
        latent_cache = LatentCache(encode, mode=mode,
                                   cache_dir=os.path.join(cfg.output_dir, ".cache", "latents"),
                                   settings_key=settings_key, flip=cfg.flip_aug, masks=masks)
        log(sentence("train.log.caching_disk" if mode == "disk" else "train.log.caching_memory", count=len(items)))
        if mode == "disk" and accelerator.num_processes > 1:
            with accelerator.main_process_first():   # the others read the files the main process wrote
                latent_cache.prepare(items, cfg.train_batch_size)
        else:
            latent_cache.prepare(items, cfg.train_batch_size)
        items, plan = _drop_unreadable(cfg, scan, items, plan, latent_cache.failed, warnings,
                                       accelerator.num_processes)
        base.vae.to("cpu")  # no longer needed on the training device
        release_cached_memory(device)
        clock.lap("latents")
    warnings += option_notes(cfg, base, items)   # of the images that train
    place_models(cfg, base, device, vae=latent_cache is None)
    clock.lap("to_device")

    network, optimizer, scheduler, step_models = attach_training(cfg, base, accelerator, plan.total_steps, clock)
    warnings += network.notes
    if step_models.prompt_cache is not None:
        from ..data.captions import process_caption
        fixed = [process_caption(it.image.caption, shuffle_caption=False, keep_tokens=cfg.keep_tokens,
                                 caption_dropout_rate=0.0, rng=random.Random(0)) for it in items]
        cache_prompts(step_models, fixed + (validation.captions if validation else []))
        release_cached_memory(device)
        clock.lap("prompts")
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + accelerator.process_index)
    caption_rng = random.Random(cfg.seed + accelerator.process_index)
    step_models.host_rng = caption_rng   # multires noise's scales: saved and restored with the state
    warnings += plan.notes
    return Run(cfg=cfg, accelerator=accelerator, base=base, network=network, optimizer=optimizer,
               scheduler=scheduler, scan=scan, items=items, plan=plan, step_models=step_models,
               latent_cache=latent_cache, encode=encode, warnings=warnings, caption_rng=caption_rng,
               noise_generator=noise_gen, validation=validation, masks=masks, clock=clock)


def option_notes(cfg: TrainConfig, base, items: list[TrainItem]) -> list[str]:
    """What the run says before training about its captions' length and the noise schedule."""
    from .tokens import long_caption_warning

    notes = []
    captions = {str(it.image.path): (f"{it.concept.path.name}/{it.image.path.name}", it.image.caption)
                for it in items}
    cut = long_caption_warning(base.tokenizers[0], list(captions.values()), cfg.max_token_length,
                               shuffled=cfg.shuffle_caption)
    if cut:
        notes.append(cut)
    if cfg.zero_terminal_snr and not base.v_prediction:
        notes.append(sentence("train.zero_snr_eps"))
    return notes
