"""The two hosts' merge of a kohya-format file into a base model, written from their code (not from ours).

A1111 1.10.1, ``extensions-builtin/Lora``: ``network_lora.py`` / ``network_hada.py`` / ``network_lokr.py``
``calc_updown`` (with ``lyco_helpers.rebuild_conventional`` and ``make_kron``), then ``network.py``
``finalize_updown``: ΔW · calc_scale() (alpha / dim, 1.0 without either; LoKr's dim from ``lokr_w2_b``, else
``lokr_w1_b``), and with ``dora_scale`` ``apply_weight_decompose`` (norm per input column of W + ΔW).
Forge (``backend/patcher/lora.py`` ``merge_lora_to_weight``): the same products, ``alpha = v[2] / dim``
(LoRA's dim from ``lora_down``, LoHa's from ``hada_w1_b``, LoKr's from a split factor, else 1.0), and with
``dora_scale`` ``weight_decompose``: norm per output row of the *original* weight when ``dora_scale``'s first
axis has the output size, else per input column of W + ΔW, plus ``eps``.
"""
from __future__ import annotations

import torch


def _parts_by_module(tensors: dict) -> dict[str, dict]:
    modules: dict[str, dict] = {}
    for key, value in tensors.items():
        module, _, part = key.partition(".")
        modules.setdefault(module, {})[part] = value.float()
    return modules


def a1111_updown(w: dict, orig: torch.Tensor) -> torch.Tensor:
    shape = orig.shape
    if "lora_down.weight" in w:
        up, down = w["lora_up.weight"], w["lora_down.weight"]
        updown = (up.reshape(up.size(0), -1) @ down.reshape(down.size(0), -1)).reshape(
            [up.size(0), down.size(1)] + (list(down.shape[2:]) if down.dim() == 4 else []))
        dim = down.shape[0]
    elif "hada_w1_a" in w:
        out_shape = [w["hada_w1_a"].size(0), w["hada_w1_b"].size(1)]
        updown = ((w["hada_w1_a"] @ w["hada_w1_b"]).reshape(out_shape)
                  * (w["hada_w2_a"] @ w["hada_w2_b"]).reshape(out_shape))
        dim = w["hada_w1_b"].shape[0]
    else:
        w1 = w["lokr_w1"] if "lokr_w1" in w else w["lokr_w1_a"] @ w["lokr_w1_b"]
        w2 = w["lokr_w2"] if "lokr_w2" in w else w["lokr_w2_a"] @ w["lokr_w2_b"]
        dim = w["lokr_w2_b"].shape[0] if "lokr_w2_b" in w else (w["lokr_w1_b"].shape[0] if "lokr_w1_b" in w else None)
        if len(w2.shape) == 4:
            w1 = w1.unsqueeze(2).unsqueeze(2)
        output_shape = list(shape) if len(shape) == 4 else [w1.size(0) * w2.size(0), w1.size(1) * w2.size(1)]
        updown = torch.kron(w1, w2.contiguous()).reshape(output_shape)
    if orig.numel() == updown.numel():
        updown = updown.reshape(shape)
    alpha = float(w["alpha"]) if "alpha" in w else None
    updown = updown * (alpha / dim if dim is not None and alpha is not None else 1.0)
    if "dora_scale" in w:   # apply_weight_decompose
        merged = updown + orig
        norm = (merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1, keepdim=True)
                .reshape(merged.shape[1], *[1] * (len(shape) - 1)).transpose(0, 1))
        updown = merged * (w["dora_scale"] / norm) - orig
    return updown


def forge_merged(w: dict, weight: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    weight = weight.clone()
    if "lora_down.weight" in w:
        mat1, mat2 = w["lora_up.weight"], w["lora_down.weight"]
        alpha = float(w["alpha"]) / mat2.shape[0] if "alpha" in w else 1.0
        diff = torch.mm(mat1.flatten(start_dim=1), mat2.flatten(start_dim=1)).reshape(weight.shape)
    elif "hada_w1_a" in w:
        alpha = float(w["alpha"]) / w["hada_w1_b"].shape[0] if "alpha" in w else 1.0
        diff = (torch.mm(w["hada_w1_a"], w["hada_w1_b"])
                * torch.mm(w["hada_w2_a"], w["hada_w2_b"])).reshape(weight.shape)
    else:
        dim = None
        if "lokr_w1" in w:
            w1 = w["lokr_w1"]
        else:
            dim = w["lokr_w1_b"].shape[0]
            w1 = torch.mm(w["lokr_w1_a"], w["lokr_w1_b"])
        if "lokr_w2" in w:
            w2 = w["lokr_w2"]
        else:
            dim = w["lokr_w2_b"].shape[0]
            w2 = torch.mm(w["lokr_w2_a"], w["lokr_w2_b"])
        if len(w2.shape) == 4:
            w1 = w1.unsqueeze(2).unsqueeze(2)
        alpha = float(w["alpha"]) / dim if "alpha" in w and dim is not None else 1.0
        diff = torch.kron(w1, w2).reshape(weight.shape)
    if "dora_scale" not in w:
        return weight + strength * alpha * diff
    dora_scale = w["dora_scale"]   # weight_decompose
    calc = weight + diff * alpha
    if dora_scale.shape[0] == calc.shape[0]:
        norm = (weight.reshape(weight.shape[0], -1).norm(dim=1, keepdim=True)
                .reshape(weight.shape[0], *[1] * (weight.dim() - 1)))
    else:
        norm = (calc.transpose(0, 1).reshape(calc.shape[1], -1).norm(dim=1, keepdim=True)
                .reshape(calc.shape[1], *[1] * (calc.dim() - 1)).transpose(0, 1))
    norm = norm + torch.finfo(weight.dtype).eps
    calc = calc * (dora_scale / norm)
    return weight + strength * (calc - weight) if strength != 1.0 else calc


@torch.no_grad()
def merge(tensors: dict, table: dict, host: str) -> int:
    """Merge a file's tensors into the modules of ``table`` (kohya key → layer) as ``host`` does; returns the
    number of modules merged."""
    merged = 0
    for key, w in _parts_by_module(tensors).items():
        layer = table[key]
        if host == "a1111":
            layer.weight += a1111_updown(w, layer.weight.float()).to(layer.weight.dtype)
        else:
            layer.weight.copy_(forge_merged(w, layer.weight.float()))
        merged += 1
    return merged
