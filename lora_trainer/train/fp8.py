"""``fp8_base``: the frozen base model's Linear and Conv2d weights stored in float8 (e4m3), computed in the
mixed precision (bf16, as kohya does; fp16 or fp32 where chosen).

Each layer upcasts its weight when it runs, so the processor never multiplies in fp8 (the CPU cannot).
The backward pass upcasts again instead of keeping the upcast copy: only the fp8 weight stays in
memory, about half of what bf16 weights take. Norms, biases and embeddings keep the compute precision
(small, and what the embeddings' lookups need). Trained layers are never stored in fp8. Inside
``torch.compile``'d regions the layers upcast with plain operations instead of autograd functions
(``lora/fused_linear.py`` says why), and the compiler chooses whether to keep or redo the upcast.
"""
from __future__ import annotations

import types

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..lora.layers import is_compiling
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)

FP8 = getattr(torch, "float8_e4m3fn", None)


class _Fp8Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, dtype):
        ctx.save_for_backward(weight)
        ctx.dtype = dtype
        out = torch.matmul(x.to(dtype), weight.to(dtype).t())   # not a view (F.linear's 3-d output is one)
        return out if bias is None else out.add_(bias.to(dtype))

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        grad_x = grad.to(ctx.dtype).matmul(weight.to(ctx.dtype)) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, None


class _Fp8Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, dtype, stride, padding, dilation, groups):
        ctx.save_for_backward(weight)
        ctx.conf = (dtype, x.shape, stride, padding, dilation, groups)
        return F.conv2d(x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype),
                        stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        dtype, shape, stride, padding, dilation, groups = ctx.conf
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(shape, weight.to(dtype), grad.to(dtype), stride, padding,
                                                dilation, groups)
        return grad_x, None, None, None, None, None, None, None


def _linear_forward(self, x):
    dtype = self.lora_trainer_compute_dtype
    if is_compiling():
        return F.linear(x.to(dtype), self.weight.to(dtype), self.bias)
    return _Fp8Linear.apply(x, self.weight, self.bias, dtype)


def _conv_forward(self, x):
    if self.padding_mode != "zeros":
        return F.conv2d(F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode),
                        self.weight.to(x.dtype), self.bias, self.stride, 0, self.dilation, self.groups)
    dtype = self.lora_trainer_compute_dtype
    if is_compiling():
        return F.conv2d(x.to(dtype), self.weight.to(dtype), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)
    return _Fp8Conv2d.apply(x, self.weight, self.bias, dtype, self.stride, self.padding, self.dilation, self.groups)


def check_fp8_support() -> None:
    if FP8 is None:
        raise ConfigError(msg("train.fp8_torch", version=torch.__version__), msg("train.fp8_torch.advice"))


@torch.no_grad()
def store_in_fp8(model: nn.Module, compute_dtype: torch.dtype) -> int:
    """Frozen Linear / Conv2d weights of ``model`` to fp8, computed in ``compute_dtype``; returns bytes saved."""
    check_fp8_support()
    saved = 0
    for module in model.modules():
        kind = type(module)
        if kind not in (nn.Linear, nn.Conv2d) or module.weight.requires_grad or module.weight.dtype == FP8:
            continue
        before = module.weight.numel() * module.weight.element_size()
        module.weight.data = module.weight.data.to(FP8)
        if module.bias is not None:
            module.bias.data = module.bias.data.to(compute_dtype)
        module.lora_trainer_compute_dtype = compute_dtype
        module.forward = types.MethodType(_linear_forward if kind is nn.Linear else _conv_forward, module)
        saved += before - module.weight.numel()
    return saved


def to_device_keeping_fp8(model: nn.Module, device, dtype: torch.dtype) -> None:
    """``model.to(device, dtype)`` that leaves fp8 weights in fp8 (``Module.to`` with a dtype casts every float)."""
    for param in model.parameters():
        if param.dtype != FP8 and param.is_floating_point():
            param.data = param.data.to(device, dtype)
        else:
            param.data = param.data.to(device)
    for module in model.modules():
        for name, buf in module._buffers.items():
            if buf is not None:
                module._buffers[name] = buf.to(device, dtype) if buf.is_floating_point() else buf.to(device)
