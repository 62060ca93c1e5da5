"""Whole runs with the caption-length, mask, augmentation and noise options on the tiny SD1 / SD2 (v) / SDXL
models: the loss falls, the file holds the options' metadata, the run says before training what they do
(captions cut, latents not cached), and flip_aug caches two latents."""
from __future__ import annotations

import shutil

import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from test_train import DEMO, make_config, read, run  # noqa: E402

from lora_trainer.train import events as ev  # noqa: E402

LONG = ", ".join(f"tag{n} detail" for n in range(60))   # ~180 tokens


@pytest.fixture
def cutouts(tmp_path):
    """The demo shapes as cut-outs (a transparent border; every other one 80 px wide) with a mask folder marking
    the same area, and one caption longer than 150 tokens."""
    folder = tmp_path / "data" / "4_zkz"
    masks = tmp_path / "masks" / "4_zkz"
    folder.mkdir(parents=True)
    masks.mkdir(parents=True)
    for index, image in enumerate(sorted(next(DEMO.iterdir()).glob("*.png"))):
        rgba = Image.open(image).convert("RGBA")
        alpha = Image.new("L", rgba.size, 0)
        alpha.paste(255, (8, 8, 56, 56))
        rgba.putalpha(alpha)
        if index % 2:   # wider than its 64×64 bucket: room for a random crop
            wide = Image.new("RGBA", (80, 64), (255, 255, 255, 0))
            wide.paste(rgba, (8, 0))
            rgba, alpha = wide, wide.getchannel("A")
        rgba.save(folder / image.name)
        Image.merge("RGB", (alpha, alpha, alpha)).save(masks / image.name)
        shutil.copy(image.with_suffix(".txt"), folder / image.with_suffix(".txt").name)
    (folder / "01 center.txt").write_text("zkz, " + LONG, encoding="utf-8")
    return tmp_path


CASES = {
    # SD1: captions in 2 chunks, flipped latents from the cache, the loss masked by transparency, multires noise
    "sd1": dict(max_token_length=150, flip_aug=True, alpha_mask=True, multires_noise_iterations=6,
                learning_rate=1e-2),
    # SD2 (v-prediction): zero terminal SNR, debiased weights, input perturbation, a mask folder, and the pixels
    # cropped and recoloured at each step (no latent cache)
    "sd2": dict(zero_terminal_snr=True, debiased_estimation_loss=True, ip_noise_gamma=0.1, masked_loss=True,
                random_crop=True, color_aug=True, learning_rate=1e-2),
    # SDXL: 3 chunks for both encoders, trained, so the token ids go into the step; flips cached on disk
    "sdxl": dict(max_token_length=225, flip_aug=True, cache_latents_to_disk=True, alpha_mask=True,
                 learning_rate=1e-2, conv_dim=4, conv_alpha=4),
}
OPTION_KEYS = {"max_token_length": "ss_max_token_length", "flip_aug": "ss_flip_aug", "alpha_mask": "ss_alpha_mask",
               "multires_noise_iterations": "ss_multires_noise_iterations", "zero_terminal_snr": "ss_zero_terminal_snr",
               "debiased_estimation_loss": "ss_debiased_estimation", "ip_noise_gamma": "ss_ip_noise_gamma",
               "masked_loss": "ss_masked_loss", "random_crop": "ss_random_crop", "color_aug": "ss_color_aug"}


@pytest.mark.parametrize("family", list(CASES))
def test_the_loss_falls_with_the_options_and_the_file_says_so(family, tiny_checkpoints, cutouts):
    extra = dict(CASES[family])
    if extra.get("masked_loss"):
        extra["conditioning_data_dir"] = str(cutouts / "masks")
    cfg = make_config(tiny_checkpoints[family], str(cutouts / "data"), cutouts / "out", save_every_n_epochs=None,
                      **extra)
    result, seen = run(cfg)
    assert result.epoch_losses[-1] < 0.9 * result.epoch_losses[0], result.epoch_losses
    _, meta = read(result.files[-1])
    for name, key in OPTION_KEYS.items():
        assert meta[key] == str(extra.get(name, {"max_token_length": "None", "multires_noise_iterations": "None",
                                                 "ip_noise_gamma": ""}.get(name, False))), key
    started = next(e for e in seen if isinstance(e, ev.Started))
    if cfg.max_token_length < 225:
        assert any(w.startswith(f"1 of 8 captions are longer than max_token_length ({cfg.max_token_length} tokens)")
                   and "4_zkz/01 center.png" in w for w in started.warnings), started.warnings
    if extra.get("random_crop"):
        assert any("latents are not cached" in w for w in started.warnings)
    if extra.get("masked_loss"):
        assert any(w.startswith("masked_loss: 8 training image(s)") for w in started.warnings)


def test_flip_aug_caches_two_latents_and_random_crop_none(tiny_checkpoints, cutouts):
    from lora_trainer.train.setup import prepare_run

    flipped = prepare_run(make_config(tiny_checkpoints["sd1"], str(cutouts / "data"), cutouts / "a", flip_aug=True,
                                      alpha_mask=True), log=lambda *_: None)
    entry = flipped.latent_cache.entry(flipped.items[0])
    assert set(entry) == {"latent", "latent_flipped", "mask"} and not torch.equal(entry["latent"], entry["latent_flipped"])
    cropped = prepare_run(make_config(tiny_checkpoints["sd1"], str(cutouts / "data"), cutouts / "b", random_crop=True),
                          log=lambda *_: None)
    assert cropped.latent_cache is None and any("latents are not cached" in w for w in cropped.warnings)
