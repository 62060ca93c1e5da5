"""The UNet's GEGLU activation keeping one tensor for the backward pass instead of two.

diffusers' ``GEGLU`` returns ``h * gelu(gate)`` from the two halves of its projection. Autograd keeps the
projection and gelu's output (half the projection's size again) for the backward pass, and joins the two
halves' gradients with a copy. ``GegluProduct`` keeps only the projection, recomputes gelu in the backward
pass and writes both halves' gradients straight into one tensor: the same operations, so the same values,
without gelu's output held from the forward to the backward pass (12 % of the activations an SD1.5 512² step
keeps, 16 % of an SDXL 1024² step's: ``benchmarks/saved_activations.py``) or the copy joining the gradients.
Not used under ``torch_compile``, which fuses the original itself.

On a CUDA GPU, with ``FUSED_KERNELS`` on, each direction is one elementwise kernel compiled at run time by
torch's jiterator (NVRTC, part of every CUDA build of torch; no Triton): the forward pass reads the two halves
and writes the product, where it wrote and read gelu's output in between; the backward pass writes both halves'
gradients from the incoming gradient and the two halves, where it ran four kernels (gelu again, two products,
gelu's backward). Each value is computed in fp32 and rounded once, so it can differ from the unfused one in the
last bit. A failing compile falls back to the plain operations.
"""
from __future__ import annotations

import types
from typing import Optional

import torch
import torch.nn.functional as F

FUSED_KERNELS = False   # the jiterator kernels, on CUDA tensors (benchmarks: the ``+jitgeglu`` variant)

_FORWARD = """
template <typename T> T lora_trainer_geglu_forward(T hidden, T gate) {
  float g = static_cast<float>(gate);
  return static_cast<T>(static_cast<float>(hidden) * (0.5f * g * (1.0f + erff(g * 0.70710678118654752f))));
}"""
# one output shaped (..., 2, half): element [..., 0, i] is hidden's gradient, [..., 1, i] gate's (``is_gate``
# broadcasts 0 and 1 over that axis), the layout of ``projected``'s own gradient
_BACKWARD = """
template <typename T> T lora_trainer_geglu_backward(T grad, T hidden, T gate, T is_gate) {
  float g = static_cast<float>(gate);
  float d = static_cast<float>(grad);
  float cdf = 0.5f * (1.0f + erff(g * 0.70710678118654752f));
  if (static_cast<float>(is_gate) == 0.0f) {
    return static_cast<T>(d * g * cdf);
  }
  float pdf = 0.39894228040143268f * expf(-0.5f * g * g);
  return static_cast<T>(d * static_cast<float>(hidden) * (cdf + g * pdf));
}"""


class _Kernels:
    """The two jitted kernels and, per device and dtype, the (2, 1) tensor that tells the halves apart."""

    def __init__(self) -> None:
        from torch.cuda import jiterator

        self.forward = jiterator._create_jit_fn(_FORWARD)
        self.backward = jiterator._create_jit_fn(_BACKWARD)
        self.selectors: dict = {}
        self.failed = False

    def selector(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self.selectors:
            # made on the device (no copy from the host, which a graph capture would refuse)
            self.selectors[key] = torch.arange(2, device=like.device, dtype=like.dtype).view(2, 1)
        return self.selectors[key]


_kernels: Optional[_Kernels] = None


def _fused(projected: torch.Tensor) -> Optional[_Kernels]:
    """The kernels when ``projected`` may use them (CUDA, on, not failed), else None."""
    global _kernels
    if not (FUSED_KERNELS and projected.is_cuda) or (_kernels is not None and _kernels.failed):
        return None
    if _kernels is None:
        try:
            _kernels = _Kernels()
        except (ImportError, AttributeError):   # a torch without the jiterator
            return None
    return _kernels


def _run(kernels: _Kernels, fn, *tensors: torch.Tensor) -> Optional[torch.Tensor]:
    try:
        return fn(*tensors)
    except RuntimeError:   # NVRTC missing or refusing: the plain operations from now on
        kernels.failed = True
        return None


class GegluProduct(torch.autograd.Function):
    """``h * gelu(gate)`` for ``h, gate = projected.chunk(2, -1)``, saving only ``projected``."""

    @staticmethod
    def forward(ctx, projected: torch.Tensor) -> torch.Tensor:
        hidden, gate = projected.chunk(2, dim=-1)
        ctx.save_for_backward(projected)
        kernels = _fused(projected)
        out = _run(kernels, kernels.forward, hidden, gate) if kernels else None
        return out if out is not None else hidden * F.gelu(gate)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (projected,) = ctx.saved_tensors
        hidden, gate = projected.chunk(2, dim=-1)
        half = hidden.shape[-1]
        kernels = _fused(projected)
        if kernels:
            pair = projected.unflatten(-1, (2, half))
            grad_in = _run(kernels, kernels.backward, grad.unsqueeze(-2), pair[..., :1, :], pair[..., 1:, :],
                           kernels.selector(projected))
            if grad_in is not None:
                return grad_in.flatten(-2)
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
