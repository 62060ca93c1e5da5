"""Inputs for running kohya sd-scripts beside our benchmark, offline: random-weight diffusers
folders of SD1.5 / SDXL built from our shipped configs, CLIP tokenizer folders in the layout of
sd-scripts' ``--tokenizer_cache_dir``, and a small captioned image set per resolution.

Runs under whichever diffusers/transformers are importable (sd-scripts' pinned ones are fine).
Usage: python benchmarks/kohya_prepare.py OUT_DIR [sd15] [sdxl] [e2e]
"""
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lora_trainer.models.tokenizers import OPEN_CLIP_VARIANT_DIR, shipped_tokenizer_folder  # noqa: E402

CONFIGS = ROOT / "lora_trainer" / "models" / "configs"
TOKENIZER_DIRS = {"openai_clip-vit-large-patch14": None, "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k": "open_clip"}
CAPTION = "a photo of zkz"


def tokenizer_folder(dest: Path, variant) -> None:
    shutil.copytree(shipped_tokenizer_folder(), dest, dirs_exist_ok=True)
    if variant == "open_clip":  # pads with "!" like OpenCLIP
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(OPEN_CLIP_VARIANT_DIR / name, dest / name)


def random_model(model: str, dest: Path, device: str) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    src = CONFIGS / model
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device(device):
        parts = {"unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(src / "unet"))),
                 "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(str(src / "vae"))),
                 "text_encoder": CLIPTextModel(CLIPTextConfig.from_json_file(str(src / "text_encoder/config.json")))}
        if model == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig.from_json_file(str(src / "text_encoder_2/config.json")))
    for name, module in parts.items():
        module.to(torch.bfloat16).save_pretrained(str(dest / name), safe_serialization=True)
    shutil.copytree(src / "scheduler", dest / "scheduler", dirs_exist_ok=True)
    index = json.loads((src / "model_index.json").read_text())
    index.pop("add_watermarker", None)
    (dest / "model_index.json").write_text(json.dumps(index, indent=2))
    tokenizer_folder(dest / "tokenizer", None)
    if model == "sdxl":
        tokenizer_folder(dest / "tokenizer_2", "open_clip")


def images(dest: Path, size: int, count: int = 8, repeats: int = 100) -> None:
    """Smooth random images (quick to encode) with one caption each."""
    folder = dest / f"{repeats}_zkz"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        small = (rng.random((size // 64, size // 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(CAPTION)


def main() -> None:
    out = Path(sys.argv[1])
    models = [m for m in sys.argv[2:] if m != "e2e"] or ["sd15", "sdxl"]
    if "e2e" in sys.argv[2:]:  # the end-to-end job: 20 SDXL images, 1 repeat
        images(out / "data" / "e2e", 1024, count=20, repeats=1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name, variant in TOKENIZER_DIRS.items():
        tokenizer_folder(out / "tokenizers" / name, variant)
    for model in models:
        start = time.perf_counter()
        random_model(model, out / "models" / model, device)
        size = 1024 if model == "sdxl" else 512
        images(out / "data" / str(size), size)
        print(f"{model}: random model and images in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
