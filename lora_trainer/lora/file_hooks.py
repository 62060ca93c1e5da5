"""A kohya-format LoRA file applied to a model as forward hooks, without changing the model.

Each layer the file names gets ``multiplier · alpha/rank · up(down(x))`` added to its output (LoHa, LoKr
and DoRA layers: ``ΔW·x`` with the ΔW the hosts compute, ``file_kinds.host_delta``): the base model is
never modified (no weight backup in memory), and any kohya-format file applies, not only ours. Used to
score saved files (validation loss) on a base model loaded once.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import TrainerError
from ..io import safetensors_header  # noqa: F401  (registers io.not_safetensors)
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from .file_kinds import host_delta, module_kind
from .kohya_format import KEY_RE, module_key, sdxl_unet_namer


def module_table(family: str, unet, text_encoders: Sequence, unet_config=None) -> dict[str, torch.nn.Module]:
    """kohya module key → layer, for every Linear/Conv2d of the UNet and text encoders (our save naming)."""
    table: dict[str, torch.nn.Module] = {}
    namer = sdxl_unet_namer(unet_config if unet_config is not None else unet.config) if family == "sdxl" else None
    for name, module in unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            table[module_key("lora_unet", name, namer)] = module
    prefixes = ["lora_te1", "lora_te2"] if family == "sdxl" else ["lora_te"]
    for prefix, te in zip(prefixes, text_encoders):
        for name, module in te.named_modules():
            if isinstance(module, torch.nn.Linear):
                table[module_key(prefix, name)] = module
    return table


def read_lora_modules(path: str) -> dict[str, dict[str, torch.Tensor]]:
    """{module key: {file part: tensor}} of a kohya-format file (``safe_open``: never a pickle); only modules
    the hosts would read (LoRA, LoHa, LoKr)."""
    from safetensors import safe_open

    modules: dict[str, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(path, framework="pt") as fh:
            for key in fh.keys():
                match = KEY_RE.match(key)
                if match:
                    modules.setdefault(f"{match.group(1)}_{match.group(2)}", {})[match.group(3)] = fh.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types
        raise TrainerError(msg("io.not_safetensors", path=path, why=err), msg("lora.file_incomplete")) from None
    return {k: v for k, v in modules.items() if module_kind(v) is not None}


def _conv_args(layer) -> dict | None:
    if isinstance(layer, torch.nn.Conv2d):
        return {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}
    return None


def _hook(down: torch.Tensor, up: torch.Tensor, scale: float, conv: dict | None):
    def hook(module, inputs, output):
        x = inputs[0]
        d, u = down.to(x.device, x.dtype), up.to(x.device, x.dtype)
        if conv is None:
            delta = F.linear(F.linear(x, d), u)
        else:
            delta = F.conv2d(F.conv2d(x, d, **conv), u)
        return output + scale * delta
    return hook


def _weight_hook(delta: torch.Tensor, conv: dict | None):
    def hook(module, inputs, output):
        x = inputs[0]
        d = delta.to(x.device, x.dtype)
        return output + (F.linear(x, d) if conv is None else F.conv2d(x, d, **conv, groups=module.groups))
    return hook


@contextlib.contextmanager
def lora_applied(table: dict[str, torch.nn.Module], path: str, multiplier: float = 1.0) -> Iterator[int]:
    """Apply the file at ``path`` while inside; yields the number of its modules the model lacks."""
    modules = read_lora_modules(path)
    matched = [k for k in modules if k in table]
    if modules and not matched:
        raise TrainerError(msg("lora.no_fit", name=os.path.basename(path), count=len(modules)),
                           msg("lora.no_fit.advice"))
    handles = []
    try:
        for key in matched:
            layer, parts = table[key], modules[key]
            conv = _conv_args(layer)
            if module_kind(parts) != "lora" or "dora_scale" in parts:
                delta = host_delta(parts, layer.weight.detach(), multiplier)
                handles.append(layer.register_forward_hook(_weight_hook(delta, conv)))
                continue
            down, up = parts["lora_down.weight"].float(), parts["lora_up.weight"].float()
            rank = down.shape[0]
            alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
            if conv is None and down.dim() == 4:
                down, up = down.flatten(1), up.flatten(1)
            handles.append(layer.register_forward_hook(_hook(down, up, multiplier * alpha / rank, conv)))
        yield len(modules) - len(matched)
    finally:
        for handle in handles:
            handle.remove()
