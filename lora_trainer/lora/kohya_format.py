"""kohya-format LoRA files: the keys and metadata A1111, Forge, ComfyUI and diffusers load.

Keys: ``<prefix>_<module path with "_">.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``; the
``ss_*`` metadata is written from the settings' schema (``config.metadata``).
SD1.x/SD2.x UNet paths use diffusers' names (as kohya writes them); SDXL UNet paths use
the original SGM names (``input_blocks_4_1_…``), as kohya's SDXL trainer writes them.
"""
from __future__ import annotations

import json
import re
from typing import Any

import torch

from .network import ADAPTER, LoraNetwork

KEY_RE = re.compile(r"^(lora_unet|lora_te|lora_te1|lora_te2)_([A-Za-z0-9_]+)\.(lora_down\.weight|lora_up\.weight|alpha)$")
SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}
REQUIRED_METADATA = ("ss_output_name", "ss_base_model_version", "ss_v2", "modelspec.architecture",
                     "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_sd_model_name",
                     "ss_resolution", "ss_num_train_images", "ss_num_reg_images", "ss_epoch", "ss_steps",
                     "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer",
                     "ss_lr_scheduler", "ss_training_started_at", "ss_tag_frequency", "ss_clip_skip")


def sdxl_unet_namer(unet_config: Any):
    """diffusers UNet module path → SGM module path (``down_blocks.1.attentions.0`` → ``input_blocks.4.1``)."""
    from ..models.ldm_keys import rename_key, unet_module_map

    table = unet_module_map(unet_config)
    return lambda name: rename_key(name + ".weight", table)[: -len(".weight")]


def module_key(prefix: str, module_name: str, sdxl_namer=None) -> str:
    """kohya module key for a module of the UNet or a text encoder."""
    if prefix == "lora_unet" and sdxl_namer is not None:
        module_name = sdxl_namer(module_name)
    elif prefix != "lora_unet" and not module_name.startswith("text_model."):
        module_name = "text_model." + module_name  # transformers 5 dropped the text_model level
    return f"{prefix}_{module_name.replace('.', '_')}"


def kohya_state_dict(network: LoraNetwork, family: str, save_precision: str = "fp16",
                     unet_config: Any = None) -> dict[str, torch.Tensor]:
    """The network's weights under kohya keys, in the save precision, on the CPU."""
    dtype = SAVE_DTYPES[save_precision]
    namer = sdxl_unet_namer(unet_config) if family == "sdxl" else None
    out: dict[str, torch.Tensor] = {}
    for comp, name, layer in network.modules():
        key = module_key(comp.prefix, name, namer)
        if key + ".alpha" in out:
            raise ValueError(f"two LoRA modules map to the same key {key}")
        down, up = network.master(layer.lora_A[ADAPTER].weight), network.master(layer.lora_B[ADAPTER].weight)
        out[key + ".lora_down.weight"] = down.detach().to("cpu", dtype).contiguous()
        out[key + ".lora_up.weight"] = up.detach().to("cpu", dtype).contiguous()
        out[key + ".alpha"] = torch.tensor(float(layer.lora_alpha[ADAPTER]), dtype=dtype)
    return out


def missing_metadata(metadata: dict[str, str]) -> list[str]:
    """Metadata keys this trainer always writes but the file lacks (files from other trainers may)."""
    return [key for key in REQUIRED_METADATA if key not in metadata]


def check_lora_state(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> list[str]:
    """Problems that would stop a host from loading the file correctly; empty when fine.

    With ``metadata`` it also checks that every field this trainer writes is there."""
    problems: list[str] = []
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        match = KEY_RE.match(key)
        if not match:
            problems.append(f"unexpected key {key}")
            continue
        modules.setdefault(f"{match.group(1)}_{match.group(2)}", {})[match.group(3)] = value
    ranks = set()
    for name, parts in modules.items():
        missing = {"lora_down.weight", "lora_up.weight", "alpha"} - set(parts)
        if missing:
            problems.append(f"{name} lacks {', '.join(sorted(missing))}")
            continue
        down, up, alpha = parts["lora_down.weight"], parts["lora_up.weight"], parts["alpha"]
        rank = down.shape[0]
        ranks.add(rank)
        if alpha.numel() != 1:
            problems.append(f"{name}.alpha is not a single number")
        if up.shape[1] != rank:
            problems.append(f"{name}: lora_up has rank {up.shape[1]}, lora_down {rank}")
        if down.dim() == 4 and up.shape[2:] != (1, 1):
            problems.append(f"{name}: conv lora_up must be 1×1")
        if down.dim() not in (2, 4) or down.dim() != up.dim():
            problems.append(f"{name}: lora_down {tuple(down.shape)} and lora_up {tuple(up.shape)} do not fit")
        if not (torch.isfinite(down.float()).all() and torch.isfinite(up.float()).all()):
            problems.append(f"{name} holds NaN or infinite values")
    if not modules:
        problems.append("the file holds no LoRA modules")
    if metadata is not None:
        problems += [f"metadata lacks {key}" for key in missing_metadata(metadata)]
        if "ss_network_dim" in metadata and ranks and metadata["ss_network_dim"].isdigit() \
                and int(metadata["ss_network_dim"]) not in ranks:
            problems.append(f"metadata ss_network_dim={metadata['ss_network_dim']} but the ranks are {sorted(ranks)}")
        if "ss_tag_frequency" in metadata:
            try:
                json.loads(metadata["ss_tag_frequency"])
            except ValueError:
                problems.append("metadata ss_tag_frequency is not JSON")
    return problems


def summarize(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Modules per prefix, ranks and alphas: what ``inspect`` prints."""
    per_prefix: dict[str, int] = {}
    ranks: dict[int, int] = {}
    alphas: dict[float, int] = {}
    conv = 0
    for key, value in tensors.items():
        match = KEY_RE.match(key)
        if not match:
            continue
        if match.group(3) == "lora_down.weight":
            per_prefix[match.group(1)] = per_prefix.get(match.group(1), 0) + 1
            ranks[value.shape[0]] = ranks.get(value.shape[0], 0) + 1
            conv += int(value.dim() == 4 and value.shape[2:] != (1, 1))
        elif match.group(3) == "alpha":
            a = round(float(value), 4)
            alphas[a] = alphas.get(a, 0) + 1
    return {"modules": per_prefix, "ranks": ranks, "alphas": alphas, "conv3x3_modules": conv}
