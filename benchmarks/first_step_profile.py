"""Where a process's first training step spends its seconds: the first eager step (forward, backward, update)
under ``torch.profiler`` (the busiest operators by their own CPU time, and the CUDA kernels), then a second
step for comparison. The first step of a run pays what later steps no longer do (a library's first kernels,
cuBLAS/cuDNN heuristics, lazily loaded modules); this says which.

  python benchmarks/first_step_profile.py sd15|sdxl OPTIMIZER [te|unet] [RANK] > result.json
"""
from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import time

import torch

from benchmarks.bench import _Session
from benchmarks.capture_cost import SHAPES, batch_of, synced
from lora_trainer.config.schema import TrainConfig
from lora_trainer.train.setup import cache_prompts
from lora_trainer.train.step import loss_from_inputs, optimizer_update, sample_inputs


def top_ops(prof, key: str, count: int = 25) -> list[dict]:
    rows = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:count]
    return [{"op": e.key[:90], "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
             "cpu_total_ms": round(e.cpu_time_total / 1000, 1),
             "device_ms": round(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) / 1000, 1)}
            for e in rows]


def python_top(profile: cProfile.Profile, count: int = 30) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(count)
    return out.getvalue()[-6000:]


def main(model: str, optimizer: str, text_encoder: bool, rank: int) -> dict:
    resolution = SHAPES[model][0][0]
    cfg = TrainConfig(network_dim=rank, network_alpha=rank / 2, mixed_precision="bf16", train_batch_size=2,
                      network_train_unet_only=not text_encoder, text_encoder_lr=5e-5, shuffle_caption=text_encoder,
                      optimizer_type=optimizer, learning_rate=1.0 if optimizer == "Prodigy" else 1e-4,
                      lr_scheduler="constant", max_grad_norm=1.0, resolution=str(resolution), cache_latents=True)
    start = time.perf_counter()
    s = _Session(cfg, model, 2, resolution, 1000)
    if s.models.prompt_cache is not None:
        cache_prompts(s.models, ["zkz, a photo"])
    torch.cuda.synchronize()
    session_s = time.perf_counter() - start
    b = batch_of(SHAPES[model][0], s.device, 2)
    result = {"model": model, "optimizer": optimizer, "text_encoder": text_encoder, "session_s": round(session_s, 2)}
    from torch.profiler import ProfilerActivity, profile

    python = cProfile.Profile()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        inputs, t_inputs = synced(lambda: sample_inputs(s.models, b, s.generator))
        python.enable()
        loss, t_forward = synced(lambda: loss_from_inputs(s.models, inputs))
        python.disable()
        _, t_backward = synced(lambda: s.accelerator.backward(loss))
        _, t_update = synced(lambda: optimizer_update(s.accelerator, s.optimizer, s.network, s.params,
                                                      cfg.max_grad_norm))
    result["first_s"] = {"inputs": round(t_inputs, 3), "forward": round(t_forward, 3),
                         "backward": round(t_backward, 3), "update": round(t_update, 3)}
    result["top_self_cpu"] = top_ops(prof, "self_cpu_time_total")
    result["forward_python"] = python_top(python)
    inputs = sample_inputs(s.models, b, s.generator)
    loss, t_forward = synced(lambda: loss_from_inputs(s.models, inputs))
    _, t_backward = synced(lambda: s.accelerator.backward(loss))
    result["second_s"] = {"forward": round(t_forward, 3), "backward": round(t_backward, 3)}
    result["device"] = torch.cuda.get_device_name()
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(args[0], args[1], "te" in args[2:3], int(args[3]) if len(args) > 3 else 32), indent=1),
          flush=True)
