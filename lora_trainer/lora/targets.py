"""kohya's default target layers, found by walking the model.

UNet: every Linear and 1×1 Conv2d inside a ``Transformer2DModel`` (attention q/k/v/out,
proj_in/out, feed-forward). With ``conv_dim`` (LoCon) also the layers of
``ResnetBlock2D``/``Downsample2D``/``Upsample2D``: their 3×3 convolutions get ``conv_dim``,
their Linear/1×1 layers the normal rank. Text encoders: the Linear layers of CLIP's
attention and MLP blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

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
