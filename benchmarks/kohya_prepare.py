"""Inputs for running kohya sd-scripts beside our benchmark, offline: random-weight diffusers
folders of SD1.5 / SDXL built from our shipped configs, CLIP tokenizer folders in the layout of
sd-scripts' ``--tokenizer_cache_dir``, a small captioned image set per resolution, and (``tagged_images``)
data sets in several aspect ratios with comma-separated tag captions, for the bucketed user jobs.

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
# (width, height) of a 512-class data set in eight aspect ratios (1:2 to 2:1): 7 buckets at 512 px (min 256,
# max 1024, step 64); doubled for SDXL, 8 buckets at 1024 px (min 512, max 2048)
ASPECT_SIZES = ((512, 768), (768, 512), (640, 640), (576, 768), (768, 576), (512, 1024), (1024, 512), (512, 896))
CHARACTER_TAGS = ("1girl", "solo", "long hair", "short hair", "smile", "looking at viewer", "outdoors", "indoors",
                  "blue eyes", "red dress", "standing", "sitting", "upper body", "full body", "simple background",
                  "white background", "hat", "jacket", "holding cup", "from side")
STYLE_TAGS = ("landscape", "mountains", "city", "night", "sunset", "river", "forest", "portrait", "still life",
              "flowers", "building", "sky", "clouds", "street", "rain", "snow", "harbor", "interior", "animal")


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


def tagged_images(folder: Path, count: int, scale: float, trigger: str, tags=CHARACTER_TAGS,
                  seed: int = 0) -> None:
    """``count`` smooth random images cycling through ``ASPECT_SIZES`` × ``scale``, each captioned with the
    trigger word and then 5–9 distinct tags, comma-separated (for shuffle_caption with keep_tokens 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        width, height = (int(v * scale) // 8 * 8 for v in ASPECT_SIZES[i % len(ASPECT_SIZES)])
        small = (rng.random((max(2, height // 64), max(2, width // 64), 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((width, height), Image.BILINEAR).save(folder / f"img{i:03d}.png")
        picked = rng.choice(len(tags), size=int(rng.integers(5, 10)), replace=False)
        (folder / f"img{i:03d}.txt").write_text(", ".join([trigger, *(tags[j] for j in picked)]))


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
