"""LoRA Linear layers' forward and backward as one autograd function.

Through autograd, the layer's input gets two gradients, one from the frozen base product and one from the
LoRA down-projection, and autograd adds them: a pass over an activation-sized tensor (read twice, written
once) per layer in every backward pass. Here the down-projection's part is added by its matrix product's own
accumulation (``addmm_``) into the base part, and the graph has one node where it had four. Layers that read
the same input (an attention's query, key and value) run as one function too: their input gradients are
summed by the products as well. The products are those autograd runs, in the same layouts, so gradient
checkpointing's policies still see (and may keep) the down-projection's ``mm``
(``train/checkpointing.checkpoint_policy``).

Inside ``torch.compile``'d regions the layers stay on autograd: inductor fuses those additions itself, and with
the function the compiled step on a CUDA GPU ran no attention backward and its LoRA gradients were wrong
(``benchmarks/compile_check.py``; the CPU's compiled step was right).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layers as L

FUSE = "lora_trainer_fuse"   # layer attribute: False keeps the layer on autograd (``LoraNetwork.fuse_linears``)


class LoraLinears(torch.autograd.Function):
    """``x·Wᵢᵀ + bᵢ + sᵢ·(x·Aᵢᵀ)·Bᵢᵀ`` for one flat (tokens × features) ``x`` and each layer ``i`` (an
    attention's query, key and value read the same input); ``W``, ``b`` frozen. ``x``'s gradient is one tensor
    that every layer's products accumulate into."""

    @staticmethod
    def forward(ctx, x, scales: tuple, *weights):   # weights: W, b, A, B of each layer
        outs, downs = [], []
        for i, scale in enumerate(scales):
            weight, bias, down_weight, up_weight = weights[4 * i:4 * i + 4]
            out = F.linear(x, weight, bias)
            down = torch.mm(x, down_weight.t())
            out.addmm_(down, up_weight.t(), alpha=scale)
            outs.append(out)
            downs.append(down)
        ctx.scales = scales
        ctx.save_for_backward(x, *downs, *weights)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        x, *saved = ctx.saved_tensors
        count = len(ctx.scales)
        downs, weights = saved[:count], saved[count:]
        needs = ctx.needs_input_grad
        grad_x, grad_weights = None, [None] * len(weights)
        for i, (scale, grad, down) in enumerate(zip(ctx.scales, grads, downs)):
            weight, _, down_weight, up_weight = weights[4 * i:4 * i + 4]
            grad_down = torch.mm(grad, up_weight)
            if scale != 1.0:
                grad_down.mul_(scale)   # tokens × rank: small
            if needs[2 + 4 * i + 3]:
                grad_weights[4 * i + 3] = torch.mm(grad.t(), down)
                if scale != 1.0:
                    grad_weights[4 * i + 3].mul_(scale)
            if needs[2 + 4 * i + 2]:
                grad_weights[4 * i + 2] = torch.mm(grad_down.t(), x)
            if needs[0]:
                if grad_x is None:
                    grad_x = torch.mm(grad, weight)
                else:
                    grad_x.addmm_(grad, weight)
                grad_x.addmm_(grad_down, down_weight)
        return (grad_x, None, *grad_weights)


PARTS = "_lora_trainer_linears"   # layer.__dict__: its base, down and up Linear modules (looked up once)


def fusable_weights(layer: nn.Module, x: torch.Tensor) -> Optional[tuple]:
    """``(W, b, A, B)`` of plain LoRA ``layer`` when it may run in ``LoraLinears`` on ``x``, else None: a plain,
    frozen ``nn.Linear`` base without hooks or a replaced forward (``fp8_base`` replaces it), LoRA Linears
    without hooks (kohya's dropouts) or bias, one precision for the input and all weights, no autocast, not
    inside ``torch.compile``. It runs for every layer call of an eager step, so it reads the modules' dictionaries
    directly."""
    state = layer.__dict__
    if not state.get(FUSE, True) or L.is_compiling():
        return None
    parts = state.get(PARTS)
    if parts is None:
        parts = state[PARTS] = (layer.get_base_layer(), layer.lora_A[L.ADAPTER], layer.lora_B[L.ADAPTER])
    base, down, up = parts
    if type(base) is not nn.Linear or type(down) is not nn.Linear or type(up) is not nn.Linear:
        return None
    if "forward" in base.__dict__ or any(m._forward_hooks or m._forward_pre_hooks for m in parts):
        return None
    weight, bias = base._parameters["weight"], base._parameters["bias"]
    down_weight, up_weight = down._parameters["weight"], up._parameters["weight"]
    dtype = x.dtype
    if (weight.requires_grad or weight.dtype != dtype or down_weight.dtype != dtype or up_weight.dtype != dtype
            or down._parameters["bias"] is not None or up._parameters["bias"] is not None):
        return None
    if bias is not None and (bias.requires_grad or bias.dtype != dtype):
        return None
    if x.dim() < 2 or L._autocast_on(x.device.type):
        return None
    return weight, bias, down_weight, up_weight


def lora_linears(x: torch.Tensor, weights: list[tuple], scales) -> list[torch.Tensor]:
    """The outputs of plain LoRA layers for one input ``x`` through ``LoraLinears``: each layer's
    ``fusable_weights`` and the scale of its LoRA output."""
    shape = x.shape
    flat = x.reshape(-1, shape[-1]) if x.dim() > 2 else x
    outs = LoraLinears.apply(flat, tuple(float(s) for s in scales), *[w for group in weights for w in group])
    return [L.tokens_shaped(out, shape) for out in outs]
