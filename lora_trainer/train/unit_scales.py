"""The UNet's attention and ResNet blocks without their division by a scale of 1.

diffusers ends every attention (``hidden_states / attn.rescale_output_factor``) and every ``ResnetBlock2D``
(``(input + hidden) / output_scale_factor``) with a division, by 1.0 in SD1.x, SD2.x and SDXL. Each is a pass
over a whole activation forward and another over its gradient backward: 107 of the 2,650 operations an SD1.5
step dispatches, and in SDXL the largest activations of the step. Here those modules run the same operations
without it (values and gradients bit-identical). Modules of another configuration (a mask, a norm, a scale
other than 1, resampling inside the block) keep diffusers' forward; ``torch_compile`` fuses the division away
and keeps them all.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from ..lora.network import fused_projections
from .checkpointing import set_block_forward


def _plain_attention(attn, hidden_states, encoder_hidden_states, attention_mask, args, kwargs) -> bool:
    return (attention_mask is None and not args and not kwargs and hidden_states.dim() == 3
            and getattr(attn, "rescale_output_factor", None) == 1.0
            and not getattr(attn, "residual_connection", True)
            and getattr(attn, "spatial_norm", None) is None and getattr(attn, "group_norm", None) is None
            and getattr(attn, "norm_q", None) is None and getattr(attn, "norm_k", None) is None
            and (encoder_hidden_states is None or not getattr(attn, "norm_cross", None)))


class UnitScaleAttention:
    """``softmax(q·kᵀ/√d)·v`` through ``to_out``, as diffusers' ``AttnProcessor2_0`` for the plain case; a
    self-attention's query, key and value LoRA layers run as one function (``lora/fused_linear``)."""

    def __init__(self, fallback) -> None:
        self.fallback = fallback   # the module's own processor, for every other case

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        if not _plain_attention(attn, hidden_states, encoder_hidden_states, attention_mask, args, kwargs):
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        batch = hidden_states.shape[0]
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        projected = fused_projections(hidden_states, (attn.to_q, attn.to_k, attn.to_v)) \
            if encoder_hidden_states is None else None   # self-attention: one input, one gradient for it
        query, key, value = projected or (attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context))
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        return attn.to_out[1](attn.to_out[0](out))


def _attention_forward(self, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                       **kwargs) -> torch.Tensor:
    """diffusers' ``Attention.forward`` without its look at the processor's signature on every call (which sorts
    out keyword arguments a training step never passes): a Python cost of each attention in an eager step."""
    if kwargs:
        return type(self).forward(self, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
    return self.processor(self, hidden_states, encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask)


def _resnet_forward(self, input_tensor: torch.Tensor, temb: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """diffusers' ``ResnetBlock2D.forward`` for a block with the default time embedding, no resampling and an
    output scale of 1: the residual sum is the output."""
    if args or kwargs:
        return type(self).forward(self, input_tensor, temb, *args, **kwargs)
    hidden = self.conv1(self.nonlinearity(self.norm1(input_tensor)))
    if self.time_emb_proj is not None:
        temb = self.time_emb_proj(temb if self.skip_time_act else self.nonlinearity(temb))[:, :, None, None]
    if temb is not None:
        hidden = hidden + temb
    hidden = self.conv2(self.dropout(self.nonlinearity(self.norm2(hidden))))
    shortcut = input_tensor if self.conv_shortcut is None else self.conv_shortcut(input_tensor)
    return shortcut + hidden


def _plain_resnet(module: torch.nn.Module) -> bool:
    return (type(module).__name__ == "ResnetBlock2D" and getattr(module, "output_scale_factor", None) == 1.0
            and getattr(module, "time_embedding_norm", None) == "default"
            and getattr(module, "upsample", True) is None and getattr(module, "downsample", True) is None
            and all(hasattr(module, name) for name in ("conv1", "conv2", "norm1", "norm2", "nonlinearity",
                                                        "time_emb_proj", "skip_time_act", "conv_shortcut")))


def use_unit_scale_blocks(unet: torch.nn.Module) -> int:
    """Attention and ResNet blocks of ``unet`` without the division by 1 (the attentions also without diffusers'
    per-call signature look-up); returns how many modules changed."""
    count = 0
    for module in unet.modules():
        processor = getattr(module, "processor", None)
        if type(processor).__name__ == "AttnProcessor2_0":
            module.processor = UnitScaleAttention(processor)
            module.forward = types.MethodType(_attention_forward, module)
            count += 1
        elif _plain_resnet(module):
            set_block_forward(module, types.MethodType(_resnet_forward, module))
            count += 1
    return count


def use_plain_blocks(unet: torch.nn.Module) -> None:
    """diffusers' own attention processors and ResNet forwards again."""
    for module in unet.modules():
        processor = getattr(module, "processor", None)
        if isinstance(processor, UnitScaleAttention):
            module.processor = processor.fallback
            module.__dict__.pop("forward", None)
        elif type(module).__name__ == "ResnetBlock2D":
            set_block_forward(module, None)
