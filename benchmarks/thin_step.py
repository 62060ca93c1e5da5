"""What the eager step costs the CPU: the full UNet's structure (every block, layer and LoRA of the shipped config)
with thin channels, on the CPU, where a step's time is then the dispatch of its operations and the Python around
them, almost no arithmetic. An eager GPU step pays the same while the GPU waits.

Usage: python benchmarks/thin_step.py sd15|sdxl [none|diffusers|nonreentrant|reentrant] [STEPS] [--autograd]
(checkpointing: none; diffusers' own; ours, non-reentrant as the captured step's warm-up or several processes
run it; ours, reentrant as one process's eager step runs it. --autograd: LoRA Linears through autograd)
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.full_unet import CONFIGS, median_seconds  # noqa: E402
from lora_trainer.lora.network import build_network  # noqa: E402
from lora_trainer.train.checkpointing import checkpoint_unet_blocks  # noqa: E402
from lora_trainer.train.geglu import use_lean_geglu  # noqa: E402
from lora_trainer.train.unit_scales import use_unit_scale_blocks  # noqa: E402


def thin_unet(model: str):
    """The shipped UNet config with an eighth of the channels (attention heads kept) and 8 norm groups."""
    from diffusers import UNet2DConditionModel

    cfg = dict(UNet2DConditionModel.load_config(str(CONFIGS / model / "unet")))
    cfg.update(block_out_channels=[c // 8 for c in cfg["block_out_channels"]], norm_num_groups=8, cross_attention_dim=64)
    if model == "sdxl":
        cfg.update(addition_time_embed_dim=16, projection_class_embeddings_input_dim=32 + 6 * 16)
    else:
        cfg.update(attention_head_dim=5)
    return UNet2DConditionModel.from_config(cfg).to(torch.bfloat16)


def main() -> None:
    argv = [a for a in sys.argv[1:] if not a.startswith("--")]
    model = argv[0]
    checkpointing = argv[1] if len(argv) > 1 else "none"
    steps = int(argv[2]) if len(argv) > 2 else 7
    torch.manual_seed(0)
    unet = thin_unet(model)
    unet.requires_grad_(False)
    network = build_network("sdxl" if model == "sdxl" else "sd1", unet, [], rank=4, alpha=2)
    network.use_compute_dtype(torch.bfloat16)
    network.fuse_linears("--autograd" not in sys.argv)
    use_lean_geglu(unet)
    use_unit_scale_blocks(unet)
    unet.train()
    if checkpointing == "diffusers":
        unet.enable_gradient_checkpointing()
    elif checkpointing in ("nonreentrant", "reentrant"):
        checkpoint_unet_blocks(unet, reentrant=checkpointing == "reentrant")
    elif checkpointing != "none":
        raise SystemExit(f"unknown checkpointing {checkpointing}")
    inputs = {"sample": torch.randn(1, 4, 16, 16, dtype=torch.bfloat16), "timestep": torch.tensor([500]),
              "encoder_hidden_states": torch.randn(1, 77, 64, dtype=torch.bfloat16)}
    if model == "sdxl":
        inputs["added_cond_kwargs"] = {"text_embeds": torch.randn(1, 32, dtype=torch.bfloat16),
                                       "time_ids": torch.randn(1, 6, dtype=torch.bfloat16)}

    def step() -> None:
        unet(**inputs).sample.float().square().mean().backward()

    for _ in range(2):
        step()
    seconds = median_seconds(step, steps)
    print(f"{model} thin, checkpointing {checkpointing}{' (+autograd)' if '--autograd' in sys.argv else ''}: "
          f"{seconds * 1e3:.1f} ms a forward and backward pass (median of {steps}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
