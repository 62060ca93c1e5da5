"""The shipped diffusers config dirs build the published architectures (checked by parameter count)."""
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

import lora_trainer.models

SHIPPED_CONFIGS = Path(lora_trainer.models.__file__).parent / "configs"

PUBLISHED = {  # parameter counts of the released models
    ("sd15", "unet"): 859_520_964,
    ("sd2", "unet"): 865_910_724,
    ("sdxl", "unet"): 2_567_463_684,
    ("sd15", "vae"): 83_653_863,
    ("sd2", "vae"): 83_653_863,
    ("sdxl", "vae"): 83_653_863,
    ("sd15", "text_encoder"): 123_060_480,  # CLIP ViT-L/14 text
    ("sdxl", "text_encoder"): 123_060_480,
    ("sd2", "text_encoder"): 340_387_840,  # OpenCLIP ViT-H/14 text, 23 of 24 layers (penultimate)
    ("sdxl", "text_encoder_2"): 694_659_840,  # OpenCLIP ViT-bigG/14 text + projection
}


def _build_on_meta(family_dir: str, component: str):
    pytest.importorskip("diffusers")
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = SHIPPED_CONFIGS / family_dir / component
    with init_empty_weights():
        if component == "unet":
            return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(folder)))
        if component == "vae":
            return AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder)))
        cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
        return cls(CLIPTextConfig.from_pretrained(str(folder)))


@pytest.mark.parametrize("family_dir,component", sorted(PUBLISHED))
def test_parameter_count_matches_published_model(family_dir, component):
    model = _build_on_meta(family_dir, component)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[(family_dir, component)]


def test_family_specific_settings():
    def cfg(rel):
        return json.loads((SHIPPED_CONFIGS / rel).read_text(encoding="utf-8"))

    sd2_unet = cfg("sd2/unet/config.json")
    assert sd2_unet["upcast_attention"] is True and sd2_unet["use_linear_projection"] is True
    assert cfg("sd2/scheduler/scheduler_config.json")["prediction_type"] == "v_prediction"
    assert cfg("sd15/scheduler/scheduler_config.json")["prediction_type"] == "epsilon"
    assert cfg("sdxl/unet/config.json")["addition_embed_type"] == "text_time"
    assert cfg("sdxl/vae/config.json")["scaling_factor"] == 0.13025
    assert cfg("sd15/vae/config.json")["scaling_factor"] == 0.18215
    for fam in ("sd15", "sd2", "sdxl"):
        index = cfg(f"{fam}/model_index.json")
        assert not (SHIPPED_CONFIGS / fam / "tokenizer").exists()  # tokenizers come from tokenizers.py
        for name, spec in index.items():
            if not name.startswith("_") and isinstance(spec, list) and spec[0] is not None:
                assert name in ("tokenizer", "tokenizer_2") or (SHIPPED_CONFIGS / fam / name).is_dir(), name
        assert not list((SHIPPED_CONFIGS / fam).rglob("*.safetensors"))


def test_shipped_vocabulary_files():
    from lora_trainer.models.tokenizers import shipped_tokenizer_folder

    folder = SHIPPED_CONFIGS / "clip_tokenizer"
    assert not (folder / "vocab.json").exists()  # derived from merges.txt, not shipped
    vocab = json.loads((shipped_tokenizer_folder() / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and sorted(vocab.values()) == list(range(49408))
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    merges = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert merges[0] == "#version: 0.2"
    body = [m for m in merges[1:] if m]
    assert len(body) == 49152 - 256 - 2
    assert all("".join(m.split(" ")) in vocab for m in body[:500])  # every merge result is a token
    assert "MIT" in (folder / "LICENSE-clip-vocab.txt").read_text(encoding="utf-8")
    pad = json.loads((folder / "open_clip" / "special_tokens_map.json").read_text(encoding="utf-8"))["pad_token"]
    assert pad == "!"


def test_vocabulary_generator_reproduces_shipped_files(tmp_path):
    """write_clip_merges regenerates the shipped merges from open_clip's BPE file (when it is at hand)."""
    import gzip

    from lora_trainer.models.tokenizers import byte_alphabet, write_clip_merges

    chars = byte_alphabet()
    assert len(set(chars)) == 256 and chars[0] == "!" and chars[-1] == chr(256 + 67)
    shipped = SHIPPED_CONFIGS / "clip_tokenizer"
    # Rebuild a BPE source file from the shipped merges and check the round trip.
    merges = (shipped / "merges.txt").read_text(encoding="utf-8").split("\n")[1:-1]
    src = tmp_path / "bpe.txt.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write("\n".join(["bpe_simple_vocab_16e6.txt#version: 0.2", *merges, "extra merges beyond the cut"]))
    write_clip_merges(src, tmp_path / "out")
    assert (tmp_path / "out" / "merges.txt").read_bytes() == (shipped / "merges.txt").read_bytes()


def test_torch_not_imported_by_family_module():
    import subprocess
    import sys

    code = "import sys, lora_trainer.models.family, lora_trainer.models.tokenizers; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(SHIPPED_CONFIGS.parents[2]))
    assert out.stdout.strip() == "False"
