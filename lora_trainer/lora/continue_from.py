"""Continue training from a kohya-format file (``network_weights``, ``dim_from_weights``).

Any LoRA, LoHa or LoKr file of the base model's family (ours, kohya's, LyCORIS's, one from the WebUI's
Lora folder) is a starting point: its layers are loaded into a new network, which then trains with its
own optimizer, learning rate and dataset. With ``dim_from_weights`` the network is built from the file
(its layers, each with its rank and alpha); without, the settings build it and the file must fit it.
Whatever does not fit is listed by kind, with a count, an example layer and the setting that fixes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..errors import TrainerError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from . import layers as L
from .file_hooks import read_lora_modules
from .file_kinds import KIND_NAMES, PEFT_PART, describe_kinds, module_alpha, module_kind, module_rank

FAMILY_NAMES = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}


@dataclass
class NetworkFile:
    path: str
    modules: dict[str, dict[str, torch.Tensor]]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def kinds(self) -> set[str]:
        return {module_kind(p) for p in self.modules.values()}

    @property
    def dora(self) -> bool:
        return any("dora_scale" in p for p in self.modules.values())

    def prefixes(self) -> set[str]:
        return {key.split("_")[0] + "_" + key.split("_")[1] for key in self.modules}


def read_network_file(path: str) -> NetworkFile:
    from safetensors import safe_open

    modules = read_lora_modules(path)
    try:
        with safe_open(path, framework="pt") as fh:
            metadata = fh.metadata() or {}
    except Exception:  # read_lora_modules has already said why a file is unreadable
        metadata = {}
    if not modules:
        raise TrainerError(msg("weights.empty", name=os.path.basename(path)), msg("weights.empty.advice"))
    return NetworkFile(path, modules, metadata)


def check_kind(nf: NetworkFile, algo: str, dora: bool) -> list[str]:
    """The file's type against the chosen network type."""
    problems = []
    kinds = nf.kinds
    if len(kinds) > 1:
        problems.append(sentence("weights.mixed", name=nf.name, kinds=describe_kinds(nf.modules)))
    elif kinds != {algo}:
        found = next(iter(kinds))
        problems.append(sentence("weights.kind", name=nf.name, kind=KIND_NAMES[found], algo=algo, found=found))
    if nf.dora != dora:
        problems.append(sentence("weights.dora" if nf.dora else "weights.no_dora", name=nf.name))
    return problems


def check_parts(nf: NetworkFile, train_unet: bool, train_text_encoder: bool) -> list[str]:
    """What the run would drop: the file's text-encoder (or UNet) layers when that part is not trained."""
    problems = []
    te = [k for k in nf.modules if not k.startswith("lora_unet_")]
    unet = [k for k in nf.modules if k.startswith("lora_unet_")]
    if te and not train_text_encoder:
        problems.append(sentence("weights.te_dropped", name=nf.name, count=len(te)))
    if unet and not train_unet:
        problems.append(sentence("weights.unet_dropped", name=nf.name, count=len(unet)))
    return problems


def file_choice(nf: NetworkFile, default_rank: int):
    """dim_from_weights: each layer of the file with its rank and alpha; layers the file lacks are left out."""
    def choose(key, target):
        parts = nf.modules.get(key)
        if parts is None:
            return None
        rank = module_rank(parts) or int(default_rank)   # a LoKr of whole factors: any rank keeps them whole
        alpha = module_alpha(parts)
        return rank, float(alpha if alpha is not None and module_rank(parts) else rank)
    return choose


def _group(problems: dict[str, list[str]], kind: str, key: str) -> None:
    problems.setdefault(kind, []).append(key)


def fit_problems(nf: NetworkFile, network, model_keys: set[str], family: str,
                 file_family: str | None) -> tuple[list[str], list[str]]:
    """(problems, notes): the file's layers against the network's, grouped by what differs."""
    if file_family and file_family != family:
        return [sentence("weights.family", name=nf.name, trained=FAMILY_NAMES.get(file_family, file_family),
                         base=FAMILY_NAMES.get(family, family))], []
    layers = {network.layer_key(comp, name): layer for comp, name, layer in network.modules()}
    found: dict[str, list[str]] = {}
    for key, parts in nf.modules.items():
        layer = layers.get(key)
        if layer is None:
            _group(found, "model" if key not in model_keys else "untrained", key)
            continue
        params = dict(L.layer_params(layer))
        for part, value in parts.items():
            name = PEFT_PART.get(part)
            if name is None:
                continue
            if name not in params:
                _group(found, "structure", key)
                break
            if params[name].numel() != value.numel():
                _group(found, "rank" if module_rank(parts) != layer.r[L.ADAPTER] else "structure", key)
                break
        else:
            alpha = module_alpha(parts)
            if alpha is not None and module_rank(parts) and abs(alpha - L.saved_alpha(layer)) > 1e-3 * max(1.0, alpha):
                _group(found, "alpha", key)
    return _messages(nf, found, layers, family), _notes(nf, layers)


def _example(keys: list[str]):
    return msg("weights.example_many" if len(keys) > 1 else "weights.example_one", count=len(keys), layer=keys[0])


def _messages(nf: NetworkFile, found: dict[str, list[str]], layers: dict, family: str) -> list[str]:
    out = []
    if "model" in found:
        out.append(sentence("weights.other_family", name=nf.name, example=_example(found["model"]),
                            family=FAMILY_NAMES.get(family, family)))
    if "untrained" in found:
        keys = found["untrained"]
        conv = any(nf.modules[k].get("lora_down.weight") is not None and nf.modules[k]["lora_down.weight"].dim() == 4
                   and nf.modules[k]["lora_down.weight"].shape[2:] != (1, 1) for k in keys)
        out.append(sentence("weights.untrained_conv" if conv else "weights.untrained", name=nf.name,
                            example=_example(keys)))
    if "rank" in found:
        key = found["rank"][0]
        file_rank, ours = module_rank(nf.modules[key]), layers[key].r[L.ADAPTER]
        out.append(sentence("weights.rank", file_rank=file_rank, ours=ours, example=_example(found["rank"])))
    if "alpha" in found:
        key = found["alpha"][0]
        out.append(sentence("weights.alpha", file_alpha=module_alpha(nf.modules[key]),
                            ours=L.saved_alpha(layers[key]), example=_example(found["alpha"])))
    if "structure" in found:
        out.append(sentence("weights.structure", name=nf.name, example=_example(found["structure"])))
    return out


def _notes(nf: NetworkFile, layers: dict) -> list[str]:
    fresh = [k for k in layers if k not in nf.modules]
    if not fresh:
        return []
    return [sentence("weights.fresh", count=len(fresh), name=nf.name, layer=fresh[0])]


@torch.no_grad()
def load_into(nf: NetworkFile, network) -> int:
    """Copy the file's values into the network's layers (masters too); returns the number of layers loaded."""
    loaded = 0
    for comp, name, layer in network.modules():
        parts = nf.modules.get(network.layer_key(comp, name))
        if parts is None:
            continue
        params = dict(L.layer_params(layer))
        for part, value in parts.items():
            target = params.get(PEFT_PART.get(part, ""))
            if target is None:
                continue
            value = value.to(target.device, torch.float32).reshape(target.shape)
            network.master(target).copy_(value)
        loaded += 1
    network.masters_to_compute()
    return loaded
