"""A LoRA Linear layer's forward and backward as one autograd function.

Through autograd, the layer's input gets two gradients, one from the frozen base product and one from the
LoRA down-projection, and autograd adds them: a pass over an activation-sized tensor (read twice, written
once) per layer in every backward pass. Here the down-projection's part is added by its matrix product's own
accumulation (``addmm_``) into the base part, and the graph has one node where it had four. The products are
those autograd runs, in the same layouts, so gradient checkpointing's policies still see (and may keep) the
down-projection's ``mm`` (``train/graphs.checkpoint_policy``), and ``torch.compile`` traces the function.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layers as L

FUSE = "lora_trainer_fuse"   # layer attribute: False keeps the layer on autograd (``LoraNetwork.fuse_linears``)


class LoraLinearFunction(torch.autograd.Function):
    """``x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ`` for a flat (tokens × features) ``x``; ``W``, ``b`` frozen."""

    @staticmethod
    def forward(ctx, x, weight, bias, down_weight, up_weight, scale: float):
        out = F.linear(x, weight, bias)
        down = torch.mm(x, down_weight.t())
        out.addmm_(down, up_weight.t(), alpha=scale)
        ctx.save_for_backward(x, down, weight, down_weight, up_weight)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad):
        x, down, weight, down_weight, up_weight = ctx.saved_tensors
        scale = ctx.scale
        grad_down = torch.mm(grad, up_weight)
        if scale != 1.0:
            grad_down.mul_(scale)   # tokens × rank: small
        grad_up = None
        if ctx.needs_input_grad[4]:
            grad_up = torch.mm(grad.t(), down)
            if scale != 1.0:
                grad_up.mul_(scale)
        grad_down_weight = torch.mm(grad_down.t(), x) if ctx.needs_input_grad[3] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(grad, weight)
            grad_x.addmm_(grad_down, down_weight)
        return grad_x, None, None, grad_down_weight, grad_up, None


def fusable(layer: nn.Module, x: torch.Tensor, lora_a: nn.Module, lora_b: nn.Module) -> bool:
    """Whether ``layer`` (a plain LoRA layer) may run as ``LoraLinearFunction`` on ``x``: a plain, frozen
    ``nn.Linear`` base without hooks or a replaced forward (``fp8_base`` replaces it), LoRA Linears without
    hooks (kohya's dropouts) or bias, and one precision for the input and all weights (no autocast)."""
    base = layer.get_base_layer()
    if not getattr(layer, FUSE, True) or type(base) is not nn.Linear or "forward" in base.__dict__ or base._forward_hooks or base._forward_pre_hooks:
        return False
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return False
    for part in (lora_a, lora_b):
        if type(part) is not nn.Linear or part.bias is not None or part._forward_hooks or part._forward_pre_hooks:
            return False
    dtype = x.dtype
    if not (base.weight.dtype == lora_a.weight.dtype == lora_b.weight.dtype == dtype):
        return False
    if base.bias is not None and base.bias.dtype != dtype:
        return False
    return x.dim() >= 2 and not L._autocast_on(x.device.type)


def lora_linear(layer: nn.Module, x: torch.Tensor, lora_a: nn.Module, lora_b: nn.Module, scale: float):
    """The layer's output for ``x`` through ``LoraLinearFunction`` (``fusable`` must hold)."""
    base = layer.get_base_layer()
    shape = x.shape
    flat = x.reshape(-1, shape[-1]) if x.dim() > 2 else x
    out = LoraLinearFunction.apply(flat, base.weight, base.bias, lora_a.weight, lora_b.weight, float(scale))
    return L.tokens_shaped(out, shape)
