"""Tiny models: small, deterministic, and shaped like their families."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

pytest.importorskip("diffusers")

import torch

from lora_trainer.models.tiny import (RESOLUTION, build_tiny_components, diffusers_configs, save_single_file,
                                      tiny_configs, write_config_dir)


def _mb(model):
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tiny_components(family):
    c = build_tiny_components(family, seed=3)
    names = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    if family == "sdxl":
        names |= {"text_encoder_2", "tokenizer_2"}
    assert set(c) == names
    for name in names - {"tokenizer", "tokenizer_2", "scheduler"}:
        assert _mb(c[name]) < 5.0, name
    assert all(len(c[t]) == 49408 for t in names if t.startswith("tokenizer"))
    vae_factor = 2 ** (len(c["vae"].config.block_out_channels) - 1)
    assert vae_factor == 8 and c["unet"].config.sample_size * vae_factor == RESOLUTION
    te = c["text_encoder"].config
    assert c["unet"].config.cross_attention_dim == (te.hidden_size + c["text_encoder_2"].config.hidden_size
                                                    if family == "sdxl" else te.hidden_size)
    with torch.no_grad():  # latents of a 64 px image are 8x8
        lat = c["vae"].encode(torch.zeros(1, 3, RESOLUTION, RESOLUTION)).latent_dist.mean
    assert lat.shape == (1, 4, 8, 8)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = build_tiny_components(family, seed=3)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched
    assert torch.equal(next(again["unet"].parameters()), next(c["unet"].parameters()))
    assert not torch.equal(next(build_tiny_components(family, seed=4)["unet"].parameters()),
                           next(c["unet"].parameters()))


def test_family_traits():
    sd1, sd2, xl = (tiny_configs(f) for f in ("sd1", "sd2", "sdxl"))
    assert not sd1["unet"].get("use_linear_projection") and sd1["text_encoders"][0]["hidden_act"] == "quick_gelu"
    assert sd2["unet"]["use_linear_projection"] and sd2["unet"]["upcast_attention"]
    assert sd2["text_encoders"][0]["hidden_act"] == "gelu" and sd2["scheduler"]["prediction_type"] == "v_prediction"
    assert xl["unet"]["addition_embed_type"] == "text_time" and xl["unet"]["transformer_layers_per_block"] == [1, 2]
    widths = [te["hidden_size"] for te in xl["text_encoders"]]
    assert widths[0] != widths[1]  # diffusers tells the SDXL encoders apart by width
    assert xl["unet"]["projection_class_embeddings_input_dim"] == (
        xl["text_encoders"][1]["projection_dim"] + 6 * xl["unet"]["addition_time_embed_dim"])


def test_single_file_layout_and_embedded_configs(tmp_path):
    import json

    from safetensors import safe_open

    c = build_tiny_components("sdxl")
    path = save_single_file(c, tmp_path / "xl.safetensors", "sdxl", dtype=torch.float16)
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
        assert f.get_tensor("conditioner.embedders.1.model.text_projection").dtype == torch.float16
    assert {"model.diffusion_model.label_emb.0.0.weight", "first_stage_model.decoder.up.0.block.0.conv1.weight",
            "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
            "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight"} <= keys
    configs = json.loads(meta["lora_trainer.diffusers_config"])
    assert configs["family"] == "sdxl" and configs["model_index"]["_class_name"] == "StableDiffusionXLPipeline"
    folder = write_config_dir(configs, tmp_path / "cfg")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json")) == [
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "text_encoder_2/config.json", "unet/config.json", "vae/config.json"]
    assert diffusers_configs(c, "sdxl")["text_encoder_2"]["hidden_size"] == 24
    assert not list(tmp_path.glob("*.part"))
