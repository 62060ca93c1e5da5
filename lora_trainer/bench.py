"""``python -m lora_trainer bench``: time the real training step on full-size models.

The UNet and text encoders are built from the shipped SD1.5/SDXL configs with random
weights (nothing is downloaded); latents are synthetic, as if cached. The step is the
one ``train`` runs (``attach_training`` + ``compute_loss`` + ``apply_update``), timed
between two device synchronisations with no host sync inside.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch

MODELS = {"sd15": ("sd1", "sd15", 512), "sdxl": ("sdxl", "sdxl", 1024)}
# dense bf16 tensor-core peak per device, for MFU
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12}


@dataclass
class BenchResult:
    model: str
    batch: int
    resolution: int
    gradient_checkpointing: bool
    rank: int
    steps: int
    ms_per_step: float
    it_per_s: float
    images_per_s: float
    tflop_per_step: Optional[float]
    achieved_tflops: Optional[float]
    mfu: Optional[float]
    peak_allocated_gb: Optional[float]
    peak_reserved_gb: Optional[float]
    final_loss: float
    baseline_ms_per_step: Optional[float]
    baseline_peak_reserved_gb: Optional[float]
    speedup: Optional[float]
    device: str
    torch: str
    diffusers: str
    peft: str
    date: str


def build_random_base(model: str, device, dtype):
    """A BaseModel of the real architecture with random weights, built on ``device``."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .models.loading import BaseModel
    from .models.tiny import SHIPPED_CONFIGS
    from .models.tokenizers import load_clip_tokenizers

    family, folder, _ = MODELS[model]
    root = SHIPPED_CONFIGS / folder
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(root / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(root / "vae")))
        encoders = [CLIPTextModel(CLIPTextConfig.from_json_file(str(root / "text_encoder" / "config.json")))]
        if family == "sdxl":
            encoders.append(CLIPTextModelWithProjection(
                CLIPTextConfig.from_json_file(str(root / "text_encoder_2" / "config.json"))))
    for m in (unet, vae, *encoders):
        m.to(dtype)
    scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(str(root / "scheduler")))
    return BaseModel(family=family, unet=unet, vae=vae, text_encoders=encoders,
                     tokenizers=load_clip_tokenizers(family), noise_scheduler=scheduler, v_prediction=False,
                     source_path=str(root), model_name=f"random-{model}")


def run_bench(model: str = "sd15", batch: int = 1, resolution: Optional[int] = None,
              gradient_checkpointing: bool = False, steps: int = 20, warmup: int = 5, rank: int = 32,
              count_flops: bool = True, baseline: bool = True, profile: Optional[str] = None) -> BenchResult:
    from .config import TrainConfig
    from .train.setup import attach_training, cache_prompts, make_accelerator, place_models
    from .train.step import Batch, apply_update, compute_loss

    if not torch.cuda.is_available():
        raise SystemExit("bench needs a CUDA GPU")
    family, _, default_res = MODELS[model]
    resolution = resolution or default_res
    cfg = TrainConfig(network_dim=rank, network_alpha=rank, mixed_precision="bf16", train_batch_size=batch,
                      gradient_checkpointing=gradient_checkpointing, network_train_unet_only=True,
                      optimizer_type="AdamW", lr_scheduler="constant", max_grad_norm=1.0,
                      resolution=str(resolution), cache_latents=True)
    accelerator = make_accelerator(cfg)
    device = accelerator.device
    torch.manual_seed(0)
    base = build_random_base(model, device, torch.bfloat16)
    place_models(cfg, base, device)
    network, optimizer, scheduler, models = attach_training(cfg, base, accelerator, warmup + steps + 1)
    params = network.optimizer_parameters()
    side = resolution // 8
    data = Batch(latents=torch.randn(batch, 4, side, side, device=device), captions=["a photo of zkz"] * batch,
                 loss_weights=torch.ones(batch, device=device), original_sizes=[(resolution, resolution)] * batch,
                 crops=[(0, 0)] * batch, target_sizes=[(resolution, resolution)] * batch)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> torch.Tensor:
        loss = compute_loss(models, data, generator)
        accelerator.backward(loss)
        apply_update(accelerator, optimizer, scheduler, network, params, cfg.max_grad_norm, None)
        return loss.detach()

    def timed(n: int, sync_every_step: bool) -> tuple[float, torch.Tensor]:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        losses = []
        start = time.perf_counter()
        for _ in range(n):
            loss = step()
            if sync_every_step:
                loss.item()  # what a loop that logs every step's loss does
            losses.append(loss)
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / n, torch.stack(losses)

    base_sec = base_reserved = None
    if baseline:
        # the plain step: peft's own LoRA forward on fp32 LoRA weights under autocast, the text
        # encoders run every step, a host sync per step
        network.set_lean_forward(False)
        network.set_compute_dtype(torch.float32)
        cache, models.prompt_cache = models.prompt_cache, None
        for _ in range(max(1, warmup)):
            step()
        base_sec, _ = timed(steps, sync_every_step=True)
        base_reserved = torch.cuda.max_memory_reserved() / 1e9
        network.set_lean_forward(True)
        network.set_compute_dtype(torch.bfloat16)
        models.prompt_cache = cache

    if models.prompt_cache is not None:
        cache_prompts(models, data.captions, batch)
    torch.cuda.empty_cache()
    flops = None
    for i in range(max(1, warmup)):
        if i == 0 and count_flops:
            from torch.utils.flop_counter import FlopCounterMode
            with FlopCounterMode(display=False) as counter:
                step()
            flops = counter.get_total_flops()
        else:
            step()
    sec, losses = timed(steps, sync_every_step=False)
    final_loss = float(losses[-1])
    if profile:
        write_profile(step, profile)

    import diffusers
    import peft
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    achieved = flops / sec if flops else None
    return BenchResult(
        model=model, batch=batch, resolution=resolution, gradient_checkpointing=gradient_checkpointing, rank=rank,
        steps=steps, ms_per_step=sec * 1e3, it_per_s=1 / sec, images_per_s=batch / sec,
        tflop_per_step=flops / 1e12 if flops else None, achieved_tflops=achieved / 1e12 if achieved else None,
        mfu=achieved / peak if achieved and peak else None,
        peak_allocated_gb=torch.cuda.max_memory_allocated() / 1e9,
        peak_reserved_gb=torch.cuda.max_memory_reserved() / 1e9, final_loss=final_loss,
        baseline_ms_per_step=base_sec * 1e3 if base_sec else None, baseline_peak_reserved_gb=base_reserved,
        speedup=base_sec / sec if base_sec else None,
        device=f"{name} ({platform.node()})", torch=torch.__version__, diffusers=diffusers.__version__,
        peft=peft.__version__, date=time.strftime("%Y-%m-%d"))


def format_result(r: BenchResult) -> str:
    parts = [f"{r.model} {r.resolution}² batch {r.batch}{' +GC' if r.gradient_checkpointing else ''} rank {r.rank}:",
             f"{r.ms_per_step:.1f} ms/step", f"{r.it_per_s:.2f} it/s", f"{r.images_per_s:.2f} images/s"]
    if r.tflop_per_step:
        parts.append(f"{r.tflop_per_step:.2f} TFLOP/step, {r.achieved_tflops:.0f} TFLOP/s")
    if r.mfu:
        parts.append(f"MFU {100 * r.mfu:.1f}%")
    parts.append(f"peak {r.peak_allocated_gb:.2f} GB allocated / {r.peak_reserved_gb:.2f} GB reserved")
    if r.speedup:
        parts.append(f"baseline {r.baseline_ms_per_step:.1f} ms/step ({r.baseline_peak_reserved_gb:.2f} GB reserved): "
                     f"{r.speedup:.2f}× faster")
    return ", ".join(parts)


def write_profile(step, path: str, steps: int = 3) -> None:
    """torch.profiler summary of a few steps: the busiest kernels and the CPU-side cost."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"# {steps} steps\n## by CUDA time\n")
        fh.write(table.table(sort_by="cuda_time_total", row_limit=30))
        fh.write("\n## by CPU self time\n")
        fh.write(table.table(sort_by="self_cpu_time_total", row_limit=30))


def main(args) -> int:
    result = run_bench(args.model, args.batch, args.resolution, args.gradient_checkpointing, args.steps,
                       args.warmup, args.rank, baseline=not args.no_baseline, profile=args.profile)
    print(format_result(result))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(result)) + "\n")
    return 0
