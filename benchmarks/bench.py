"""``python -m lora_trainer bench``: time the real training step on full-size models.

The UNet and text encoders are built from the shipped SD1.5/SDXL configs with random
weights (nothing is downloaded); latents are synthetic, as if cached. The step is the
one ``train`` runs (``attach_training`` + ``compute_loss`` + ``apply_update``, or the
CUDA-graph step), timed between two device synchronisations with no host sync inside.

Variants are timed in one process on one model: ``eager``, ``graphs`` (CUDA graphs),
``compile`` (regional ``torch.compile``; combine as ``compile+graphs``), ``+cl``
(channels-last UNet), ``+autograd`` (LoRA Linears through autograd, not ``lora/fused_linear``) and ``+jitgeglu``
(GEGLU as one jitted kernel each way, ``train/geglu.FUSED_KERNELS``).
``--memory-preset NAME`` instead trains a few steps of a VRAM preset under
``torch.cuda.set_per_process_memory_fraction`` and says whether it fits.
``python -m lora_trainer.bench`` takes every option; the CLI's ``bench`` a subset.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch

from benchmarks.bench_args import add_arguments
from benchmarks.reports import write_memory_breakdown, write_profile
from lora_trainer.train import geglu

MODELS = {"sd15": ("sd1", "sd15", 512), "sdxl": ("sdxl", "sdxl", 1024)}
# dense bf16 tensor-core peak per device, for MFU
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12}
CONTEXT_GIB = 0.5  # CUDA context and libraries outside PyTorch's allocator, taken off a memory cap


@dataclass
class BenchResult:
    model: str
    batch: int
    resolution: int
    gradient_checkpointing: bool
    rank: int
    steps: int
    variant: str
    ms_per_step: Optional[float]
    it_per_s: Optional[float]
    images_per_s: Optional[float]
    tflop_per_step: Optional[float]
    achieved_tflops: Optional[float]
    mfu: Optional[float]
    peak_allocated_gb: Optional[float]
    peak_reserved_gb: Optional[float]
    final_loss: Optional[float]
    baseline_ms_per_step: Optional[float]
    baseline_peak_reserved_gb: Optional[float]
    speedup: Optional[float]
    device: str
    torch: str
    diffusers: str
    peft: str
    date: str
    warmup_s: Optional[float] = None          # warm-up steps, capture and compile included
    memory_preset: Optional[str] = None
    memory_cap_gb: Optional[float] = None
    fits: Optional[bool] = None
    notes: list = field(default_factory=list)
    optimizer: str = "AdamW"
    alpha: Optional[float] = None   # network_alpha (None: the rank)


def build_random_base(model: str, device, dtype):
    """A BaseModel of the real architecture with random weights, built on ``device``."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from lora_trainer.models.loading import BaseModel
    from lora_trainer.models.tiny import SHIPPED_CONFIGS
    from lora_trainer.models.tokenizers import load_clip_tokenizers

    family, folder, _ = MODELS[model]
    root = SHIPPED_CONFIGS / folder
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in ``dtype``: no fp32 copy ever exists, as when loading a file
    try:
        with torch.device(device):
            # text encoders first, each cast at once: transformers may build them in their config's fp32
            encoders = [CLIPTextModel(CLIPTextConfig.from_json_file(str(root / "text_encoder" / "config.json")))
                        .to(dtype)]
            if family == "sdxl":
                encoders.append(CLIPTextModelWithProjection(
                    CLIPTextConfig.from_json_file(str(root / "text_encoder_2" / "config.json"))).to(dtype))
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(root / "unet")))
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(root / "vae")))
    finally:
        torch.set_default_dtype(previous)
    for m in (unet, vae, *encoders):
        m.to(dtype)
    scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(str(root / "scheduler")))
    return BaseModel(family=family, unet=unet, vae=vae, text_encoders=encoders,
                     tokenizers=load_clip_tokenizers(family), noise_scheduler=scheduler, v_prediction=False,
                     source_path=str(root), model_name=f"random-{model}")


class _Session:
    """One model with LoRA attached, its optimizer and a fixed batch: the state every variant
    of the step is timed on."""

    def __init__(self, cfg, model: str, batch: int, resolution: int, total_steps: int) -> None:
        from lora_trainer.train.setup import attach_training, make_accelerator, place_models, use_expandable_segments
        from lora_trainer.train.step import Batch

        self.cfg = cfg
        use_expandable_segments()  # as ``train`` does
        self.accelerator = make_accelerator(cfg)
        self.device = self.accelerator.device
        torch.manual_seed(0)
        self.base = build_random_base(model, self.device, torch.bfloat16)
        place_models(cfg, self.base, self.device)
        self.network, self.optimizer, self.scheduler, self.models = attach_training(
            cfg, self.base, self.accelerator, total_steps)
        self.base.vae.to("cpu")  # the latents are "cached"
        self.params = self.network.optimizer_parameters()
        side = resolution // 8
        self.data = Batch(latents=torch.randn(batch, 4, side, side, device=self.device),
                          captions=["a photo of zkz"] * batch, loss_weights=torch.ones(batch, device=self.device),
                          original_sizes=[(resolution, resolution)] * batch, crops=[(0, 0)] * batch,
                          target_sizes=[(resolution, resolution)] * batch)
        self.generator = torch.Generator(device=self.device).manual_seed(0)
        self.graphed = None
        self.amp = False   # run the step under bf16 autocast (what the baseline and the "amp" variant do)

    def eager_step(self) -> torch.Tensor:
        from lora_trainer.train.step import apply_update, compute_loss

        loss = compute_loss(self.models, self.data, self.generator)
        self.accelerator.backward(loss)
        apply_update(self.accelerator, self.optimizer, self.scheduler, self.network, self.params,
                     self.cfg.max_grad_norm, self.cfg.scale_weight_norms)
        return loss.detach()

    def graph_step(self) -> torch.Tensor:
        from lora_trainer.train.step import after_update

        loss = self.graphed.step(self.data, self.generator)
        after_update(self.scheduler, self.network, self.cfg.scale_weight_norms)
        return loss

    def use_graphs(self, enabled: bool) -> None:
        from lora_trainer.train.graphs import GraphedStep, graph_blockers, update_blockers

        if self.graphed is not None:
            self.graphed.release()
            self.graphed = None
        if enabled:
            blockers = graph_blockers(self.cfg, self.accelerator, self.optimizer)
            if blockers:
                raise ValueError("CUDA graphs cannot be used: " + "; ".join(blockers))
            self.graphed = GraphedStep(self.models, self.accelerator, self.optimizer, self.network, self.params,
                                       self.cfg.max_grad_norm,
                                       capture_update=not update_blockers(self.cfg, self.optimizer))

    def step(self) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return self.graph_step() if self.graphed is not None else self.eager_step()

    def timed(self, n: int, sync_every_step: bool = False) -> tuple[float, torch.Tensor]:
        torch.cuda.synchronize()
        losses = []
        start = time.perf_counter()
        for _ in range(n):
            loss = self.step()
            if sync_every_step:
                loss.item()  # what a loop that logs every step's loss does
            losses.append(loss)
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / n, torch.stack(losses)


def _fresh_peak() -> None:
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _versions() -> dict:
    import diffusers
    import peft
    name = torch.cuda.get_device_name()
    return {"device": f"{name} ({platform.node()})", "torch": torch.__version__, "diffusers": diffusers.__version__,
            "peft": peft.__version__, "date": time.strftime("%Y-%m-%d")}


def _peak_flops() -> Optional[float]:
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def _product_flops(self_shape, a_shape, b_shape, *args, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def parse_variant(variant: str) -> set[str]:
    parts = set(variant.split("+"))
    unknown = parts - {"eager", "graphs", "compile", "cl", "amp", "fullgc", "attnonly", "wide", "autograd",
                     "nonreentrant", "jitgeglu"}
    if unknown:
        raise SystemExit(f"unknown bench variant part(s): {', '.join(sorted(unknown))}")
    return parts


def run_bench(model: str = "sd15", batch: int = 1, resolution: Optional[int] = None,
              gradient_checkpointing: bool = False, steps: int = 20, warmup: int = 5, rank: int = 32,
              count_flops: bool = True, baseline: bool = True, profile: Optional[str] = None,
              variants: tuple[str, ...] = ("eager", "graphs"), on_result=None,
              memory_breakdown: Optional[str] = None, optimizer: str = "AdamW",
              alpha: Optional[float] = None) -> list[BenchResult]:
    """Time each variant of our step (and the plain baseline once) on one model."""
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train.optimizers import ADAPTIVE_TYPES
    from lora_trainer.train.setup import cache_prompts

    if not torch.cuda.is_available():
        raise SystemExit("bench needs a CUDA GPU")
    parsed = [parse_variant(v) for v in variants]
    # compiling cannot be undone: compiled variants go last, in the order given
    order = sorted(range(len(variants)), key=lambda i: "compile" in parsed[i])
    _, _, default_res = MODELS[model]
    resolution = resolution or default_res
    alpha = float(rank if alpha is None else alpha)
    cfg = TrainConfig(network_dim=rank, network_alpha=alpha, mixed_precision="bf16", train_batch_size=batch,
                      gradient_checkpointing=gradient_checkpointing, network_train_unet_only=True,
                      optimizer_type=optimizer, learning_rate=1.0 if optimizer in ADAPTIVE_TYPES else 1e-4,
                      lr_scheduler="constant", max_grad_norm=1.0, resolution=str(resolution), cache_latents=True)
    total = (warmup + steps + 8) * (len(variants) + 2)
    s = _Session(cfg, model, batch, resolution, total)

    base_sec = base_reserved = None
    if baseline:
        # the plain step: peft's own LoRA forward on fp32 LoRA weights under autocast, diffusers' GEGLU and blocks,
        # the text encoders run every step, a host sync per step
        from lora_trainer.train.geglu import use_lean_geglu, use_plain_geglu
        from lora_trainer.train.unit_scales import use_plain_blocks, use_unit_scale_blocks
        s.network.set_lean_forward(False)
        s.network.set_compute_dtype(torch.float32)
        use_plain_geglu(s.base.unet)
        use_plain_blocks(s.base.unet)
        cache, s.models.prompt_cache = s.models.prompt_cache, None
        s.amp = True
        _fresh_peak()
        for _ in range(max(1, warmup)):
            s.step()
        base_sec, _ = s.timed(steps, sync_every_step=True)
        base_reserved = torch.cuda.max_memory_reserved() / 1e9
        s.amp = False
        s.network.set_lean_forward(True)
        s.network.set_compute_dtype(torch.bfloat16)
        use_lean_geglu(s.base.unet)
        use_unit_scale_blocks(s.base.unet)
        s.models.prompt_cache = cache
    if s.models.prompt_cache is not None:
        cache_prompts(s.models, s.data.captions)

    flops = None

    def count() -> Optional[int]:
        # an eager step as ``train``'s setup leaves it (every block recomputed), after the first
        # variant's figures: its allocations would otherwise shape the first variant's memory
        from torch.utils.flop_counter import FlopCounterMode
        if gradient_checkpointing:
            from lora_trainer.train.checkpointing import checkpoint_unet_blocks
            checkpoint_unet_blocks(s.base.unet, reentrant=True)
        # torch's counter knows addmm but not its in-place form, which adds the LoRA up-projections and the
        # fused LoRA Linears' products (lora/fused_linear)
        with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _product_flops}) as counter:
            s.eager_step()
        return counter.get_total_flops()

    if count_flops and "compile" in parsed[order[0]]:
        flops = count()   # before the blocks are compiled
    results = []
    compiled = False
    peak = _peak_flops()
    for index in order:
        name, parts = variants[index], parsed[index]
        notes = []
        if "compile" in parts and not compiled:
            from lora_trainer.train.compile import BLOCK_CLASSES, WIDE_CLASSES, compile_unet_blocks
            regions = WIDE_CLASSES if "wide" in parts else BLOCK_CLASSES
            notes.append(f"{compile_unet_blocks(s.base.unet, classes=regions)} UNet regions compiled "
                         f"({', '.join(regions)})")
            compiled = True
        channels_last = "cl" in parts
        s.base.unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        s.models.channels_last = channels_last
        s.amp = "amp" in parts
        s.network.fuse_linears("autograd" not in parts)
        geglu.FUSED_KERNELS = "jitgeglu" in parts
        if gradient_checkpointing:   # as ``train`` sets it: attention outputs kept in the captured step,
            # the eager step reentrant
            from lora_trainer.train.checkpointing import checkpoint_unet_blocks
            checkpoint_unet_blocks(s.base.unet, keep_attention="graphs" in parts and "fullgc" not in parts,
                                   lora_rank=None if "attnonly" in parts else rank,
                                   reentrant="nonreentrant" not in parts and "compile" not in parts)
        s.use_graphs("graphs" in parts)
        _fresh_peak()
        start = time.perf_counter()
        for _ in range(max(warmup, 5 if s.graphed is not None else 1)):
            s.step()
        torch.cuda.synchronize()
        warm_s = time.perf_counter() - start
        sec, losses = s.timed(steps)
        if profile and index == order[0]:
            write_profile(s.step, profile)
        if memory_breakdown and index == order[0]:
            write_memory_breakdown(memory_breakdown, f"{model} {resolution}² batch {batch} [{name}]")
        peak_allocated, peak_reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        if count_flops and flops is None:
            s.use_graphs(False)
            flops = count()
        achieved = flops / sec if flops else None
        r = BenchResult(
            model=model, batch=batch, resolution=resolution, gradient_checkpointing=gradient_checkpointing,
            rank=rank, steps=steps, variant=name, ms_per_step=sec * 1e3, it_per_s=1 / sec,
            images_per_s=batch / sec, tflop_per_step=flops / 1e12 if flops else None,
            achieved_tflops=achieved / 1e12 if achieved else None,
            mfu=achieved / peak if achieved and peak else None,
            peak_allocated_gb=peak_allocated / 1e9, peak_reserved_gb=peak_reserved / 1e9,
            final_loss=float(losses[-1]),
            baseline_ms_per_step=base_sec * 1e3 if base_sec else None, baseline_peak_reserved_gb=base_reserved,
            speedup=base_sec / sec if base_sec else None, warmup_s=warm_s, notes=notes, optimizer=optimizer,
            alpha=alpha, **_versions())
        results.append(r)
        if on_result:
            on_result(r)
    s.use_graphs(False)
    return results


def format_result(r: BenchResult) -> str:
    head = (f"{r.model} {r.resolution}² batch {r.batch}{' +GC' if r.gradient_checkpointing else ''} rank {r.rank}"
            f"{'' if r.alpha in (None, r.rank) else f' alpha {r.alpha:g}'}"
            f"{'' if r.optimizer == 'AdamW' else ' ' + r.optimizer}")
    if r.memory_preset:
        verdict = "fits" if r.fits else "does NOT fit"
        parts = [f"preset {r.memory_preset} ({head}): {verdict} in {r.memory_cap_gb:.2f} GB "
                 f"(cap {r.memory_preset.split('-')[-1]} less {CONTEXT_GIB} GiB of CUDA context)"]
        if r.ms_per_step:
            parts.append(f"{r.ms_per_step:.1f} ms/step")
    else:
        parts = [f"{head} [{r.variant}]:", f"{r.ms_per_step:.1f} ms/step", f"{r.it_per_s:.2f} it/s",
                 f"{r.images_per_s:.2f} images/s"]
        if r.tflop_per_step:
            parts.append(f"{r.tflop_per_step:.2f} TFLOP/step, {r.achieved_tflops:.0f} TFLOP/s")
        if r.mfu:
            parts.append(f"MFU {100 * r.mfu:.1f}%")
    parts.append(f"peak {r.peak_allocated_gb:.2f} GB allocated / {r.peak_reserved_gb:.2f} GB reserved")
    if r.speedup:
        parts.append(f"baseline {r.baseline_ms_per_step:.1f} ms/step ({r.baseline_peak_reserved_gb:.2f} GB reserved): "
                     f"{r.speedup:.2f}× faster")
    if r.warmup_s is not None:
        parts.append(f"warm-up {r.warmup_s:.1f} s")
    parts += r.notes
    return ", ".join(parts)


def main(args) -> int:
    def emit(result: BenchResult) -> None:
        print(format_result(result), flush=True)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(result)) + "\n")

    if args.memory_preset:
        from benchmarks.memory_check import run_memory_check

        emit(run_memory_check(args.memory_preset))
        return 0
    variants = "compile+graphs" if args.compile else args.variants  # ``train`` steps as "graphs" where it can
    run_bench(args.model, args.batch, args.resolution, args.gradient_checkpointing, args.steps, args.warmup,
              args.rank, baseline=not args.no_baseline, profile=args.profile,
              variants=tuple(v.strip() for v in variants.split(",") if v.strip()), on_result=emit,
              memory_breakdown=args.memory_breakdown, optimizer=args.optimizer, alpha=args.alpha)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    namespace = parser.parse_args()
    from lora_trainer.cli.quiet import quiet_libraries
    quiet_libraries()
    raise SystemExit(main(namespace))
