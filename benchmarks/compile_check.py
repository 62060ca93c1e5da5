"""Whether regional ``torch.compile`` trains as the eager step does, on the GPU: one model with LoRA in
bf16 (the benchmark's session), one fixed batch and noise, the LoRA weights' gradients of an eager forward and
backward against those of the compiled blocks (inductor), and which kernels the compiled backward runs.

Usage: python -m benchmarks.compile_check [sd15|sdxl] [resolution] [batch] [--autograd] [--fp8]
(``--autograd``: the LoRA Linears through autograd instead of one function each, eagerly; ``--fp8``: fp8_base)."""
from __future__ import annotations

import sys

import torch

from benchmarks.bench import MODELS, _Session
from benchmarks.reports import kernel_shares


def lora_grads(s) -> dict[str, torch.Tensor]:
    from lora_trainer.train.step import compute_loss

    for p in s.network.parameters():
        p.grad = None
    s.generator.manual_seed(0)
    loss = compute_loss(s.models, s.data, s.generator)
    loss.backward()
    torch.cuda.synchronize()
    names = {id(p): f"{comp.prefix}.{name}.{i}" for comp, name, layer in s.network.modules()
             for i, p in enumerate(layer.parameters()) if p.requires_grad}
    grads = {names.get(id(p), str(i)): p.grad.float().clone() for i, p in enumerate(s.network.parameters())
             if p.grad is not None}
    return grads, float(loss)


def main() -> None:
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train.compile import compile_unet_blocks

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    model = args[0] if args else "sd15"
    resolution = int(args[1]) if len(args) > 1 else MODELS[model][2]
    batch = int(args[2]) if len(args) > 2 else 1
    cfg = TrainConfig(network_dim=32, network_alpha=16, mixed_precision="bf16", train_batch_size=batch,
                      network_train_unet_only=True, learning_rate=1e-4, lr_scheduler="constant",
                      max_grad_norm=1.0, resolution=str(resolution), cache_latents=True, fp8_base="--fp8" in sys.argv)
    s = _Session(cfg, model, batch, resolution, 10)
    s.network.fuse_linears("--autograd" not in sys.argv)
    from lora_trainer.train.setup import cache_prompts
    if s.models.prompt_cache is not None:
        cache_prompts(s.models, s.data.captions)
    eager, eager_loss = lora_grads(s)
    again, _ = lora_grads(s)
    print(f"{model} {resolution}² b{batch}: {len(list(s.network.parameters()))} LoRA weights, {len(eager)} with "
          f"a gradient eagerly, loss {eager_loss:.6f}")
    print(f"compiled {compile_unet_blocks(s.base.unet)} blocks")
    for _ in range(2):
        compiled, compiled_loss = lora_grads(s)
    missing = [n for n in eager if n not in compiled]
    print(f"compiled: {len(compiled)} with a gradient, {len(missing)} missing (e.g. {missing[:4]}), "
          f"loss {compiled_loss:.6f}")

    def rel(a, b):
        return float((a - b).norm() / a.norm().clamp_min(1e-30))
    worst = sorted(((rel(eager[n], compiled[n]), n) for n in compiled if n in eager), reverse=True)[:5]
    noise = max(rel(eager[n], again[n]) for n in eager)
    print(f"relative gradient difference, worst: {[(round(r, 4), n) for r, n in worst]}; eager against eager "
          f"worst {noise:.2e}")
    total = torch.cat([g.flatten() for g in eager.values()]).norm()
    diff = torch.cat([(eager[n] - compiled.get(n, torch.zeros_like(eager[n]))).flatten() for n in eager]).norm()
    print(f"all weights: |g_eager - g_compiled| / |g_eager| = {float(diff / total):.4f}")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        lora_grads(s)
    by_kind, busiest = kernel_shares(prof.key_averages(), 1)
    for kind, ms, _, count in by_kind:
        print(f"  {kind}: {ms:.2f} ms, {count:.0f} kernels")
    for name, kind, ms, calls in busiest[:12]:
        print(f"  {ms:7.2f} ms {calls:5.0f}× {kind:11s} {name[:110]}")


if __name__ == "__main__":
    main()
