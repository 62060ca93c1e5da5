"""Family detection from key names, key reading without weights, and refusal messages."""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from lora_trainer.errors import ModelLoadError
from lora_trainer.models.family import detect_diffusers_folder, detect_family, read_checkpoint_keys

U = "model.diffusion_model."
UNET_KEYS = [U + "input_blocks.0.0.weight", U + "time_embed.0.weight", U + "out.2.weight",
             U + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"]
VAE_KEYS = ["first_stage_model.encoder.conv_in.weight", "first_stage_model.decoder.conv_out.weight"]
SD1 = UNET_KEYS + VAE_KEYS + ["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                              "cond_stage_model.transformer.text_model.final_layer_norm.weight"]
SD2 = UNET_KEYS + VAE_KEYS + ["cond_stage_model.model.token_embedding.weight",
                              "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
                              "cond_stage_model.model.ln_final.weight"]
SDXL = UNET_KEYS + VAE_KEYS + [U + "label_emb.0.0.weight",
                               "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
                               "conditioner.embedders.1.model.positional_embedding",
                               "conditioner.embedders.1.model.text_projection"]


def _msg(keys, **kw):
    with pytest.raises(ModelLoadError) as err:
        detect_family(keys, source="x.safetensors", **kw)
    assert err.value.advice
    return str(err.value)


@pytest.mark.parametrize("keys,family", [(SD1, "sd1"), (SD2, "sd2"), (SDXL, "sdxl")])
def test_detects_the_three_families(keys, family):
    assert detect_family(keys) == family
    assert detect_family(iter(keys), in_channels=4) == family
    assert detect_family(["model_ema.decay"] + keys) == family  # EMA extras do not matter


def test_refusals_say_what_the_file_is():
    refiner = UNET_KEYS + VAE_KEYS + ["conditioner.embedders.0.model.text_projection"]
    assert "refiner" in _msg(refiner)
    assert "SD3" in _msg([U + "joint_blocks.0.context_block.attn.qkv.weight", "text_encoders.clip_l.x"])
    assert "Flux" in _msg(["double_blocks.0.img_attn.norm.key_norm.scale", "img_in.weight"])
    assert "Flux" in _msg([U + "double_blocks.0.img_attn.qkv.weight"])
    lora = _msg(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "lora_te_x.alpha"])
    assert "LoRA" in lora and "LoRA folder" in lora
    assert "LoRA" in _msg(["unet.down_blocks.0.attentions.0.to_q.lora_A.weight"])
    assert "VAE file" in _msg(["encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight"])
    assert "embedding" in _msg(["string_to_param", "string_to_token"])
    assert "ControlNet" in _msg(["control_model.time_embed.0.weight"] + UNET_KEYS)
    assert "diffusers component" in _msg(["down_blocks.0.resnets.0.conv1.weight", "conv_in.weight"])
    assert "unknown model architecture" in _msg(["foo.weight", "bar.bias"])
    assert "no text encoder" in _msg(UNET_KEYS + VAE_KEYS)
    assert "empty" in _msg([])


@pytest.mark.parametrize("channels,word", [(9, "inpainting"), (8, "instruct-pix2pix"), (5, "depth")])
def test_special_unet_inputs_are_refused(channels, word):
    msg = _msg(SD1, in_channels=channels)
    assert word in msg and f"{channels} channels" in msg


def test_old_clip_layout_is_explained():
    keys = UNET_KEYS + ["cond_stage_model.transformer.embeddings.token_embedding.weight"]
    assert "old key layout" in _msg(keys)


def _write_index(folder, cls, **components):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": cls, **components}), encoding="utf-8")


def test_diffusers_folder_detection(tmp_path):
    assert detect_diffusers_folder(tmp_path) is None  # not a diffusers folder
    sd = tmp_path / "sd"
    _write_index(sd, "StableDiffusionPipeline", text_encoder=["transformers", "CLIPTextModel"])
    (sd / "text_encoder").mkdir()
    (sd / "text_encoder" / "config.json").write_text('{"hidden_act": "quick_gelu"}', encoding="utf-8")
    assert detect_diffusers_folder(sd) == "sd1"
    (sd / "text_encoder" / "config.json").write_text('{"hidden_act": "gelu"}', encoding="utf-8")
    assert detect_diffusers_folder(sd) == "sd2"
    (sd / "unet").mkdir()
    (sd / "unet" / "config.json").write_text('{"in_channels": 9}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="inpainting"):
        detect_diffusers_folder(sd)
    xl = tmp_path / "xl"
    _write_index(xl, "StableDiffusionXLPipeline", text_encoder=["transformers", "CLIPTextModel"],
                 text_encoder_2=["transformers", "CLIPTextModelWithProjection"])
    assert detect_diffusers_folder(xl) == "sdxl"
    for cls, word in [("StableDiffusion3Pipeline", "SD3"), ("FluxPipeline", "Flux"),
                      ("StableDiffusionInpaintPipeline", "Inpaint"), ("KandinskyPipeline", "unsupported")]:
        _write_index(tmp_path / cls, cls)
        with pytest.raises(ModelLoadError, match=word):
            detect_diffusers_folder(tmp_path / cls)
    refiner = tmp_path / "refiner"
    _write_index(refiner, "StableDiffusionXLPipeline", text_encoder=[None, None],
                 text_encoder_2=["transformers", "CLIPTextModelWithProjection"])
    with pytest.raises(ModelLoadError, match="refiner"):
        detect_diffusers_folder(refiner)


# --- reading real files -------------------------------------------------------------------------

def _save(path, keys):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    save_file({k: torch.zeros(2, 2) for k in keys}, str(path))
    return path


def test_read_keys_from_safetensors_and_ckpt(tmp_path):
    torch = pytest.importorskip("torch")
    st = _save(tmp_path / "m.safetensors", SD1)
    assert sorted(read_checkpoint_keys(st)) == sorted(SD1)
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": {k: torch.zeros(1) for k in SDXL}, "global_step": 5}, ckpt)
    assert sorted(read_checkpoint_keys(ckpt)) == sorted(SDXL)
    legacy = tmp_path / "legacy.ckpt"  # pre-zip torch format: no mmap, still readable
    torch.save({k: torch.zeros(1) for k in SD2}, legacy, _use_new_zipfile_serialization=False)
    assert detect_family(read_checkpoint_keys(legacy)) == "sd2"


def test_truncated_and_missing_files(tmp_path):
    torch = pytest.importorskip("torch")
    st = _save(tmp_path / "full.safetensors", SD1)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(st.read_bytes()[: st.stat().st_size - 10])
    with pytest.raises(ModelLoadError, match="truncated") as err:
        read_checkpoint_keys(cut)
    assert "re-download" in err.value.advice and "cut.safetensors" in str(err.value)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\x01\x02")
    with pytest.raises(ModelLoadError, match="truncated"):
        read_checkpoint_keys(tiny)
    ckpt = tmp_path / "m.ckpt"
    torch.save({k: torch.zeros(100) for k in SD1}, ckpt)
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[:-200])
    with pytest.raises(ModelLoadError, match="truncated"):
        read_checkpoint_keys(tmp_path / "cut.ckpt")
    with pytest.raises(ModelLoadError, match="not found"):
        read_checkpoint_keys(tmp_path / "nope.safetensors")
    (tmp_path / "m.onnx").write_bytes(b"0" * 100)
    with pytest.raises(ModelLoadError, match="unsupported file type"):
        read_checkpoint_keys(tmp_path / "m.onnx")


class Unsafe:  # any non-tensor object makes a pickle need weights_only=False
    pass


def test_pickle_needing_code_is_refused_with_advice(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {SD1[0]: torch.zeros(1)}, "callbacks": Unsafe()}, path)
    with pytest.raises(ModelLoadError) as err:
        read_checkpoint_keys(path)
    assert "Python objects" in str(err.value) and "convert it to .safetensors" in err.value.advice
