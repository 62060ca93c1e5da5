"""The Adafactor update alone: transformers' per-tensor step against GroupedAdafactor (the tensors of one shape
together), on the LoRA tensors of a real UNet, with the same gradients; milliseconds per update and the largest
difference of the weights after the timed updates.

The UNet is built on the meta device from the shipped config (no weights, no memory); the LoRA is built on it by
the trainer's own ``build_network``, so the tensor shapes are those of a run; the optimizer's fp32 tensors then
live on DEVICE.
Usage: python benchmarks/adafactor_update.py [sd15|sdxl] [--rank 64] [--steps 20] [--device cuda] [--args ...]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lora_trainer.lora.network import build_network  # noqa: E402
from lora_trainer.train.grouped_adafactor import GroupedAdafactor  # noqa: E402
from lora_trainer.train.optimizers import parse_optimizer_args  # noqa: E402


def lora_shapes(model: str, rank: int) -> list[tuple]:
    from diffusers import UNet2DConditionModel
    config = UNet2DConditionModel.load_config(str(ROOT / "lora_trainer" / "models" / "configs" / model / "unet"))
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
        network = build_network("sdxl" if model == "sdxl" else "sd1", unet, [], rank=rank, alpha=rank / 2)
    return [tuple(p.shape) for p in network.parameters() if p.requires_grad]


def timed(cls, shapes, options, steps: int, device) -> tuple[float, list[torch.Tensor]]:
    gen = torch.Generator(device).manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, device=device) * 0.02) for s in shapes]
    grads = [torch.randn(s, generator=gen, device=device) * 1e-3 for s in shapes]
    opt = cls(params, **options)
    for p, g in zip(params, grads):
        p.grad = g
    for _ in range(3):   # warm-up: state made, kernels loaded
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000 / steps, [p.detach() for p in params]


def main() -> None:
    from transformers.optimization import Adafactor

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default="sdxl", choices=["sd15", "sdxl"])
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--args", nargs="*", default=["scale_parameter=False", "relative_step=False", "warmup_init=False"])
    a = p.parse_args()
    device = torch.device(a.device)
    shapes = lora_shapes(a.model, a.rank)
    options = parse_optimizer_args(a.args)
    options["lr"] = None if options.get("relative_step") else a.lr   # relative steps take no learning rate
    per_tensor_ms, theirs = timed(Adafactor, shapes, options, a.steps, device)
    grouped_ms, ours = timed(GroupedAdafactor, shapes, options, a.steps, device)
    diff = max((x - y).abs().max().item() for x, y in zip(ours, theirs))
    scale = max(x.abs().max().item() for x in theirs)
    print(json.dumps({"model": a.model, "rank": a.rank, "tensors": len(shapes), "shapes": len(set(shapes)),
                      "elements": sum(torch.Size(s).numel() for s in shapes), "device": str(device),
                      "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                      "torch": torch.__version__, "options": options, "steps": a.steps,
                      "per_tensor_ms": round(per_tensor_ms, 2), "grouped_ms": round(grouped_ms, 2),
                      "max_abs_diff": diff, "max_abs_weight": scale}))


if __name__ == "__main__":
    main()
