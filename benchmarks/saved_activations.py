"""What a UNet step keeps for its backward pass (bytes of the distinct tensors autograd saves, the weights left
out), with diffusers' GEGLU and with ours (``lora_trainer/train/geglu.py``). Device-independent, so it runs on the CPU:
full-size UNet from the shipped configs, random bf16 weights, one forward pass with gradients.

Usage: python benchmarks/saved_activations.py sd15|sdxl RESOLUTION [BATCH]
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.full_unet import random_unet, unet_inputs  # noqa: E402
from lora_trainer.train.geglu import use_lean_geglu, use_plain_geglu  # noqa: E402


def saved_bytes(unet, inputs: dict) -> int:
    """Bytes of the tensors the forward pass keeps for the backward pass, the model's own weights left out."""
    weights = {p.untyped_storage().data_ptr() for p in unet.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in weights:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        unet(**inputs)
    return sum(storages.values())


def main() -> None:
    model, resolution = sys.argv[1], int(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    unet = random_unet(model).requires_grad_(False)
    unet.conv_in.weight.requires_grad_(True)   # as a LoRA would: everything after it is kept
    inputs = unet_inputs(unet, resolution, batch)
    plain = saved_bytes(unet, inputs)
    use_lean_geglu(unet)
    lean = saved_bytes(unet, inputs)
    use_plain_geglu(unet)
    print(f"{model} {resolution}² batch {batch}: saved for the backward pass {plain / 2**30:.2f} GiB with diffusers' "
          f"GEGLU, {lean / 2**30:.2f} GiB with ours ({(plain - lean) / plain:.1%} less)")


if __name__ == "__main__":
    main()
