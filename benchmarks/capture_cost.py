"""What a short bucketed run pays for its CUDA graphs: per new bucket shape, the seconds of recording the
step (Python running the step's ops under capture), of instantiating the graph, of its first replay; then
each shape's replayed and eager step, and the peak memory, for one way of checkpointing per process.

  python benchmarks/capture_cost.py sdxl|sd15 VARIANT [OPTIMIZER] [RANK] [te|unet] [BATCH] [ATTENTION] > result.jsonl
  VARIANT: sac    the captured step's selective checkpointing (self-attention and LoRA-down outputs kept)
           plain  every checkpointed block recomputed whole (non-reentrant)
           none   no checkpointing
  te: the text encoder trained too (no prompt cache); the process's first two eager steps are then timed
  phase by phase before the graphs (what a run's first step pays once).
  ATTENTION: default (torch's choice: cuDNN's fused attention on Hopper), or the only SDPA backend allowed:
  flash, efficient, cudnn (what a new sequence length costs at its first call and in the replayed step).

U2 of benchmarks/user_jobs.py is SDXL 1024, batch 1, rank 64, Prodigy, checkpointing: the defaults here;
U1 is about ``sd15 none AdamW8bit 32 te 2``."""
from __future__ import annotations

import json
import sys
import time

import torch

from benchmarks.bench import _Session
from lora_trainer.config.schema import TrainConfig
from lora_trainer.train.checkpointing import checkpoint_unet_blocks
from lora_trainer.train.setup import cache_prompts
from lora_trainer.train.step import (Batch, after_update, loss_from_inputs, optimizer_update, sample_inputs,
                                     step_optimizer)

SHAPES = {"sdxl": [(1024, 1024), (832, 1216), (1216, 832), (896, 1152), (1152, 896)],
          "sd15": [(512, 512), (448, 576), (576, 448), (384, 640), (640, 384)]}


class TimedGraph(torch.cuda.CUDAGraph):
    """A CUDAGraph that notes when its recording began and how long ``capture_end`` (instantiation) took."""
    log: list = []

    def capture_begin(self, *args, **kwargs):
        super().capture_begin(*args, **kwargs)
        self._began = time.perf_counter()

    def capture_end(self):
        start = time.perf_counter()
        super().capture_end()
        TimedGraph.log.append({"record_s": start - self._began, "instantiate_s": time.perf_counter() - start})


def batch_of(shape, device, batch: int = 1) -> Batch:
    h, w = shape
    return Batch(latents=torch.randn(batch, 4, h // 8, w // 8, device=device), captions=["zkz, a photo"] * batch,
                 loss_weights=torch.ones(batch, device=device), original_sizes=[shape] * batch,
                 crops=[(0, 0)] * batch, target_sizes=[shape] * batch)


def synced(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def first_eager_steps(s, b, count: int = 2) -> list[dict]:
    """The first ``count`` eager steps of the process, each split into its phases (synchronised)."""
    steps = []
    for _ in range(count):
        inputs, t_inputs = synced(lambda: sample_inputs(s.models, b, s.generator))
        loss, t_forward = synced(lambda: loss_from_inputs(s.models, inputs))
        _, t_backward = synced(lambda: s.accelerator.backward(loss))
        _, t_update = synced(lambda: optimizer_update(s.accelerator, s.optimizer, s.network, s.params,
                                                      s.cfg.max_grad_norm))
        steps.append({"inputs": round(t_inputs, 3), "forward": round(t_forward, 3),
                      "backward": round(t_backward, 3), "update": round(t_update, 3)})
    return steps


def main(model: str = "sdxl", variant: str = "sac", optimizer: str = "Prodigy", rank: int = 64,
         text_encoder: bool = False, batch: int = 1) -> dict:
    resolution = SHAPES[model][0][0]
    cfg = TrainConfig(network_dim=rank, network_alpha=rank / 2, mixed_precision="bf16", train_batch_size=batch,
                      gradient_checkpointing=variant != "none", network_train_unet_only=not text_encoder,
                      text_encoder_lr=5e-5, shuffle_caption=text_encoder, optimizer_type=optimizer,
                      learning_rate=1.0 if optimizer == "Prodigy" else 1e-4, lr_scheduler="constant",
                      max_grad_norm=1.0, resolution=str(resolution), cache_latents=True)
    s = _Session(cfg, model, batch, resolution, 1000)
    if s.models.prompt_cache is not None:
        cache_prompts(s.models, ["zkz, a photo"])
    if variant == "sac":
        checkpoint_unet_blocks(s.base.unet, keep_attention=True, lora_rank=rank)
    elif variant == "plain":   # non-reentrant, as a captured step without the selective policy would
        checkpoint_unet_blocks(s.base.unet)
    elif variant != "none":
        raise SystemExit(f"unknown variant {variant}")
    batches = [batch_of(shape, s.device, batch) for shape in SHAPES[model]]
    eager_first = first_eager_steps(s, batches[0]) if text_encoder else []
    torch.cuda.CUDAGraph = TimedGraph   # graphs.py makes its graphs through this name
    s.use_graphs(True)
    torch.cuda.reset_peak_memory_stats()

    def step(b):
        loss = s.graphed.step(b, s.generator)
        after_update(s.scheduler, s.network, None)
        return loss

    first = []
    for b in [batches[0]] * s.graphed.schedule.first_warmup + batches:   # warm-up(s), then a capture per shape
        _, seconds = synced(lambda: step(b))
        first.append(round(seconds, 3))
    replay_ms = {}
    for shape, b in zip(SHAPES[model], batches):
        step(b)
        _, seconds = synced(lambda: [step(b) for _ in range(10)])
        replay_ms[f"{shape[1]}x{shape[0]}"] = round(seconds * 100, 1)
    peaks = (torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30)  # graphs only
    eager_ms = {}
    for shape, b in list(zip(SHAPES[model], batches))[:2]:
        def eager():
            out = s.graphed._eager(sample_inputs(s.models, b, s.generator))
            if not s.graphed.capture_update:
                step_optimizer(s.accelerator, s.optimizer, s.network, s.params, cfg.max_grad_norm)
            return out
        eager()
        _, seconds = synced(lambda: [eager() for _ in range(3)])
        eager_ms[f"{shape[1]}x{shape[0]}"] = round(seconds * 1000 / 3, 1)
    return {"model": model, "variant": variant, "optimizer": optimizer, "rank": rank,
            "text_encoder": text_encoder, "batch": batch, "first_eager_steps_s": eager_first,
            "capture_update": s.graphed.capture_update, "first_steps_s": first,
            "captures": [{k: round(v, 3) for k, v in entry.items()} for entry in TimedGraph.log],
            "schedule": s.graphed.schedule.summary(), "replay_ms": replay_ms, "eager_ms": eager_ms,
            "peak_alloc_gib": round(peaks[0], 3), "peak_reserved_gib": round(peaks[1], 3),
            "device": torch.cuda.get_device_name(), "torch": torch.__version__}


def attention_backends(name: str):
    """A context allowing only SDPA backend ``name`` (``default``: no restriction)."""
    import contextlib

    if name == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([{"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                         "cudnn": SDPBackend.CUDNN_ATTENTION}[name]])


if __name__ == "__main__":
    args = sys.argv[1:]
    attention = args[6] if len(args) > 6 else "default"
    with attention_backends(attention):
        result = main(args[0] if args else "sdxl", *(args[1:2] or ["sac"]), *(args[2:3] or ["Prodigy"]),
                      *[int(a) for a in args[3:4]], text_encoder="te" in args[4:5],
                      batch=int(args[5]) if len(args) > 5 else 1)
    print(json.dumps({**result, "attention": attention}), flush=True)
