"""What a module's tensors in a kohya-format file are: its type (LoRA, LoHa, LoKr; DoRA or not), rank,
alpha, and the weight change the hosts apply from them.

Part names are the keys' suffixes after the module key, as A1111 (``extensions-builtin/Lora``) and Forge
read them: ``lora_down.weight`` / ``lora_up.weight``; ``hada_w1_a`` … ``hada_w2_b``; ``lokr_w1`` (or
``lokr_w1_a`` / ``lokr_w1_b``) and ``lokr_w2`` (or ``_a`` / ``_b``); ``alpha``; ``dora_scale``.
``host_delta`` is A1111 1.10.1's ``calc_updown`` + ``finalize_updown`` at weight 1 (Forge's
``merge_lora_to_weight`` is the same for these files); the tests check both hosts' formulas separately.
"""
from __future__ import annotations

import torch

from ..errors import TrainerError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)

# peft part (layers.PARTS) → file part
FILE_PART = {"lora_A": "lora_down.weight", "lora_B": "lora_up.weight", "dora_scale": "dora_scale",
             **{p: p for p in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "lokr_w1", "lokr_w1_a",
                               "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")}}
PEFT_PART = {v: k for k, v in FILE_PART.items()}
OTHER_PARTS = ("alpha", "lora_mid.weight", "hada_t1", "hada_t2", "lokr_t2")
ALL_PARTS = tuple(FILE_PART.values()) + OTHER_PARTS
KIND_NAMES = {"lora": "LoRA", "loha": "LoHa", "lokr": "LoKr"}


def module_kind(parts: dict) -> str | None:
    """lora / loha / lokr from the parts present (as the hosts decide), None when none fits."""
    if "lora_down.weight" in parts and "lora_up.weight" in parts:
        return "lora"
    if all(p in parts for p in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")):
        return "loha"
    has_1 = "lokr_w1" in parts or ("lokr_w1_a" in parts and "lokr_w1_b" in parts)
    has_2 = "lokr_w2" in parts or ("lokr_w2_a" in parts and "lokr_w2_b" in parts)
    return "lokr" if has_1 and has_2 else None


def module_rank(parts: dict) -> int | None:
    """The rank the hosts divide alpha by (None: a LoKr of whole factors, scale 1)."""
    kind = module_kind(parts)
    if kind == "lora":
        return int(parts["lora_down.weight"].shape[0])
    if kind == "loha":
        return int(parts["hada_w1_b"].shape[0])
    if kind == "lokr":
        for part in ("lokr_w2_b", "lokr_w1_b"):
            if part in parts:
                return int(parts[part].shape[0])
    return None


def module_alpha(parts: dict) -> float | None:
    return float(parts["alpha"]) if "alpha" in parts else None


def module_scale(parts: dict) -> float:
    """alpha / rank, or 1 without either (A1111's ``calc_scale``)."""
    rank, alpha = module_rank(parts), module_alpha(parts)
    return alpha / rank if rank and alpha is not None else 1.0


def describe_kinds(modules: dict[str, dict]) -> str:
    """'LoHa', 'LoRA + DoRA', 'LoRA (LoCon)', … for a whole file."""
    kinds = {module_kind(p) for p in modules.values()} - {None}
    names = [KIND_NAMES[k] for k in ("lora", "loha", "lokr") if k in kinds]
    text = " / ".join(names) or "unknown"
    if any(p.get("lora_down.weight") is not None and p["lora_down.weight"].dim() == 4
           and p["lora_down.weight"].shape[2:] != (1, 1) for p in modules.values()):
        text += " (LoCon)"
    if any("dora_scale" in p for p in modules.values()):
        text += " + DoRA"
    return text


def raw_delta(parts: dict, shape: torch.Size) -> torch.Tensor:
    """ΔW before scale and DoRA, shaped like the layer's weight (fp32)."""
    kind = module_kind(parts)
    if any(p in parts for p in ("lora_mid.weight", "hada_t1", "hada_t2", "lokr_t2")):
        raise TrainerError(msg("lora.tucker"), msg("lora.tucker.advice"))
    f = {k: v.float() for k, v in parts.items() if isinstance(v, torch.Tensor)}
    if kind == "lora":
        return (f["lora_up.weight"].flatten(1) @ f["lora_down.weight"].flatten(1)).reshape(shape)
    if kind == "loha":
        return ((f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"])).reshape(shape)
    if kind == "lokr":
        w1 = f["lokr_w1"] if "lokr_w1" in f else f["lokr_w1_a"] @ f["lokr_w1_b"]
        w2 = f["lokr_w2"] if "lokr_w2" in f else f["lokr_w2_a"] @ f["lokr_w2_b"]
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2).reshape(shape)
    raise TrainerError(msg("lora.no_kind", parts=", ".join(sorted(parts))))


def host_delta(parts: dict, weight: torch.Tensor, multiplier: float = 1.0) -> torch.Tensor:
    """The change A1111 makes to ``weight`` at this multiplier: ΔW·scale, with DoRA per input column."""
    weight = weight.float()
    delta = raw_delta(parts, weight.shape) * module_scale(parts)
    if "dora_scale" in parts:
        merged = weight + delta
        norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1, keepdim=True)
        norm = norm.reshape(merged.shape[1], *[1] * (merged.dim() - 1)).transpose(0, 1)
        delta = merged * (parts["dora_scale"].float() / norm) - weight
    return delta * multiplier
