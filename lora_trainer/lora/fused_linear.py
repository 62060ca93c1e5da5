"""LoRA Linear layers' forward and backward as one autograd function.

Through autograd, the layer's input gets two gradients, one from the frozen base product and one from the
LoRA down-projection, and autograd adds them: a pass over an activation-sized tensor (read twice, written
once) per layer in every backward pass. Here the down-projection's part is added by its matrix product's own
accumulation (``addmm_``) into the base part, and the graph has one node where it had four. Layers that read
the same input (an attention's query, key and value) run as one function too: their input gradients are
summed by the products as well. The products are
those autograd runs, in the same layouts, so gradient checkpointing's policies still see (and may keep) the
down-projection's ``mm`` (``train/graphs.checkpoint_policy``), and ``torch.compile`` traces the function.
"""
from __future__ import annotations

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


def fusable(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether plain LoRA ``layer`` may run in ``LoraLinears`` on ``x``: a plain, frozen ``nn.Linear`` base
    without hooks or a replaced forward (``fp8_base`` replaces it), LoRA Linears without hooks (kohya's
    dropouts) or bias, and one precision for the input and all weights (no autocast)."""
    base = layer.get_base_layer()
    if not getattr(layer, FUSE, True) or type(base) is not nn.Linear or "forward" in base.__dict__:
        return False
    parts = (base, layer.lora_A[L.ADAPTER], layer.lora_B[L.ADAPTER])
    if any(part._forward_hooks or part._forward_pre_hooks for part in parts):
        return False
    if type(parts[1]) is not nn.Linear or type(parts[2]) is not nn.Linear or parts[1].bias is not None \
            or parts[2].bias is not None:
        return False
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return False
    tensors = [base.weight, parts[1].weight, parts[2].weight] + ([base.bias] if base.bias is not None else [])
    return (x.dim() >= 2 and all(t.dtype == x.dtype for t in tensors)
            and not L._autocast_on(x.device.type))


def lora_linears(x: torch.Tensor, layers, scales) -> list[torch.Tensor]:
    """The outputs of plain LoRA layers for one input ``x`` through ``LoraLinears`` (``fusable`` must hold for
    each), the LoRA output of layer ``i`` scaled by ``scales[i]``."""
    shape = x.shape
    flat = x.reshape(-1, shape[-1]) if x.dim() > 2 else x
    weights = []
    for layer in layers:
        base = layer.get_base_layer()
        weights += [base.weight, base.bias, layer.lora_A[L.ADAPTER].weight, layer.lora_B[L.ADAPTER].weight]
    outs = LoraLinears.apply(flat, tuple(float(s) for s in scales), *weights)
    return [L.tokens_shaped(out, shape) for out in outs]
