"""Inject the trained layers with peft and give them kohya's training behaviour.

peft supplies the layers (LoRA, LoHa, LoKr); ``layers.py`` their forward and weight change, DoRA's
magnitude included. kohya's extras are added here: dropout on the LoRA's inner neurons, rank dropout
and module dropout (as a forward hook on ``lora_A``, since peft's own ``lora_dropout`` acts on the input
instead; LoHa / LoKr in their forward), and max-norm regularisation (``scale_weight_norms``). Trained
weights are kept in fp32 whatever the base precision. ``NetworkSpec`` says what is injected where:
the type, the default rank and alpha, and per layer (kohya key) another rank and alpha or none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..text.messages import sentence
from . import layers as L
from . import messages  # noqa: F401  (registers the sentences)
from .layers import ADAPTER
from .targets import Target, module_key, sdxl_unet_namer, text_encoder_targets, unet_targets
from .compute_copies import ComputeCopies, layer_scale
from .fused_linear import FUSE, fusable_weights, lora_linears

# (kohya key, target) → (rank, alpha) for that layer, or None: the layer is not trained
LayerChoice = Callable[[str, Target], Optional[tuple]]


@dataclass
class LoraComponent:
    """One model carrying trained layers, and the kohya prefix its keys are saved under."""
    prefix: str                 # lora_unet / lora_te / lora_te1 / lora_te2
    model: nn.Module
    targets: list[Target]
    hooks: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)   # module name → kohya key

    def lora_layers(self) -> Iterator[tuple[str, nn.Module]]:
        for name, module in self.model.named_modules():
            if L.is_trained_layer(module):
                yield name, module


@dataclass
class DropoutSettings:
    network_dropout: float | None = None
    rank_dropout: float | None = None
    module_dropout: float | None = None

    @property
    def active(self) -> bool:
        return any(v for v in (self.network_dropout, self.rank_dropout, self.module_dropout))


@dataclass
class NetworkSpec:
    """What ``build_network`` injects: type (lora / loha / lokr), DoRA, default ranks, per-layer choices."""
    rank: int
    alpha: float
    conv_rank: int | None = None
    conv_alpha: float | None = None
    algo: str = "lora"
    dora: bool = False
    factor: int = -1
    with_conv: bool | None = None            # 3×3 layers as targets (default: when conv_rank is set)
    choose: LayerChoice | None = None        # per-layer rank/alpha (block_dims, a file's ranks)

    def default_for(self, target: Target) -> tuple[int, float]:
        if target.is_conv3x3:
            return int(self.conv_rank or self.rank), float(self.conv_alpha if self.conv_alpha is not None
                                                            else (self.conv_rank or self.alpha))
        return int(self.rank), float(self.alpha)


def _peft_config(spec: NetworkSpec, chosen: dict[str, tuple[int, float]]):
    """peft's config for the chosen layers: the most common rank/alpha as default, the rest by full name."""
    counts: dict[tuple[int, float], int] = {}
    for value in chosen.values():
        counts[value] = counts.get(value, 0) + 1
    rank, alpha = max(counts, key=counts.get)
    rank_pattern = {name: r for name, (r, a) in chosen.items() if r != rank}
    alpha_pattern = {name: a for name, (r, a) in chosen.items() if a != alpha}
    common = dict(target_modules=sorted(chosen), rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
    if spec.algo == "loha":
        from peft import LoHaConfig
        return LoHaConfig(r=rank, alpha=alpha, rank_dropout=0.0, module_dropout=0.0, init_weights=True,
                          use_effective_conv2d=False, **common)
    if spec.algo == "lokr":
        from peft import LoKrConfig
        return LoKrConfig(r=rank, alpha=alpha, rank_dropout=0.0, module_dropout=0.0, init_weights=True,
                          use_effective_conv2d=False, decompose_both=False, decompose_factor=int(spec.factor),
                          **common)
    from peft import LoraConfig
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", init_lora_weights=True, **common)


def inject(model: nn.Module, prefix: str, targets: list[Target], spec: NetworkSpec,
           namer=None, generator: torch.Generator | None = None) -> LoraComponent:
    """Add the trained layers to ``model`` (frozen); their parameters are fp32 and trainable. ``generator``:
    their random starting values are drawn from it (``draw_initial_weights``)."""
    from peft import inject_adapter_in_model

    model.requires_grad_(False)
    chosen: dict[str, tuple[int, float]] = {}
    keys: dict[str, str] = {}
    for target in targets:
        key = module_key(prefix, target.name, namer)
        value = spec.choose(key, target) if spec.choose is not None else spec.default_for(target)
        if value is not None and int(value[0]) > 0:
            chosen[target.name] = (int(value[0]), float(value[1]))
            keys[target.name] = key
    if not chosen:
        raise ValueError(sentence("lora.no_targets", model=type(model).__name__))
    inject_adapter_in_model(_peft_config(spec, chosen), model, ADAPTER)
    component = LoraComponent(prefix, model, [t for t in targets if t.name in chosen], keys=keys)
    for _, layer in component.lora_layers():
        if spec.dora:
            L.add_dora(layer)
        for _, param in L.layer_params(layer):
            param.data = param.data.to(torch.float32)
            param.requires_grad_(True)
        if generator is not None:
            draw_initial_weights(layer, generator)
    return component


def _lean_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """base(x) + scale·B(A(x)) for our single adapter, without peft's generic bookkeeping.

    peft's forward also casts the input to the LoRA weights' fp32 (a copy of every
    activation) and loops over adapters; under autocast neither is needed. The LoRA output
    is added in place: the frozen base layer's backward does not need its own output. A
    Linear runs on its tokens as one matrix (``layers.base_on_tokens``) and the up-projection
    is added by that matrix's own product, the scale as its alpha: the LoRA output is never
    written and read back. In bf16 the up-projection's compute copy holds the scale
    (``compute_copies``), which then is 1 here. A plain Linear whose weights share the input's
    precision runs as one autograd function (``fused_linear``), which gives the input one gradient."""
    weights = None if args or kwargs else fusable_weights(self, x)
    if weights is not None:
        return lora_linears(x, [weights], [layer_scale(self)])[0]
    lora_a, lora_b, scale = self.lora_A[ADAPTER], self.lora_B[ADAPTER], layer_scale(self)
    shape = x.shape
    result, flat = L.base_on_tokens(self, x, True, *args, **kwargs)
    if not (lora_a._forward_hooks or lora_a._forward_pre_hooks):   # kohya's dropouts act per sample
        x = flat
    if x.dtype != lora_a.weight.dtype and not L._autocast_on(x.device.type):
        x = x.to(lora_a.weight.dtype)
    down = lora_a(x)
    if (result.dim() == 2 and isinstance(lora_b, nn.Linear) and lora_b.bias is None and not lora_b._forward_hooks
            and result.dtype == down.dtype == lora_b.weight.dtype):
        result.addmm_(down if down.dim() == 2 else down.reshape(-1, down.shape[-1]), lora_b.weight.t(), alpha=scale)
    else:   # a convolution, or under autocast (fp32 LoRA weights, half-precision activations)
        up = lora_b(down)
        result.add_(up if up.dim() == result.dim() else up.reshape(result.shape), alpha=scale)
    return L.tokens_shaped(result, shape)


def fused_projections(x: torch.Tensor, layers) -> Optional[list[torch.Tensor]]:
    """The outputs of ``layers``, which all read ``x`` (an attention's query, key and value), through one
    autograd function (``fused_linear``); None when one of them must run on its own (it is not a plain LoRA
    layer with our forward, has hooks, or ``fusable_weights`` finds it cannot)."""
    weights = []
    for layer in layers:
        if (getattr(layer.forward, "__func__", None) is not _lean_forward or layer._forward_hooks
                or layer._forward_pre_hooks):
            return None
        weights.append(fusable_weights(layer, x))
        if weights[-1] is None:
            return None
    return lora_linears(x, weights, [layer_scale(layer) for layer in layers])


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


class LoraNetwork(ComputeCopies):
    """All trained components of a run (UNet and/or text encoders); their fp32 masters and half-precision
    compute copies are ``ComputeCopies``'."""

    def __init__(self, components: list[LoraComponent], dropout: DropoutSettings | None = None) -> None:
        self.components = components
        self.dropout = dropout or DropoutSettings()
        self.masters: dict[nn.Parameter, nn.Parameter] = {}  # compute weight → fp32 master (if split)
        self.folded: dict[nn.Parameter, float] = {}
        self.lean_forward = True
        self.notes: list[str] = []   # what the user should know about how it was built (network_setup)
        for comp, _, layer in self.modules():
            if L.layer_algo(layer) != "lora" or getattr(layer, L.DORA, None) is not None:
                layer.lora_trainer_dropout = self.dropout   # applied in their forward
            elif self.dropout.active:
                lora_a = layer.lora_A[ADAPTER]
                comp.hooks.append(lora_a.register_forward_hook(_dropout_hook(self.dropout, layer.r[ADAPTER])))
        self.set_lean_forward(True)

    @property
    def algo(self) -> str:
        return next((L.layer_algo(layer) for _, _, layer in self.modules()), "lora")

    @property
    def dora(self) -> bool:
        return any(getattr(layer, L.DORA, None) is not None for _, _, layer in self.modules())

    def set_lean_forward(self, enabled: bool) -> None:
        """Use our forward (default) or, for plain LoRA layers, peft's own (the benchmark's baseline, which
        scales the up-projection's output itself)."""
        self.lean_forward = enabled
        if not enabled:
            self.fold_scales(False)
        for _, _, layer in self.modules():
            if enabled or L.layer_algo(layer) != "lora" or getattr(layer, L.DORA, None) is not None:
                L.set_forward(layer, _lean_forward)
            elif "forward" in layer.__dict__:
                del layer.forward

    def fuse_linears(self, enabled: bool) -> None:
        """Run plain LoRA Linears as one autograd function where they can (default), or through autograd
        (the benchmark's comparison)."""
        for _, _, layer in self.modules():
            setattr(layer, FUSE, enabled)

    def component(self, prefix: str) -> LoraComponent | None:
        return next((c for c in self.components if c.prefix == prefix), None)

    def parameters(self, prefixes: tuple[str, ...] | None = None) -> list[nn.Parameter]:
        params = []
        for comp in self.components:
            if prefixes is None or comp.prefix in prefixes:
                for _, layer in comp.lora_layers():
                    params += [p for _, p in L.layer_params(layer)]
        return params

    def layer_key(self, comp: LoraComponent, name: str) -> str:
        return comp.keys.get(name) or module_key(comp.prefix, name)

    def param_groups(self, unet_lr: float, text_encoder_lr: float,
                     block_weight: Callable[[str], float] | None = None) -> list[dict]:
        """Optimizer groups: the UNet's (by kohya block when ``block_weight`` gives a layer key's learning-rate
        weight; weight 0: left out) and the text encoders'."""
        groups = []
        te = self.optimizer_parameters(("lora_te", "lora_te1", "lora_te2"))
        if block_weight is None:
            unet = self.optimizer_parameters(("lora_unet",))
            if unet:
                groups.append({"params": unet, "lr": unet_lr, "name": "unet"})
        else:
            by_weight: dict[float, list] = {}
            for comp, name, layer in self.modules():
                if comp.prefix == "lora_unet":
                    weight = float(block_weight(self.layer_key(comp, name)))
                    by_weight.setdefault(weight, []).extend(self.masters.get(p, p) for _, p in L.layer_params(layer))
            for weight, params in sorted(by_weight.items(), key=lambda kv: -kv[0]):
                if weight > 0:
                    groups.append({"params": params, "lr": unet_lr * weight,
                                   "name": "unet" if weight == 1.0 else f"unet_x{weight:g}"})
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
            for part, param in L.layer_params(layer):
                out[f"{comp.prefix}/{name}.{part}"] = self.master(param).detach().clone()
        return out

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = set()
        with torch.no_grad():
            for comp, name, layer in self.modules():
                for part, weight in L.layer_params(layer):
                    key = f"{comp.prefix}/{name}.{part}"
                    expected.add(key)
                    if key not in state or state[key].shape != weight.shape:
                        raise KeyError(key)
                    self.master(weight).copy_(state[key].to(weight.device, torch.float32))
            self.masters_to_compute()
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
            masters = {part: self.master(param) for part, param in L.layer_params(layer)}
            delta = L.delta_weight(layer, masters.__getitem__)
            norm = delta.norm().clamp(min=max_norm / 2)
            ratio = norm.clamp(max=max_norm) / norm
            factor = ratio.sqrt()
            for part in L.max_norm_parts(layer):
                masters[part].mul_(factor)
            norms.append(norm * ratio)
            scaled.append(ratio < 1 - 1e-6)  # a module already at the cap is not "scaled"
        self.masters_to_compute()
        if not norms:
            zero = torch.zeros(())
            return zero, zero, zero
        stacked = torch.stack(norms)
        return torch.stack(scaled).sum(), stacked.mean(), stacked.max()


@torch.no_grad()
def draw_initial_weights(layer: nn.Module, generator: torch.Generator) -> None:
    """Draw the layer's random starting values again, from ``generator``, as peft drew them from torch's global
    generator: kaiming-uniform with a = √5, i.e. uniform in ±1/√fan_in; the parts peft starts at zero stay zero.
    In a WebUI other threads (a checkpoint being loaded builds its modules with random values) draw from the
    global generator at the same time, so a seed alone did not fix a run's starting LoRA."""
    for part, weight in L.layer_params(layer):
        if part == L.DORA or not torch.count_nonzero(weight):
            continue
        bound = 1.0 / math.sqrt(weight.shape[1] * math.prod(weight.shape[2:]))   # fan_in, as torch.nn.init's
        # drawn on the CPU (the generator's device), whichever device the layer is on
        weight.copy_(torch.empty(weight.shape, dtype=weight.dtype).uniform_(-bound, bound, generator=generator))


def build_network(family: str, unet: nn.Module | None, text_encoders: list[nn.Module],
                  spec: NetworkSpec | None = None, dropout: DropoutSettings | None = None, *, rank: int = 4,
                  alpha: float = 4.0, conv_rank: int | None = None, conv_alpha: float | None = None,
                  unet_config=None, seed: int | None = None) -> LoraNetwork:
    """Inject the trained layers into the UNet (if given) and each text encoder (if given), with kohya prefixes.
    Without ``spec``: a LoRA of ``rank`` / ``alpha`` (LoCon with ``conv_rank``). ``seed``: the starting values
    come from a generator of their own seeded with it (else from torch's global one, as peft draws them)."""
    spec = spec or NetworkSpec(rank, alpha, conv_rank, conv_alpha)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    components = []
    if unet is not None:
        with_conv = spec.conv_rank is not None if spec.with_conv is None else spec.with_conv
        namer = sdxl_unet_namer(unet_config if unet_config is not None else unet.config) if family == "sdxl" else None
        components.append(inject(unet, "lora_unet", unet_targets(unet, with_conv), spec, namer, generator))
    if text_encoders:
        prefixes = ["lora_te1", "lora_te2"] if family == "sdxl" else ["lora_te"]
        for prefix, te in zip(prefixes, text_encoders):
            try:
                components.append(inject(te, prefix, text_encoder_targets(te), spec, generator=generator))
            except ValueError:
                if spec.choose is None:
                    raise   # a chosen set (a file's layers) may leave an encoder out
    return LoraNetwork(components, dropout)
