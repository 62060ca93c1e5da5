"""The UNet's GEGLU activation keeping one tensor for the backward pass instead of two.

diffusers' ``GEGLU`` returns ``h * gelu(gate)`` from the two halves of its projection. Autograd keeps the
projection and gelu's output (half the projection's size again) for the backward pass, and joins the two
halves' gradients with a copy. ``GegluProduct`` keeps only the projection, recomputes gelu in the backward
pass and writes both halves' gradients straight into one tensor: the same operations, so the same values,
without gelu's output held from the forward to the backward pass (12 % of the activations an SD1.5 512² step
keeps, 16 % of an SDXL 1024² step's: ``benchmarks/saved_activations.py``) or the copy joining the gradients.
Not used under ``torch_compile``, which fuses the original itself.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F


class GegluProduct(torch.autograd.Function):
    """``h * gelu(gate)`` for ``h, gate = projected.chunk(2, -1)``, saving only ``projected``."""

    @staticmethod
    def forward(ctx, projected: torch.Tensor) -> torch.Tensor:
        hidden, gate = projected.chunk(2, dim=-1)
        ctx.save_for_backward(projected)
        return hidden * F.gelu(gate)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (projected,) = ctx.saved_tensors
        hidden, gate = projected.chunk(2, dim=-1)
        half = hidden.shape[-1]
        grad_in = torch.empty_like(projected, memory_format=torch.contiguous_format)
        torch.mul(grad, F.gelu(gate), out=grad_in[..., :half])
        torch.ops.aten.gelu_backward.grad_input(grad * hidden, gate, approximate="none",
                                                 grad_input=grad_in[..., half:])
        return grad_in


def _lean_forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return GegluProduct.apply(self.proj(hidden_states))


def _is_geglu(module: torch.nn.Module) -> bool:
    return type(module).__name__ == "GEGLU" and isinstance(getattr(module, "proj", None), torch.nn.Module)


def use_lean_geglu(unet: torch.nn.Module) -> int:
    """Give every GEGLU of ``unet`` the one-tensor backward; returns how many."""
    count = 0
    for module in unet.modules():
        if _is_geglu(module):
            module.forward = types.MethodType(_lean_forward, module)
            count += 1
    return count


def use_plain_geglu(unet: torch.nn.Module) -> None:
    """diffusers' own GEGLU forward again (before ``torch.compile``, which fuses it)."""
    for module in unet.modules():
        if _is_geglu(module) and "forward" in module.__dict__:
            del module.forward
