"""kohya-format LoRA files: the keys and metadata A1111, Forge, ComfyUI and diffusers load.

Keys: ``<prefix>_<module path with "_">.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``.
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
BASE_MODEL_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
ARCHITECTURE = {"sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-768-v/lora",
                "sdxl": "stable-diffusion-xl-v1-base/lora"}
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


def build_metadata(*, cfg, family: str, model_name: str, num_train_images: int, num_reg_images: int,
                   epoch: int, steps: int, training_started_at: float, tag_frequency: dict,
                   extra: dict | None = None) -> dict[str, str]:
    """``ss_*`` and ``modelspec.*`` metadata (all values are strings, as safetensors requires)."""
    net = cfg.network_kwargs()
    width, height = cfg.resolution_wh
    meta = {
        "ss_output_name": cfg.output_name,
        "ss_base_model_version": BASE_MODEL_VERSION[family],
        "ss_v2": str(family == "sd2"),
        "ss_v_parameterization": str(bool(cfg.v_parameterization)),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": ARCHITECTURE[family],
        "modelspec.implementation": "https://github.com/kohya-ss/sd-scripts",
        "modelspec.title": cfg.output_name,
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(cfg.network_dim),
        "ss_network_alpha": f"{cfg.network_alpha:g}",
        "ss_network_args": json.dumps({k: str(v) for k, v in net.items() if v is not None}),
        "ss_sd_model_name": model_name,
        "ss_resolution": f"({width}, {height})",
        "ss_num_train_images": str(num_train_images),
        "ss_num_reg_images": str(num_reg_images),
        "ss_epoch": str(epoch),
        "ss_steps": str(steps),
        "ss_num_epochs": str(cfg.max_train_epochs or ""),
        "ss_batch_size_per_device": str(cfg.train_batch_size),
        "ss_gradient_accumulation_steps": str(cfg.gradient_accumulation_steps),
        "ss_learning_rate": f"{cfg.learning_rate:g}",
        "ss_unet_lr": f"{cfg.effective_unet_lr:g}",
        "ss_text_encoder_lr": f"{cfg.effective_text_encoder_lr:g}",
        "ss_optimizer": cfg.optimizer_type + (f"({','.join(cfg.optimizer_args)})" if cfg.optimizer_args else ""),
        "ss_lr_scheduler": cfg.lr_scheduler,
        "ss_lr_warmup_steps": f"{cfg.lr_warmup_steps:g}",
        "ss_mixed_precision": cfg.mixed_precision,
        "ss_max_grad_norm": f"{cfg.max_grad_norm:g}",
        "ss_min_snr_gamma": "" if cfg.min_snr_gamma is None else f"{cfg.min_snr_gamma:g}",
        "ss_noise_offset": "" if cfg.noise_offset is None else f"{cfg.noise_offset:g}",
        "ss_network_dropout": "" if cfg.network_dropout is None else f"{cfg.network_dropout:g}",
        "ss_scale_weight_norms": "" if cfg.scale_weight_norms is None else f"{cfg.scale_weight_norms:g}",
        "ss_seed": str(cfg.seed),
        "ss_keep_tokens": str(cfg.keep_tokens),
        "ss_shuffle_caption": str(cfg.shuffle_caption),
        "ss_caption_dropout_rate": f"{cfg.caption_dropout_rate:g}",
        "ss_prior_loss_weight": f"{cfg.prior_loss_weight:g}",
        "ss_enable_bucket": str(cfg.enable_bucket),
        "ss_training_started_at": f"{training_started_at:.3f}",
        "ss_tag_frequency": json.dumps(tag_frequency, ensure_ascii=False),
        "ss_clip_skip": str(cfg.clip_skip) if cfg.clip_skip else "None",
        "ss_training_comment": cfg.training_comment,
        "ss_network_train_unet_only": str(cfg.network_train_unet_only),
        "ss_network_train_text_encoder_only": str(cfg.network_train_text_encoder_only),
    }
    if family == "sdxl":
        meta["modelspec.resolution"] = f"{width}x{height}"
    if extra:
        meta.update({k: str(v) for k, v in extra.items()})
    return meta


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
