"""What one LoRA training step dispatches: the operations of a forward and backward pass of the full-size UNet
(shipped configs, random bf16 weights, LoRA on every layer ``train`` trains), how many are more than views and
how many copy a tensor, and the step's seconds. Runs on the CPU, where every operation is dispatched as on a GPU;
an eager GPU step spends its time issuing them.

Usage: python benchmarks/step_ops.py sd15|sdxl RESOLUTION [RANK] [STEPS] [--plain-blocks]
(--plain-blocks: diffusers' attention and ResNet forwards, with their division by 1)
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.full_unet import median_seconds, random_unet, unet_inputs  # noqa: E402
from benchmarks.op_counter import Ops  # noqa: E402
from lora_trainer.lora.network import build_network  # noqa: E402
from lora_trainer.train.geglu import use_lean_geglu  # noqa: E402
from lora_trainer.train.unit_scales import use_unit_scale_blocks  # noqa: E402

VIEWS = {"view", "t", "transpose", "detach", "as_strided", "_unsafe_view", "expand", "permute", "unsqueeze",
         "squeeze", "alias", "slice", "select", "split", "chunk", "_reshape_alias", "split_with_sizes", "unbind"}
COPIES = ("copy_", "clone", "new_zeros", "zeros")


def main() -> None:
    argv = [a for a in sys.argv[1:] if not a.startswith("--")]
    model, resolution = argv[0], int(argv[1])
    rank = int(argv[2]) if len(argv) > 2 else 32
    steps = int(argv[3]) if len(argv) > 3 else 4
    torch.manual_seed(0)
    unet = random_unet(model)
    network = build_network("sdxl" if model == "sdxl" else "sd1", unet, [], rank=rank, alpha=rank / 2)
    network.use_compute_dtype(torch.bfloat16)
    use_lean_geglu(unet)
    if "--plain-blocks" not in sys.argv:
        use_unit_scale_blocks(unet)
    inputs = unet_inputs(unet, resolution)

    def step() -> None:
        unet(**inputs).sample.float().square().mean().backward()

    with Ops() as counted:
        step()
    ops = counted.seen
    seconds = median_seconds(step, steps)
    print(f"{model} {resolution}² batch 1 rank {rank}: {sum(ops.values())} operations dispatched, "
          f"{sum(n for name, n in ops.items() if name not in VIEWS)} of them not views, "
          f"{sum(ops[name] for name in COPIES)} copies; step {seconds:.2f} s "
          f"(median of {steps}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
