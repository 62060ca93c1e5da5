"""Which step features pay on this GPU: times variants of the training step in one process,
in rotating order so clock drift spreads evenly. Usage: python benchmarks/step_ablation.py sd15 1"""
import sys
import time

import torch

from benchmarks.bench import build_random_base
from lora_trainer.config.schema import TrainConfig
from lora_trainer.train.setup import attach_training, make_accelerator, place_models
from lora_trainer.train.step import Batch, apply_update, compute_loss

model, batch = sys.argv[1], int(sys.argv[2])
res = 512 if model == "sd15" else 1024
cfg = TrainConfig(network_dim=32, network_alpha=32, mixed_precision="bf16", train_batch_size=batch,
                  network_train_unet_only=True, lr_scheduler="constant", resolution=str(res))
acc = make_accelerator(cfg)
dev = acc.device
base = build_random_base(model, dev, torch.bfloat16)
place_models(cfg, base, dev)
net, opt, sched, m = attach_training(cfg, base, acc, 10_000)
params = net.optimizer_parameters()
s = res // 8
data = Batch(torch.randn(batch, 4, s, s, device=dev), ["a photo of zkz"] * batch, torch.ones(batch, device=dev),
             [(res, res)] * batch, [(0, 0)] * batch, [(res, res)] * batch)
gen = torch.Generator(device=dev).manual_seed(0)
cache = m.prompt_cache


def step():
    loss = compute_loss(m, data, gen)
    acc.backward(loss)
    apply_update(acc, opt, sched, net, params, 1.0, None)
    return loss.detach()


variants = {"peft+te": (False, None), "lean+te": (True, None), "peft+cache": (False, cache),
            "lean+cache": (True, cache)}
times = {k: [] for k in variants}
for rnd in range(4):
    for name, (lean, pc) in variants.items():
        net.set_lean_forward(lean)
        m.prompt_cache = pc
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(15):
            step()
        torch.cuda.synchronize()
        times[name].append((time.perf_counter() - t) / 15 * 1e3)
for name, ts in times.items():
    print(f"{model} b{batch} {name:>11}: median {sorted(ts)[len(ts) // 2]:.1f} ms/step  all {[round(x) for x in ts]}")
