"""Diffusers ↔ original (LDM / SGM) key layout of SD checkpoints.

The tables are built from the model config (block count, layers per block, which blocks have
attention), so they work for the real models and the tiny ones alike. Used to *write*
single-file checkpoints; reading them is left to diffusers' ``from_single_file``.
"""
from __future__ import annotations

import torch

from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TE_PREFIXES = {
    "sd1": ["cond_stage_model.transformer."],
    "sd2": ["cond_stage_model.model."],
    "sdxl": ["conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."],
}

# ResNet block internals: diffusers name -> original name.
_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _cfg(config, name, default=None):
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def unet_module_map(unet_config) -> dict[str, tuple[str, dict]]:
    """Diffusers UNet module path -> (original module path, renames of its direct children)."""
    down_types = list(_cfg(unet_config, "down_block_types"))
    up_types = list(_cfg(unet_config, "up_block_types"))
    n = len(down_types)
    lpb = _cfg(unet_config, "layers_per_block", 2)
    layers = list(lpb) if isinstance(lpb, (list, tuple)) else [lpb] * n
    up_layers = list(reversed(layers))
    table = {k: (v, {}) for k, v in _UNET_FIXED.items()}

    idx = 1
    for i in range(n):
        for j in range(layers[i]):
            table[f"down_blocks.{i}.resnets.{j}"] = (f"input_blocks.{idx}.0", _UNET_RESNET)
            table[f"down_blocks.{i}.attentions.{j}"] = (f"input_blocks.{idx}.1", {})
            idx += 1
        if i < n - 1:
            table[f"down_blocks.{i}.downsamplers.0.conv"] = (f"input_blocks.{idx}.0.op", {})
            idx += 1

    table["mid_block.resnets.0"] = ("middle_block.0", _UNET_RESNET)
    table["mid_block.attentions.0"] = ("middle_block.1", {})
    table["mid_block.resnets.1"] = ("middle_block.2", _UNET_RESNET)

    idx = 0
    for i in range(n):
        has_attn = "CrossAttn" in up_types[i]
        for j in range(up_layers[i] + 1):
            table[f"up_blocks.{i}.resnets.{j}"] = (f"output_blocks.{idx}.0", _UNET_RESNET)
            table[f"up_blocks.{i}.attentions.{j}"] = (f"output_blocks.{idx}.1", {})
            idx += 1
        if i < n - 1:
            table[f"up_blocks.{i}.upsamplers.0"] = (f"output_blocks.{idx - 1}.{2 if has_attn else 1}", {})
    return table


def vae_module_map(num_blocks: int, layers_per_block: int = 2) -> dict[str, tuple[str, dict]]:
    """Diffusers AutoencoderKL module path -> (original module path, renames of its direct children)."""
    table = {"encoder.conv_norm_out": ("encoder.norm_out", {}), "decoder.conv_norm_out": ("decoder.norm_out", {})}
    for same in ("encoder.conv_in", "encoder.conv_out", "decoder.conv_in", "decoder.conv_out",
                 "quant_conv", "post_quant_conv"):
        table[same] = (same, {})
    for side in ("encoder", "decoder"):
        table[f"{side}.mid_block.resnets.0"] = (f"{side}.mid.block_1", _VAE_RESNET)
        table[f"{side}.mid_block.resnets.1"] = (f"{side}.mid.block_2", _VAE_RESNET)
        table[f"{side}.mid_block.attentions.0"] = (f"{side}.mid.attn_1", _VAE_ATTN)
    for i in range(num_blocks):
        for j in range(layers_per_block):
            table[f"encoder.down_blocks.{i}.resnets.{j}"] = (f"encoder.down.{i}.block.{j}", _VAE_RESNET)
        table[f"encoder.down_blocks.{i}.downsamplers.0.conv"] = (f"encoder.down.{i}.downsample.conv", {})
        k = num_blocks - 1 - i  # the original decoder counts its levels from the bottom
        for j in range(layers_per_block + 1):
            table[f"decoder.up_blocks.{i}.resnets.{j}"] = (f"decoder.up.{k}.block.{j}", _VAE_RESNET)
        table[f"decoder.up_blocks.{i}.upsamplers.0.conv"] = (f"decoder.up.{k}.upsample.conv", {})
    return table


def rename_key(key: str, table: dict[str, tuple[str, dict]]) -> str:
    """A diffusers key -> its original-layout key, through the longest module path of ``table``
    that prefixes it (``unet_module_map`` / ``vae_module_map``). Unknown keys raise KeyError."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        hit = table.get(".".join(parts[:cut]))
        if hit is None:
            continue
        new_prefix, children = hit
        rest = ".".join(parts[cut:])
        for old, new in children.items():
            if rest == old or rest.startswith(old + "."):
                rest = new + rest[len(old):]
                break
        return f"{new_prefix}.{rest}"
    raise KeyError(sentence("models.no_original_name", name=key))


def unet_to_original(unet_sd: dict, unet_config) -> dict:
    """Diffusers UNet state dict -> original keys (without the ``model.diffusion_model.`` prefix)."""
    table = unet_module_map(unet_config)
    return {rename_key(k, table): v for k, v in unet_sd.items()}


def vae_to_original(vae_sd: dict) -> dict:
    """Diffusers AutoencoderKL state dict -> original keys (without ``first_stage_model.``)."""
    blocks = [int(k.split(".")[2]) for k in vae_sd if k.startswith(("decoder.up_blocks.", "encoder.down_blocks."))]
    resnets = [int(k.split(".")[4]) for k in vae_sd if k.startswith("encoder.down_blocks.") and ".resnets." in k]
    table = vae_module_map(max(blocks, default=-1) + 1, max(resnets, default=1) + 1)
    out = {}
    for k, v in vae_sd.items():
        new = rename_key(k, table)
        if ".mid.attn_1." in new and new.endswith("weight") and v.ndim == 2:
            v = v.reshape(*v.shape, 1, 1)  # linear -> 1x1 conv, as the original VAE has it
        out[new] = v
    return out


def _hf_clip_keys(te_sd: dict) -> dict:
    """transformers >= 5.6 drops the ``text_model.`` level of CLIPTextModel: put it back."""
    return {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v for k, v in te_sd.items()}


def clip_to_original(te_sd: dict) -> dict:
    """HF CLIPTextModel (SD1, SDXL encoder 1) -> original keys (HF names, below the embedder prefix)."""
    return {k: v for k, v in _hf_clip_keys(te_sd).items() if not k.startswith("text_projection")}


_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}


def open_clip_to_original(te_sd: dict) -> dict:
    """HF CLIPTextModel(WithProjection) (SD2, SDXL encoder 2) -> OpenCLIP keys.

    q/k/v are fused into ``attn.in_proj_*``; ``text_projection`` is stored transposed. SD2's
    diffusers encoder has no projection and 23 of OpenCLIP-H's 24 layers (SD2 conditions on the
    penultimate layer): the layers present are written, plus an identity ``text_projection``
    placeholder (readers take the hidden width from its shape).
    """
    sd = _hf_clip_keys(te_sd)
    out = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k == "text_model.embeddings.position_ids":
            continue
        if k == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = v
        elif k == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = v
        elif k.startswith("text_model.final_layer_norm."):
            out["ln_final." + k.rsplit(".", 1)[1]] = v
        elif k == "text_projection.weight":
            out["text_projection"] = v.t().contiguous()
        elif k.startswith("text_model.encoder.layers."):
            i, rest = k[len("text_model.encoder.layers."):].split(".", 1)
            base = f"transformer.resblocks.{i}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                _, proj, kind = rest.split(".")
                fused.setdefault(f"{base}attn.in_proj_{kind}", {})[proj[0]] = v
                continue
            for old, new in _OPEN_CLIP_LAYER.items():
                if rest.startswith(old + "."):
                    rest = new + rest[len(old):]
                    break
            else:
                raise KeyError(f"unexpected text-encoder key: {k}")  # internal: tiny models only
            out[base + rest] = v
        else:
            raise KeyError(f"unexpected text-encoder key: {k}")  # internal: tiny models only
    for name, parts in fused.items():
        out[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    if "text_projection" not in out:
        width = out["positional_embedding"].shape[-1]
        out["text_projection"] = torch.eye(width, dtype=out["positional_embedding"].dtype)
    return out


def diffusers_to_original(unet_sd: dict, vae_sd: dict, te_sds: list, family: str, unet_config) -> dict:
    """Full single-file (original layout) state dict from diffusers component state dicts.

    ``te_sds`` holds one text-encoder state dict (sd1, sd2) or two (sdxl: CLIP-L, then OpenCLIP-bigG).
    """
    if family not in TE_PREFIXES:
        raise ValueError(f"unknown family {family!r}")  # internal: our code passes the family
    if len(te_sds) != len(TE_PREFIXES[family]):
        raise ValueError(  # internal: our code passes the text encoders
            f"{family} needs {len(TE_PREFIXES[family])} text encoder(s), got {len(te_sds)}")
    out = {UNET_PREFIX + k: v for k, v in unet_to_original(unet_sd, unet_config).items()}
    out.update({VAE_PREFIX + k: v for k, v in vae_to_original(vae_sd).items()})
    for prefix, te_sd in zip(TE_PREFIXES[family], te_sds):
        convert = open_clip_to_original if prefix.endswith(".model.") else clip_to_original
        out.update({prefix + k: v for k, v in convert(te_sd).items()})
    return out
