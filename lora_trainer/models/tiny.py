"""Tiny SD1 / SD2 / SDXL models built from config, for the demo and the tests.

They keep each family's architecture (block types, attention layout, projections, SDXL's
text-time embedding and two text encoders of different widths) at a few MB per model, use the
real CLIP tokenizer, and work at 64×64 px (8×8 latents, VAE scale factor 8 like the real VAEs).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import ldm_keys
from .tokenizers import load_clip_tokenizers

CONFIG_DIRS = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}
CONFIG_FILES = {"model_index": "model_index.json", "unet": "unet/config.json", "vae": "vae/config.json",
                "text_encoder": "text_encoder/config.json", "text_encoder_2": "text_encoder_2/config.json",
                "scheduler": "scheduler/scheduler_config.json"}
SHIPPED_CONFIGS = Path(__file__).parent / "configs"
METADATA_KEY = "lora_trainer.diffusers_config"
RESOLUTION = 64

_VAE = {
    "act_fn": "silu", "block_out_channels": [16, 16, 32, 32], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "layers_per_block": 1, "norm_num_groups": 8, "sample_size": RESOLUTION,
}
_UNET = {
    "act_fn": "silu", "block_out_channels": [16, 32], "center_input_sample": False, "downsample_padding": 1,
    "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "out_channels": 4, "mid_block_scale_factor": 1,
    "norm_eps": 1e-05, "norm_num_groups": 8, "sample_size": RESOLUTION // 8,
}
_CLIP = {
    "vocab_size": 49408, "max_position_embeddings": 77, "num_hidden_layers": 2, "num_attention_heads": 2,
    "layer_norm_eps": 1e-05, "attention_dropout": 0.0, "dropout": 0.0, "initializer_factor": 1.0,
    "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}


def tiny_configs(family: str) -> dict:
    """Component configs (plain dicts) of the tiny model of ``family``."""
    if family == "sd1":
        unet = {**_UNET, "layers_per_block": 2, "cross_attention_dim": 24, "attention_head_dim": 4,
                "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
        tes = [{**_CLIP, "hidden_size": 24, "intermediate_size": 48, "hidden_act": "quick_gelu", "projection_dim": 24}]
        vae = {**_VAE, "scaling_factor": 0.18215}
    elif family == "sd2":
        unet = {**_UNET, "layers_per_block": 1, "cross_attention_dim": 24, "attention_head_dim": [2, 4],
                "use_linear_projection": True, "upcast_attention": True,
                "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
        tes = [{**_CLIP, "hidden_size": 24, "intermediate_size": 48, "hidden_act": "gelu", "projection_dim": 16}]
        vae = {**_VAE, "scaling_factor": 0.18215}
    elif family == "sdxl":
        unet = {**_UNET, "layers_per_block": 2, "cross_attention_dim": 16 + 24, "attention_head_dim": [2, 4],
                "transformer_layers_per_block": [1, 2], "use_linear_projection": True,
                "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
                "projection_class_embeddings_input_dim": 16 + 6 * 8,
                "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"]}
        tes = [{**_CLIP, "hidden_size": 16, "intermediate_size": 32, "hidden_act": "quick_gelu", "projection_dim": 16},
               {**_CLIP, "hidden_size": 24, "intermediate_size": 48, "hidden_act": "gelu", "projection_dim": 16}]
        vae = {**_VAE, "scaling_factor": 0.13025, "force_upcast": True}
    else:
        raise ValueError(f"unknown family {family!r}")  # internal: tiny test models
    scheduler = _read(SHIPPED_CONFIGS / CONFIG_DIRS[family] / "scheduler" / "scheduler_config.json")
    return {"unet": unet, "vae": vae, "text_encoders": tes, "scheduler": scheduler}


def build_tiny_components(family: str, seed: int = 0) -> dict:
    """Randomly initialised tiny models: unet, vae, text_encoder(s), tokenizer(s), scheduler."""
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = tiny_configs(family)
    sched_cfg = dict(cfg["scheduler"])
    sched_cls = getattr(diffusers, sched_cfg.pop("_class_name"))
    out = {"scheduler": sched_cls.from_config(sched_cfg)}
    te_classes = [CLIPTextModel, CLIPTextModelWithProjection]
    toks = load_clip_tokenizers(family)
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        out["unet"] = UNet2DConditionModel(**cfg["unet"])
        out["vae"] = AutoencoderKL(**cfg["vae"])
        for i, te_cfg in enumerate(cfg["text_encoders"]):
            suffix = "" if i == 0 else f"_{i + 1}"
            out["text_encoder" + suffix] = te_classes[i](CLIPTextConfig(**te_cfg))
            out["tokenizer" + suffix] = toks[i]
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in out:
            out[name].eval()
    return out


def text_encoders_of(components: dict) -> list:
    return [components[k] for k in ("text_encoder", "text_encoder_2") if k in components]


def diffusers_configs(components: dict, family: str) -> dict:
    """The diffusers config-dir content of ``components`` as JSON-able dicts (see ``write_config_dir``)."""
    index = _read(SHIPPED_CONFIGS / CONFIG_DIRS[family] / "model_index.json")
    out = {"family": family, "model_index": index,
           "unet": _plain(components["unet"].config), "vae": _plain(components["vae"].config),
           "scheduler": _plain(components["scheduler"].config)}
    for name, te in zip(("text_encoder", "text_encoder_2"), text_encoders_of(components)):
        out[name] = json.loads(te.config.to_json_string())
    return out


def write_config_dir(configs: dict, folder: str | os.PathLike) -> Path:
    """Materialise ``diffusers_configs`` output as a diffusers config folder (no weights)."""
    root = Path(folder)
    for name, rel in CONFIG_FILES.items():
        value = configs.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"config '{name}' is not a JSON object")  # internal: configs our tiny models wrote
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value, indent=2), encoding="utf-8")
    return root


def save_single_file(components: dict, path: str | os.PathLike, family: str, dtype=torch.float32) -> Path:
    """Write ``components`` as an original-layout (A1111-loadable) ``.safetensors`` (or ``.ckpt``) checkpoint.

    The diffusers configs go into the metadata (``lora_trainer.diffusers_config``; a string entry
    of that name in a .ckpt) so that ``load_base_model`` can rebuild tiny architectures offline.
    """
    unet = components["unet"]
    sd = ldm_keys.diffusers_to_original(
        unet.state_dict(), components["vae"].state_dict(),
        [te.state_dict() for te in text_encoders_of(components)], family, unet.config)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous() for k, v in sd.items()}
    configs = json.dumps(diffusers_configs(components, family))
    from ..io.atomic import atomic_write

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as tmp:
        if target.suffix.lower() == ".safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(tmp), metadata={"format": "pt", METADATA_KEY: configs})
        else:  # .ckpt: the configs ride along as a string entry beside "state_dict"
            torch.save({"state_dict": tensors, METADATA_KEY: configs}, str(tmp))
    return target


def _plain(config) -> dict:
    return json.loads(json.dumps(dict(config), default=_jsonable))


def _jsonable(value):
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
