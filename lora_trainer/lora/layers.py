"""One trained layer of each type: its parameters, its weight change ΔW, and its forward.

peft makes the layers (``LoraConfig`` / ``LoHaConfig`` / ``LoKrConfig``); the forward is ours, so that what
trains is what the hosts apply from the saved file:

* LoRA: ``ΔW = up·down · alpha/rank``.
* LoHa: ``ΔW = (w1a·w1b) ⊙ (w2a·w2b) · alpha/rank`` (A1111 ``network_hada.py``, Forge ``loha``).
* LoKr: ``ΔW = w1 ⊗ w2`` (each factor whole or ``a·b``), times ``alpha/rank`` when a factor is split and 1
  when neither is: the hosts (A1111 ``network_lokr.py``, Forge ``lokr``) take the rank from a split
  factor and use 1 without one, as LyCORIS trains it. peft 0.13 leaves that scale out, later peft puts it
  in always; this forward does not depend on either.
* DoRA (any type): ``W' = (W + ΔW) · m / ‖W + ΔW‖``, the norm per input column, with ``m`` (``dora_scale``,
  shape 1×in) trained: A1111 1.10.1's ``apply_weight_decompose`` and Forge's ``weight_decompose`` for a
  ``dora_scale`` of that shape. (peft's own DoRA normalises per output row, which A1111 does not apply.)

kohya's rank and module dropout act on ΔW's output here (LoRA: on its inner activation, ``network.py``).
"""
from __future__ import annotations

import types

import torch
import torch.nn as nn
import torch.nn.functional as F

ADAPTER = "default"
# per type: the peft parameter containers, in the order they are saved
PARTS = {"lora": ("lora_A", "lora_B"),
         "loha": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"),
         "lokr": ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")}
DORA = "dora_scale"


def is_trained_layer(module: nn.Module) -> bool:
    ranks = getattr(module, "r", None)
    return isinstance(ranks, dict) and ADAPTER in ranks and hasattr(module, "base_layer")


def layer_algo(layer: nn.Module) -> str:
    if hasattr(layer, "hada_w1_a"):
        return "loha"
    if hasattr(layer, "lokr_w1"):
        return "lokr"
    return "lora"


def layer_params(layer: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(part, parameter) of the layer's adapter; LoRA parts are ``lora_A`` / ``lora_B``, DoRA adds ``dora_scale``."""
    out = []
    for part in PARTS[layer_algo(layer)]:
        container = getattr(layer, part, None)
        if container is None or ADAPTER not in container:
            continue
        item = container[ADAPTER]
        out.append((part, item if isinstance(item, nn.Parameter) else item.weight))
    dora = getattr(layer, DORA, None)
    if dora is not None and ADAPTER in dora:
        out.append((DORA, dora[ADAPTER]))
    return out


def layer_alpha(layer: nn.Module) -> float:
    alphas = getattr(layer, "lora_alpha", None) or getattr(layer, "alpha")
    return float(alphas[ADAPTER])


def lokr_split(layer: nn.Module) -> bool:
    """Is a LoKr factor stored as a product (then the hosts scale by alpha/rank)?"""
    return ADAPTER in layer.lokr_w1_a or ADAPTER in layer.lokr_w2_a


def scale_of(layer: nn.Module) -> float:
    """The factor ΔW is trained (and applied by the hosts) with."""
    if layer_algo(layer) == "lokr" and not lokr_split(layer):
        return 1.0
    return layer_alpha(layer) / layer.r[ADAPTER]


def saved_alpha(layer: nn.Module) -> float:
    """The alpha written to the file: the hosts' scale is alpha / rank (whole LoKr factors: rank, scale 1)."""
    if layer_algo(layer) == "lokr" and not lokr_split(layer):
        return float(layer.r[ADAPTER])
    return layer_alpha(layer)


def delta_weight(layer: nn.Module, get=None) -> torch.Tensor:
    """ΔW with its scale, shaped like the base weight; ``get(part)`` gives a part's value (default: the live
    parameter)."""
    values = dict(layer_params(layer))
    get = get or (lambda part: values[part])
    shape = layer.get_base_layer().weight.shape
    algo = layer_algo(layer)
    if algo == "lora":
        down, up = get("lora_A"), get("lora_B")
        delta = (up.flatten(1) @ down.flatten(1)).reshape(shape)
    elif algo == "loha":
        delta = ((get("hada_w1_a") @ get("hada_w1_b")) * (get("hada_w2_a") @ get("hada_w2_b"))).reshape(shape)
    else:
        w1 = get("lokr_w1") if "lokr_w1" in values else get("lokr_w1_a") @ get("lokr_w1_b")
        w2 = get("lokr_w2") if "lokr_w2" in values else get("lokr_w2_a") @ get("lokr_w2_b")
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        delta = torch.kron(w1, w2.contiguous()).reshape(shape)
    return delta * scale_of(layer)


def max_norm_parts(layer: nn.Module) -> list[str]:
    """The two parts that scale ΔW by their product (each gets the square root of a max-norm factor)."""
    algo = layer_algo(layer)
    if algo == "lora":
        return ["lora_A", "lora_B"]
    if algo == "loha":
        return ["hada_w1_a", "hada_w2_a"]
    names = dict(layer_params(layer))
    return ["lokr_w1" if "lokr_w1" in names else "lokr_w1_a", "lokr_w2" if "lokr_w2" in names else "lokr_w2_a"]


def _forward_delta(layer: nn.Module) -> torch.Tensor:
    """ΔW for the forward pass: LoHa through peft's memory-saving product (recomputed in the backward)."""
    if layer_algo(layer) == "loha":
        from peft.tuners.loha.layer import make_weight

        p = dict(layer_params(layer))
        delta = make_weight(p["hada_w1_a"], p["hada_w1_b"], p["hada_w2_a"], p["hada_w2_b"],
                            torch.tensor(scale_of(layer)))
        return delta.reshape(layer.get_base_layer().weight.shape)
    return delta_weight(layer)


def _apply(base: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias=None) -> torch.Tensor:
    if isinstance(base, nn.Conv2d):
        return F.conv2d(x, weight, bias, base.stride, base.padding, base.dilation, base.groups)
    return F.linear(x, weight, bias)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no argument (CUDA only)
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()
    except RuntimeError:  # a device autocast does not know (meta, some plug-in backends): never on there
        return False


is_compiling = getattr(torch.compiler, "is_compiling", None)   # True while torch.compile traces
if is_compiling is None:   # torch < 2.3
    from torch._dynamo import is_compiling


def _match(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x if x.dtype == dtype or _autocast_on(x.device.type) else x.to(dtype)


def _dropped(out: torch.Tensor, settings, conv: bool) -> torch.Tensor:
    """kohya's rank dropout (here per output channel of ΔW, the kept ones rescaled) and module dropout."""
    if settings.rank_dropout:
        shape = [out.shape[0], out.shape[1], 1, 1] if conv else [out.shape[0]] + [1] * (out.dim() - 2) + [out.shape[-1]]
        keep = (torch.rand(shape, device=out.device) > settings.rank_dropout).to(out.dtype)
        out = out * keep / (1.0 - settings.rank_dropout)
    if settings.module_dropout:
        out = out * (torch.rand((), device=out.device) >= settings.module_dropout).to(out.dtype)
    return out


def base_on_tokens(layer: nn.Module, x: torch.Tensor, flatten: bool, *args, **kwargs):
    """The base layer's output and the input it ran on. With ``flatten``, a Linear runs on its (…, features)
    input as one tokens × features matrix: for a 3-d input with a bias ``F.linear`` returns a view, and an
    in-place add to a view makes autograd copy the whole gradient about five times in the backward pass; the
    flat output is no view, and the trained layer's change can be added to it by a matrix product's own
    accumulation (``addmm_``). ``tokens_shaped`` gives the result the input's shape again."""
    if flatten and x.dim() > 2 and isinstance(layer.get_base_layer(), nn.Linear):
        x = x.reshape(-1, x.shape[-1])
    return layer.base_layer(x, *args, **kwargs), x


def tokens_shaped(result: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return result.view(*shape[:-1], result.shape[-1]) if result.dim() < len(shape) else result


def _delta_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """base(x) + ΔW·x for LoHa / LoKr; a Linear's ΔW·x added by the flat matrix's product (``base_on_tokens``)."""
    base = self.get_base_layer()
    settings = getattr(self, "lora_trainer_dropout", None)
    dropped = settings is not None and self.training and bool(settings.rank_dropout or settings.module_dropout)
    shape = x.shape
    result, x = base_on_tokens(self, x, not dropped, *args, **kwargs)   # the dropouts act per sample
    delta = _forward_delta(self)
    x = _match(x, delta.dtype)
    if not dropped and result.dim() == 2 and isinstance(base, nn.Linear) and result.dtype == x.dtype == delta.dtype:
        result.addmm_(x, delta.t())
    else:
        out = _apply(base, x, delta)
        if dropped:
            out = _dropped(out, settings, isinstance(base, nn.Conv2d))
        result.add_(out.to(result.dtype))
    return tokens_shaped(result, shape)


def column_norm(weight: torch.Tensor) -> torch.Tensor:
    """‖W‖ per input column (over the output rows and the kernel), fp32: shape (in,)."""
    return weight.float().transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)


def _dora_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """x through ``(W + ΔW) · m / ‖W + ΔW‖`` (per input column), the base weight included."""
    base = self.get_base_layer()
    delta = _forward_delta(self)
    merged = base.weight.to(delta.dtype) + delta
    view = (1, -1) + (1,) * (merged.dim() - 2)
    magnitude = getattr(self, DORA)[ADAPTER]
    merged = merged * (magnitude.float().reshape(view) / column_norm(merged).reshape(view)).to(merged.dtype)
    bias = base.bias.to(merged.dtype) if base.bias is not None else None
    return _apply(base, _match(x, merged.dtype), merged, bias)


def add_dora(layer: nn.Module) -> None:
    """A trainable magnitude per input column, equal to the base weight's norm (the layer starts unchanged)."""
    weight = layer.get_base_layer().weight
    view = (1, -1) + (1,) * (weight.dim() - 2)
    magnitude = nn.Parameter(column_norm(weight.detach()).reshape(view).to(torch.float32))
    setattr(layer, DORA, nn.ParameterDict({ADAPTER: magnitude}))


def set_forward(layer: nn.Module, lean_lora_forward) -> None:
    """Our forward for the layer's type (``lean_lora_forward`` for plain LoRA)."""
    if getattr(layer, DORA, None) is not None:
        fn = _dora_forward
    elif layer_algo(layer) == "lora":
        fn = lean_lora_forward
    else:
        fn = _delta_forward
    layer.forward = types.MethodType(fn, layer)
