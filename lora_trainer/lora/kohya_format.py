"""kohya-format LoRA files: the keys and metadata A1111, Forge, ComfyUI and diffusers load.

Keys: ``<prefix>_<module path with "_">.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` for LoRA,
``.hada_w1_a`` … for LoHa, ``.lokr_w1`` … for LoKr, ``.dora_scale`` with DoRA (``file_kinds.py``); the
``ss_*`` metadata is written from the settings' schema (``config.metadata``).
SD1.x/SD2.x UNet paths use diffusers' names (as kohya writes them); SDXL UNet paths use
the original SGM names (``input_blocks_4_1_…``), as kohya's SDXL trainer writes them.
"""
from __future__ import annotations

import json
import re
from typing import Any

import torch

from ..text.messages import sentence
from . import layers as L
from . import messages  # noqa: F401  (registers the sentences)
from .file_kinds import ALL_PARTS, FILE_PART, KIND_NAMES, module_kind, module_rank
from .network import ADAPTER, LoraNetwork  # noqa: F401  (ADAPTER: re-exported)
from .targets import module_key, sdxl_unet_namer  # noqa: F401  (the names files use, re-exported)

KEY_RE = re.compile(r"^(lora_unet|lora_te|lora_te1|lora_te2)_([A-Za-z0-9_]+)\.("
                    + "|".join(re.escape(p) for p in ALL_PARTS) + r")$")
SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}
REQUIRED_METADATA = ("ss_output_name", "ss_base_model_version", "ss_v2", "modelspec.architecture",
                     "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_sd_model_name",
                     "ss_resolution", "ss_num_train_images", "ss_num_reg_images", "ss_epoch", "ss_steps",
                     "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer",
                     "ss_lr_scheduler", "ss_training_started_at", "ss_tag_frequency", "ss_clip_skip")


def kohya_state_dict(network: LoraNetwork, family: str, save_precision: str = "fp16",
                     unet_config: Any = None) -> dict[str, torch.Tensor]:
    """The network's weights under kohya keys, in the save precision, on the CPU."""
    dtype = SAVE_DTYPES[save_precision]
    namer = sdxl_unet_namer(unet_config) if family == "sdxl" else None
    out: dict[str, torch.Tensor] = {}
    for comp, name, layer in network.modules():
        key = module_key(comp.prefix, name, namer)
        if key + ".alpha" in out:
            raise ValueError(f"two LoRA modules map to the same key {key}")  # internal: a naming bug of ours
        for part, param in L.layer_params(layer):
            out[f"{key}.{FILE_PART[part]}"] = network.master(param).detach().to("cpu", dtype).contiguous()
        out[key + ".alpha"] = torch.tensor(L.saved_alpha(layer), dtype=dtype)
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
            problems.append(sentence("lora.unexpected_key", name=key))
            continue
        modules.setdefault(f"{match.group(1)}_{match.group(2)}", {})[match.group(3)] = value
    ranks = set()
    for name, parts in modules.items():
        kind = module_kind(parts)
        if kind is None:
            problems.append(sentence("lora.module_no_kind", name=name, parts=", ".join(sorted(parts))))
            continue
        if "alpha" not in parts:
            problems.append(sentence("lora.no_alpha", name=name))
        elif parts["alpha"].numel() != 1:
            problems.append(sentence("lora.alpha_not_single", name=name))
        problems += _shape_problems(name, kind, parts)
        rank = module_rank(parts)
        if rank is not None:
            ranks.add(rank)
        if not all(torch.isfinite(v.float()).all() for v in parts.values()):
            problems.append(sentence("lora.not_finite", name=name))
    if not modules:
        problems.append(sentence("lora.no_modules"))
    if metadata is not None:
        problems += [sentence("lora.metadata_lacks", name=key) for key in missing_metadata(metadata)]
        if "ss_network_dim" in metadata and ranks and metadata["ss_network_dim"].isdigit() \
                and int(metadata["ss_network_dim"]) not in ranks:
            problems.append(sentence("lora.dim_mismatch", dim=metadata["ss_network_dim"], ranks=sorted(ranks)))
        if "ss_tag_frequency" in metadata:
            try:
                json.loads(metadata["ss_tag_frequency"])
            except ValueError:
                problems.append(sentence("lora.tag_frequency"))
    return problems


def _shape_problems(name: str, kind: str, parts: dict) -> list[str]:
    problems = []
    if kind == "lora":
        down, up = parts["lora_down.weight"], parts["lora_up.weight"]
        if up.shape[1] != down.shape[0]:
            problems.append(sentence("lora.rank_mismatch", name=name, up=up.shape[1], down=down.shape[0]))
        if down.dim() == 4 and up.shape[2:] != (1, 1):
            problems.append(sentence("lora.conv_up", name=name))
        if down.dim() not in (2, 4) or down.dim() != up.dim():
            problems.append(sentence("lora.shapes", name=name, down=tuple(down.shape), up=tuple(up.shape)))
    elif kind == "loha":
        w1a, w1b, w2a, w2b = (parts[p] for p in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"))
        if w1a.shape[1] != w1b.shape[0] or w2a.shape[1] != w2b.shape[0] or w1a.shape[0] != w2a.shape[0] \
                or w1b.shape[1:] != w2b.shape[1:]:
            problems.append(sentence("lora.loha_shapes", name=name,
                                     shapes=[tuple(p.shape) for p in (w1a, w1b, w2a, w2b)]))
    dora = parts.get("dora_scale")
    if dora is not None and (dora.dim() not in (2, 4) or dora.shape[0] != 1):
        problems.append(sentence("lora.dora_shape", name=name, shape=tuple(dora.shape)))
    return problems


def summarize(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Modules per prefix, types, ranks and alphas: what ``inspect`` prints."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        match = KEY_RE.match(key)
        if match:
            modules.setdefault(f"{match.group(1)}_{match.group(2)}", {})[match.group(3)] = value
    per_prefix: dict[str, int] = {}
    kinds: dict[str, int] = {}
    ranks: dict[int, int] = {}
    alphas: dict[float, int] = {}
    conv = dora = 0
    for name, parts in modules.items():
        kind = module_kind(parts)
        if kind is None:
            continue
        prefix = KEY_RE.match(f"{name}.alpha").group(1)
        per_prefix[prefix] = per_prefix.get(prefix, 0) + 1
        kinds[KIND_NAMES[kind]] = kinds.get(KIND_NAMES[kind], 0) + 1
        rank = module_rank(parts)
        if rank is not None:
            ranks[rank] = ranks.get(rank, 0) + 1
        if "alpha" in parts:
            a = round(float(parts["alpha"]), 4)
            alphas[a] = alphas.get(a, 0) + 1
        down = parts.get("lora_down.weight")
        conv += int(down is not None and down.dim() == 4 and down.shape[2:] != (1, 1))
        dora += int("dora_scale" in parts)
    return {"modules": per_prefix, "kinds": kinds, "ranks": ranks, "alphas": alphas, "conv3x3_modules": conv,
            "dora_modules": dora}
