"""Inject LoRA layers with peft and give them kohya's training behaviour.

peft supplies the layers; kohya's extras are added here: dropout on the LoRA's inner
neurons, rank dropout and module dropout (as a forward hook on ``lora_A``, since peft's
own ``lora_dropout`` acts on the input instead), and max-norm regularisation
(``scale_weight_norms``). LoRA weights are kept in fp32 whatever the base precision.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .targets import Target, text_encoder_targets, unet_targets

ADAPTER = "default"


@dataclass
class LoraComponent:
    """One model carrying LoRA layers, and the kohya prefix its keys are saved under."""
    prefix: str                 # lora_unet / lora_te / lora_te1 / lora_te2
    model: nn.Module
    targets: list[Target]
    hooks: list = field(default_factory=list)

    def lora_layers(self) -> Iterator[tuple[str, nn.Module]]:
        for name, module in self.model.named_modules():
            lora_a = getattr(module, "lora_A", None)
            if isinstance(lora_a, nn.ModuleDict) and ADAPTER in lora_a:
                yield name, module


@dataclass
class DropoutSettings:
    network_dropout: float | None = None
    rank_dropout: float | None = None
    module_dropout: float | None = None

    @property
    def active(self) -> bool:
        return any(v for v in (self.network_dropout, self.rank_dropout, self.module_dropout))


def _lora_config(targets: list[Target], rank: int, alpha: float, conv_rank: int | None,
                 conv_alpha: float | None):
    from peft import LoraConfig

    rank_pattern, alpha_pattern = {}, {}
    for t in targets:
        if t.is_conv3x3:
            leaf = t.name.rsplit(".", 1)[-1]
            rank_pattern[leaf] = int(conv_rank)
            alpha_pattern[leaf] = float(conv_alpha if conv_alpha is not None else conv_rank)
    return LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, bias="none",
                      init_lora_weights=True, target_modules=[t.name for t in targets],
                      rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)


def inject(model: nn.Module, prefix: str, targets: list[Target], rank: int, alpha: float,
           conv_rank: int | None = None, conv_alpha: float | None = None) -> LoraComponent:
    """Add LoRA layers to ``model`` (frozen); LoRA parameters are fp32 and trainable."""
    from peft import inject_adapter_in_model

    model.requires_grad_(False)
    if not targets:
        raise ValueError(f"no LoRA target layers found in {type(model).__name__}")
    inject_adapter_in_model(_lora_config(targets, rank, alpha, conv_rank, conv_alpha), model, ADAPTER)
    component = LoraComponent(prefix, model, targets)
    for _, layer in component.lora_layers():
        for sub in (layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]):
            sub.to(torch.float32)
            sub.requires_grad_(True)
    return component


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no argument (CUDA only)
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def _lean_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """base(x) + scale·B(A(x)) for our single adapter, without peft's generic bookkeeping.

    peft's forward also casts the input to the LoRA weights' fp32 (a copy of every
    activation) and loops over adapters; under autocast neither is needed. The LoRA output
    is added in place: the frozen base layer's backward does not need its own output."""
    result = self.base_layer(x, *args, **kwargs)
    lora_a = self.lora_A[ADAPTER]
    if x.dtype != lora_a.weight.dtype and not _autocast_on(x.device.type):
        x = x.to(lora_a.weight.dtype)
    return result.add_(self.lora_B[ADAPTER](lora_a(x)), alpha=self.scaling[ADAPTER])


def _dropout_hook(settings: DropoutSettings, rank: int):
    """Forward hook on lora_A: kohya's neuron, rank and module dropout on the inner activation."""
    def hook(module: nn.Module, inputs, lx: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return lx
        if settings.network_dropout:
            lx = F.dropout(lx, p=settings.network_dropout)
        if settings.rank_dropout:
            shape = [lx.shape[0], rank] + [1] * (lx.dim() - 2)
            if lx.dim() == 3:  # (batch, tokens, rank)
                shape = [lx.shape[0], 1, rank]
            keep = (torch.rand(shape, device=lx.device) > settings.rank_dropout).to(lx.dtype)
            lx = lx * keep / (1.0 - settings.rank_dropout)  # as if the rank had shrunk
        if settings.module_dropout:
            # skip the whole module with this probability, decided on the device (no host sync)
            keep = (torch.rand((), device=lx.device) >= settings.module_dropout).to(lx.dtype)
            lx = lx * keep
        return lx
    return hook


class LoraNetwork:
    """All LoRA components of a run (UNet and/or text encoders)."""

    def __init__(self, components: list[LoraComponent], dropout: DropoutSettings | None = None) -> None:
        self.components = components
        self.dropout = dropout or DropoutSettings()
        self.masters: dict[nn.Parameter, nn.Parameter] = {}  # compute weight → fp32 master (if split)
        if self.dropout.active:
            for comp in components:
                for _, layer in comp.lora_layers():
                    lora_a = layer.lora_A[ADAPTER]
                    comp.hooks.append(lora_a.register_forward_hook(_dropout_hook(self.dropout, layer.r[ADAPTER])))
        self.set_lean_forward(True)

    def set_lean_forward(self, enabled: bool) -> None:
        """Use the lean LoRA forward (default) or peft's own (the benchmark's baseline)."""
        for _, _, layer in self.modules():
            if enabled:
                layer.forward = types.MethodType(_lean_forward, layer)
            elif "forward" in layer.__dict__:
                del layer.forward

    def component(self, prefix: str) -> LoraComponent | None:
        return next((c for c in self.components if c.prefix == prefix), None)

    def parameters(self, prefixes: tuple[str, ...] | None = None) -> list[nn.Parameter]:
        params = []
        for comp in self.components:
            if prefixes is None or comp.prefix in prefixes:
                for _, layer in comp.lora_layers():
                    params += [layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight]
        return params

    # --- fp32 masters for bf16/fp16 compute weights ---------------------------------------
    def use_compute_dtype(self, dtype: torch.dtype) -> None:
        """Compute with ``dtype`` copies of the LoRA weights; the optimizer keeps fp32 masters.

        Under autocast an fp32 weight is cast to bf16 on every use and its gradient cast back:
        two extra kernels per weight per step. With bf16 copies that work is one batched copy of
        all gradients to the masters and one of the masters back after the optimizer step."""
        if dtype == torch.float32 or self.masters:
            return
        for p in self.parameters():
            master = nn.Parameter(p.detach().float().clone())
            p.data = p.data.to(dtype)
            self.masters[p] = master

    @torch.no_grad()
    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """Switch the compute copies' precision; fp32 makes them share the masters' storage
        (the plain fp32-weights-under-autocast setup the benchmark's baseline measures)."""
        for p, master in self.masters.items():
            p.data = master.data if dtype == torch.float32 else master.data.to(dtype)

    def master(self, weight: nn.Parameter) -> torch.Tensor:
        """The fp32 value of a LoRA weight (its master when compute copies are used)."""
        return self.masters.get(weight, weight)

    def optimizer_parameters(self, prefixes: tuple[str, ...] | None = None) -> list[nn.Parameter]:
        return [self.masters.get(p, p) for p in self.parameters(prefixes)]

    @torch.no_grad()
    def grads_to_masters(self) -> None:
        """The compute copies' gradients into fp32 gradients of the masters.

        Missing master gradients are views into one new buffer: one large allocation, which
        reuses the memory the backward pass has just freed, where a tensor per weight would each
        come from the allocator's separate pool of small blocks and add to the reserved memory
        (0.3 GB at SDXL rank 32)."""
        if not self.masters:
            return
        pairs, missing = [], []
        for p, master in self.masters.items():
            if p.grad is None:
                master.grad = None  # unused this step: no stale gradient may be applied
                continue
            if master.grad is None:
                missing.append(master)
            pairs.append((master, p.grad))
            p.grad = None
        if missing:
            flat = torch.empty(sum(m.numel() for m in missing), dtype=missing[0].dtype, device=missing[0].device)
            offset = 0
            for master in missing:   # overwritten below; no fill kernel
                master.grad = flat[offset:offset + master.numel()].view_as(master)
                offset += master.numel()
        if pairs:
            torch._foreach_copy_([m.grad for m, _ in pairs], [g for _, g in pairs])

    @torch.no_grad()
    def masters_to_compute(self) -> None:
        if self.masters:
            torch._foreach_copy_(list(self.masters.keys()), list(self.masters.values()))

    def param_groups(self, unet_lr: float, text_encoder_lr: float) -> list[dict]:
        groups = []
        unet = self.optimizer_parameters(("lora_unet",))
        te = self.optimizer_parameters(("lora_te", "lora_te1", "lora_te2"))
        if unet:
            groups.append({"params": unet, "lr": unet_lr, "name": "unet"})
        if te:
            groups.append({"params": te, "lr": text_encoder_lr, "name": "text_encoder"})
        return groups

    def modules(self) -> Iterator[tuple[LoraComponent, str, nn.Module]]:
        for comp in self.components:
            for name, layer in comp.lora_layers():
                yield comp, name, layer

    def num_modules(self) -> int:
        return sum(1 for _ in self.modules())

    # --- training state (peft names, fp32) ------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        out = {}
        for comp, name, layer in self.modules():
            out[f"{comp.prefix}/{name}.lora_A"] = self.master(layer.lora_A[ADAPTER].weight).detach().clone()
            out[f"{comp.prefix}/{name}.lora_B"] = self.master(layer.lora_B[ADAPTER].weight).detach().clone()
        return out

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = set()
        with torch.no_grad():
            for comp, name, layer in self.modules():
                for part, weight in (("lora_A", layer.lora_A[ADAPTER].weight),
                                     ("lora_B", layer.lora_B[ADAPTER].weight)):
                    key = f"{comp.prefix}/{name}.{part}"
                    expected.add(key)
                    if key not in state or state[key].shape != weight.shape:
                        raise KeyError(key)
                    weight.copy_(state[key].to(weight.device, weight.dtype))
                    if weight in self.masters:
                        self.masters[weight].copy_(state[key].to(weight.device, torch.float32))
        extra = set(state) - expected
        if extra:
            raise KeyError(sorted(extra)[0])

    # --- max-norm regularisation (kohya's scale_weight_norms) ----------------------------
    @torch.no_grad()
    def apply_max_norm(self, max_norm: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scale down modules whose ΔW norm exceeds ``max_norm``.

        Returns (modules scaled, mean norm, max norm) as device tensors: reading them is the
        caller's choice (a host sync)."""
        norms, scaled = [], []
        for _, _, layer in self.modules():
            down = self.master(layer.lora_A[ADAPTER].weight)
            up = self.master(layer.lora_B[ADAPTER].weight)
            scale = layer.scaling[ADAPTER]
            if down.dim() == 4 and down.shape[2:] != (1, 1):
                delta = F.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)
            else:
                delta = up.flatten(1) @ down.flatten(1)
            norm = (delta * scale).norm().clamp(min=max_norm / 2)
            ratio = norm.clamp(max=max_norm) / norm
            factor = ratio.sqrt()
            down.mul_(factor)
            up.mul_(factor)
            norms.append(norm * ratio)
            scaled.append(ratio < 1 - 1e-6)  # a module already at the cap is not "scaled"
        self.masters_to_compute()
        if not norms:
            zero = torch.zeros(())
            return zero, zero, zero
        stacked = torch.stack(norms)
        return torch.stack(scaled).sum(), stacked.mean(), stacked.max()


def build_network(family: str, unet: nn.Module | None, text_encoders: list[nn.Module], *, rank: int,
                  alpha: float, conv_rank: int | None = None, conv_alpha: float | None = None,
                  dropout: DropoutSettings | None = None) -> LoraNetwork:
    """Inject LoRA into the UNet (if given) and each text encoder (if given), with kohya prefixes."""
    components = []
    if unet is not None:
        components.append(inject(unet, "lora_unet", unet_targets(unet, conv_rank is not None), rank, alpha,
                                 conv_rank, conv_alpha))
    if text_encoders:
        prefixes = ["lora_te1", "lora_te2"] if family == "sdxl" else ["lora_te"]
        for prefix, te in zip(prefixes, text_encoders):
            components.append(inject(te, prefix, text_encoder_targets(te), rank, alpha))
    return LoraNetwork(components, dropout)
