"""kohya's default target layers, found by walking the model.

UNet: every Linear and 1×1 Conv2d inside a ``Transformer2DModel`` (attention q/k/v/out,
proj_in/out, feed-forward). With ``conv_dim`` (LoCon) also the layers of
``ResnetBlock2D``/``Downsample2D``/``Upsample2D``: their 3×3 convolutions get ``conv_dim``,
their Linear/1×1 layers the normal rank. Text encoders: the Linear layers of CLIP's
attention and MLP blocks.

A layer's kohya key (``module_key``) names it in a file; ``block_index`` places it in kohya's blocks
(``config.blocks``: IN00…OUT11, SDXL BASE…OUT) for per-block learning rates and ranks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

UNET_TARGET_BLOCKS = ("Transformer2DModel",)
UNET_CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TEXT_ENCODER_BLOCKS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPFlashAttention2", "CLIPMLP")


@dataclass(frozen=True)
class Target:
    name: str        # full module name inside the model
    is_conv3x3: bool  # trained with conv_dim/conv_alpha instead of network_dim/alpha


def _is_1x1(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1)


def find_targets(model: nn.Module, blocks: tuple[str, ...], conv_blocks: tuple[str, ...] = ()) -> list[Target]:
    """Linear/1×1 layers inside ``blocks``; also 3×3 convs (and their siblings) inside ``conv_blocks``."""
    found: dict[str, Target] = {}
    for block_name, block in model.named_modules():
        kind = type(block).__name__
        in_main, in_conv = kind in blocks, kind in conv_blocks
        if not (in_main or in_conv):
            continue
        for child_name, child in block.named_modules():
            if not child_name:
                continue
            full = f"{block_name}.{child_name}" if block_name else child_name
            if isinstance(child, nn.Linear) or _is_1x1(child):
                found.setdefault(full, Target(full, False))
            elif isinstance(child, nn.Conv2d) and in_conv:
                found.setdefault(full, Target(full, True))
    return [found[k] for k in sorted(found)]


def unet_targets(unet: nn.Module, with_conv: bool) -> list[Target]:
    return find_targets(unet, UNET_TARGET_BLOCKS, UNET_CONV_BLOCKS if with_conv else ())


def text_encoder_targets(text_encoder: nn.Module) -> list[Target]:
    return find_targets(text_encoder, TEXT_ENCODER_BLOCKS)


def sdxl_unet_namer(unet_config: Any):
    """diffusers UNet module path → SGM module path (``down_blocks.1.attentions.0`` → ``input_blocks.4.1``)."""
    from ..models.ldm_keys import rename_key, unet_module_map

    table = unet_module_map(unet_config)
    return lambda name: rename_key(name + ".weight", table)[: -len(".weight")]


def module_key(prefix: str, module_name: str, sdxl_namer=None) -> str:
    """kohya module key for a module of the UNet or a text encoder."""
    if prefix == "lora_unet" and sdxl_namer is not None:
        module_name = sdxl_namer(module_name)
    elif prefix != "lora_unet" and not module_name.startswith("text_model."):
        module_name = "text_model." + module_name  # transformers 5 dropped the text_model level
    return f"{prefix}_{module_name.replace('.', '_')}"


_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")
_SGM = re.compile(r"^lora_unet_(input_blocks|middle_block|output_blocks)_(\d+)_")


def block_index(key: str, family: str) -> int:
    """kohya's block of a UNet layer's key (``get_block_index`` in kohya's networks/lora.py); -1 outside them.

    SD1/SD2 (diffusers names): 0 = IN00 (no layers), down block i, item j → 1 + 3i + j (its downsampler
    3i + 3), 12 = MID, up block i, item j → 13 + 3i + j. SDXL (SGM names): input_blocks_k → 1 + k,
    middle_block_k → 10 + k, output_blocks_k → 13 + k."""
    if not key.startswith("lora_unet_"):
        return -1
    if family == "sdxl":
        match = _SGM.match(key)
        if not match:
            return -1
        return {"input_blocks": 1, "middle_block": 10, "output_blocks": 13}[match.group(1)] + int(match.group(2))
    match = _UPDOWN.search(key)
    if match:
        i, kind, j = int(match.group(2)), match.group(3), int(match.group(4))
        idx = 3 * i + (2 if kind in ("upsamplers", "downsamplers") else j)
        return 1 + idx if match.group(1) == "down" else 13 + idx
    return 12 if "mid_block_" in key else -1
