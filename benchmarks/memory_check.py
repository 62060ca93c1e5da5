"""``bench --memory-preset NAME``: train a few steps of a VRAM preset with PyTorch's allocator capped at the
preset's memory, and say whether it fits."""
from __future__ import annotations

import torch

from benchmarks.bench import CONTEXT_GIB, MODELS, BenchResult, _Session, _versions


def run_memory_check(preset: str, steps: int = 4, warmup: int = 5) -> BenchResult:
    """Train ``steps`` steps of a VRAM preset (SDXL or SD1.5, native resolution) with PyTorch's
    allocator capped at the preset's memory less ``CONTEXT_GIB``; ``fits`` says whether it ran."""
    import importlib.util

    from lora_trainer.config.presets import apply_preset, get_preset
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train.graphs import graph_blockers
    from lora_trainer.train.setup import cache_prompts

    if not torch.cuda.is_available():
        raise SystemExit("bench needs a CUDA GPU")
    p = get_preset(preset)
    model = "sdxl" if p.family == "sdxl" else "sd15"
    resolution = MODELS[model][2]
    cfg = apply_preset(TrainConfig(mixed_precision="bf16", lr_scheduler="constant", resolution=str(resolution)),
                       preset)
    notes = []
    if "8bit" in cfg.optimizer_type.lower() and importlib.util.find_spec("bitsandbytes") is None:
        notes.append(f"{cfg.optimizer_type} replaced by AdamW (bitsandbytes is not installed; "
                     "8-bit states would need less memory)")
        cfg = cfg.replace(optimizer_type="AdamW", cuda_graphs=False)  # as the 8-bit optimizer would run
    cap_gib = p.vram_gb - CONTEXT_GIB
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_gib * 2**30 / total)
    batch = cfg.train_batch_size
    fits, sec, loss, phase = True, None, None, "setup"
    try:
        s = _Session(cfg, model, batch, resolution, warmup + steps + 2)
        if s.models.prompt_cache is not None:
            cache_prompts(s.models, s.data.captions)
        notes.append(f"setup peak {torch.cuda.max_memory_allocated() / 1e9:.2f} GB allocated")
        phase = "training"
        if cfg.cuda_graphs and not graph_blockers(cfg, s.accelerator, s.optimizer):
            if cfg.gradient_checkpointing:   # as ``train`` does: the captured step's checkpointing
                from lora_trainer.train.checkpointing import checkpoint_unet_blocks
                checkpoint_unet_blocks(s.base.unet, keep_attention=cfg.train_unet,
                                       lora_rank=cfg.network_dim if cfg.train_unet else None)
            s.use_graphs(True)  # as ``train`` does
        notes.append(f"optimizer {cfg.optimizer_type}, rank {cfg.network_dim}, "
                     f"{'UNet only' if not cfg.train_text_encoder else 'UNet + text encoders'}, "
                     f"CUDA graphs {'on' if s.graphed is not None else 'off'}")
        for _ in range(warmup):
            s.step()
        sec, losses = s.timed(steps)
        loss = float(losses[-1])
    except torch.cuda.OutOfMemoryError as err:
        fits = False
        notes.append(f"out of memory during {phase}: {str(err).splitlines()[0][:200]}")
    return BenchResult(
        model=model, batch=batch, resolution=resolution, gradient_checkpointing=cfg.gradient_checkpointing,
        rank=cfg.network_dim, steps=steps, variant="memory-check", ms_per_step=sec * 1e3 if sec else None,
        it_per_s=1 / sec if sec else None, images_per_s=batch / sec if sec else None, tflop_per_step=None,
        achieved_tflops=None, mfu=None, peak_allocated_gb=torch.cuda.max_memory_allocated() / 1e9,
        peak_reserved_gb=torch.cuda.max_memory_reserved() / 1e9, final_loss=loss, baseline_ms_per_step=None,
        baseline_peak_reserved_gb=None, speedup=None, memory_preset=preset, memory_cap_gb=cap_gib * 2**30 / 1e9,
        fits=fits, notes=notes, **_versions())
