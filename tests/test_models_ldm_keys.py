"""Our diffusers -> original key tables, checked against diffusers' own original -> diffusers converters.

Full-size models are built on the meta device (no memory), converted with ``diffusers_to_original``
and converted back with diffusers' single-file functions: every key and shape must come back.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

pytest.importorskip("diffusers")

import torch
from accelerate import init_empty_weights

from lora_trainer.models import ldm_keys
from lora_trainer.models.tiny import CONFIG_DIRS, SHIPPED_CONFIGS, build_tiny_components


def _full_size(family):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    root = SHIPPED_CONFIGS / CONFIG_DIRS[family]
    subs = ["text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(root / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(root / "vae")))
        tes = [(CLIPTextModelWithProjection if s == "text_encoder_2" else CLIPTextModel)(
            CLIPTextConfig.from_pretrained(str(root / s))) for s in subs]
    return unet, vae, tes


def _tiny(family):
    c = build_tiny_components(family)
    return c["unet"], c["vae"], [c[k] for k in ("text_encoder", "text_encoder_2") if k in c]


def _norm_te(sd):
    """Compare text encoders in the ``text_model.`` naming whatever the transformers version."""
    return {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): tuple(v.shape)
            for k, v in sd.items() if not k.endswith("position_ids")}


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("size", ["full", "tiny"])
def test_tables_round_trip_through_diffusers_converters(family, size):
    from diffusers.loaders import single_file_utils as sfu

    unet, vae, tes = (_full_size if size == "full" else _tiny)(family)
    ckpt = ldm_keys.diffusers_to_original(unet.state_dict(), vae.state_dict(), [t.state_dict() for t in tes],
                                          family, unet.config)
    assert all(isinstance(k, str) for k in ckpt)
    if size == "full":  # the file looks like the real thing to diffusers' own model-type detection
        assert sfu.infer_diffusers_model_type(ckpt) == {"sd1": "v1", "sd2": "v2", "sdxl": "xl_base"}[family]

    back = sfu.convert_ldm_unet_checkpoint(ckpt, dict(unet.config))
    assert _shapes(back) == _shapes(unet.state_dict())
    back = sfu.convert_ldm_vae_checkpoint(ckpt, dict(vae.config))
    assert _shapes(back) == _shapes(vae.state_dict())

    te_back = []
    if family == "sd1":
        te_back.append(sfu.convert_ldm_clip_checkpoint(ckpt))
    elif family == "sd2":
        te_back.append(sfu.convert_open_clip_checkpoint(tes[0], ckpt, prefix="cond_stage_model.model."))
    else:
        te_back.append(sfu.convert_ldm_clip_checkpoint(
            {k: v for k, v in ckpt.items() if k.startswith("conditioner.embedders.0.")}))
        te_back.append(sfu.convert_open_clip_checkpoint(tes[1], ckpt, prefix="conditioner.embedders.1.model."))
    for te, sd in zip(tes, te_back):
        assert _norm_te(sd) == _norm_te(te.state_dict())


def test_original_names_of_known_modules():
    """Spot checks against well-known SD1.5 / SDXL original key names."""
    import json

    cfg15 = json.loads((SHIPPED_CONFIGS / "sd15" / "unet" / "config.json").read_text())
    m = ldm_keys.unet_module_map(cfg15)
    assert m["down_blocks.0.resnets.1"][0] == "input_blocks.2.0"
    assert m["down_blocks.0.downsamplers.0.conv"][0] == "input_blocks.3.0.op"
    assert m["down_blocks.3.resnets.1"][0] == "input_blocks.11.0"
    assert m["up_blocks.0.upsamplers.0"][0] == "output_blocks.2.1"  # no attention in up block 0
    assert m["up_blocks.1.upsamplers.0"][0] == "output_blocks.5.2"
    assert m["up_blocks.3.attentions.2"][0] == "output_blocks.11.1"
    cfgxl = json.loads((SHIPPED_CONFIGS / "sdxl" / "unet" / "config.json").read_text())
    mx = ldm_keys.unet_module_map(cfgxl)
    assert mx["down_blocks.2.attentions.1"][0] == "input_blocks.8.1"
    assert mx["up_blocks.0.upsamplers.0"][0] == "output_blocks.2.2"
    assert mx["add_embedding.linear_2"][0] == "label_emb.0.2"
    # module names as kohya's SDXL LoRA keys use them
    assert ldm_keys.rename_key("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", mx) == \
        "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"
    assert ldm_keys.rename_key("mid_block.resnets.1.conv2.weight", mx) == "middle_block.2.out_layers.3.weight"
    out = ldm_keys.unet_to_original({"down_blocks.1.resnets.0.conv_shortcut.weight": torch.zeros(1),
                                     "up_blocks.0.resnets.2.time_emb_proj.bias": torch.zeros(1)}, cfg15)
    assert set(out) == {"input_blocks.4.0.skip_connection.weight", "output_blocks.2.0.emb_layers.1.bias"}
    vae = ldm_keys.vae_to_original({"decoder.up_blocks.0.resnets.2.conv_shortcut.weight": torch.zeros(1),
                                    "decoder.up_blocks.3.resnets.0.norm1.weight": torch.zeros(1),
                                    "encoder.down_blocks.0.resnets.1.norm1.weight": torch.zeros(1),
                                    "encoder.mid_block.attentions.0.to_out.0.weight": torch.zeros(4, 4)})
    assert vae["encoder.mid.attn_1.proj_out.weight"].shape == (4, 4, 1, 1)
    assert "decoder.up.3.block.2.nin_shortcut.weight" in vae and "decoder.up.0.block.0.norm1.weight" in vae


def test_open_clip_fuses_qkv_and_transposes_projection():
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    te = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=50, hidden_size=8, intermediate_size=16,
                                                    num_hidden_layers=1, num_attention_heads=2, projection_dim=6))
    sd = te.state_dict()
    out = ldm_keys.open_clip_to_original(sd)
    q = sd["text_model.encoder.layers.0.self_attn.q_proj.weight"]
    v = sd["text_model.encoder.layers.0.self_attn.v_proj.bias"]
    assert torch.equal(out["transformer.resblocks.0.attn.in_proj_weight"][:8], q)
    assert torch.equal(out["transformer.resblocks.0.attn.in_proj_bias"][16:], v)
    assert torch.equal(out["text_projection"], sd["text_projection.weight"].t())
    assert out["text_projection"].shape == (8, 6)


def test_unknown_keys_are_an_error():
    with pytest.raises(KeyError):
        ldm_keys.unet_to_original({"mystery.weight": torch.zeros(1)}, {"down_block_types": ["DownBlock2D"],
                                                                        "up_block_types": ["UpBlock2D"]})
    with pytest.raises(ValueError):
        ldm_keys.diffusers_to_original({}, {}, [{}], "sdxl", {})
