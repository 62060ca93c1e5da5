"""The caption-length, mask, augmentation and noise options as settings (no torch): kohya TOML import, the
metadata kohya writes for them, refusals that name the setting, and the checks' token limit."""
from __future__ import annotations

import pytest

from lora_trainer.config.files import config_from_dict, load_toml_text
from lora_trainer.config.metadata import RunFacts, read_training_metadata, training_metadata
from lora_trainer.config.schema import TrainConfig
from lora_trainer.config.validation import validate
from lora_trainer.errors import ConfigError

KOHYA_TOML = """
[training_arguments]
max_token_length = 225
zero_terminal_snr = true
multires_noise_iterations = 6
multires_noise_discount = 0.8
ip_noise_gamma = 0.1
debiased_estimation_loss = true
[dataset_arguments]
flip_aug = true
color_aug = true
random_crop = true
alpha_mask = true
masked_loss = true
"""
OPTIONS = dict(max_token_length=225, zero_terminal_snr=True, multires_noise_iterations=6, multires_noise_discount=0.8,
               ip_noise_gamma=0.1, debiased_estimation_loss=True, flip_aug=True, color_aug=True, random_crop=True,
               alpha_mask=True, masked_loss=True)


def test_a_kohya_toml_carries_the_options():
    cfg, warnings = config_from_dict(load_toml_text(KOHYA_TOML, "kohya.toml"), source="kohya.toml")
    assert warnings == []   # none of them is ignored any more
    assert {name: getattr(cfg, name) for name in OPTIONS} == OPTIONS
    assert config_from_dict({"conditioning_data_dir": "D:/masks"})[0].conditioning_data_dir == "D:/masks"


def test_the_metadata_holds_kohyas_keys_in_kohyas_forms():
    facts = RunFacts("sd1", "m", 1, 0, 1, 1, 0.0, {})
    meta = training_metadata(TrainConfig(**OPTIONS), facts)
    assert {k: meta[k] for k in ("ss_max_token_length", "ss_zero_terminal_snr", "ss_multires_noise_iterations",
                                 "ss_multires_noise_discount", "ss_ip_noise_gamma", "ss_debiased_estimation",
                                 "ss_flip_aug", "ss_color_aug", "ss_random_crop")} == {
        "ss_max_token_length": "225", "ss_zero_terminal_snr": "True", "ss_multires_noise_iterations": "6",
        "ss_multires_noise_discount": "0.8", "ss_ip_noise_gamma": "0.1", "ss_debiased_estimation": "True",
        "ss_flip_aug": "True", "ss_color_aug": "True", "ss_random_crop": "True"}
    assert meta["ss_alpha_mask"] == meta["ss_masked_loss"] == "True"   # ours: kohya writes no key for these
    back = read_training_metadata(meta)
    assert back["max_token_length"] == 225 and back["flip_aug"] is True and back["ip_noise_gamma"] == 0.1
    plain = training_metadata(TrainConfig(), facts)
    # kohya's defaults: max_token_length and multires iterations unset ("None"), the discount 0.3
    assert (plain["ss_max_token_length"], plain["ss_multires_noise_iterations"]) == ("None", "None")
    assert plain["ss_multires_noise_discount"] == "0.3" and plain["ss_flip_aug"] == "False"
    assert "max_token_length" not in read_training_metadata(plain)


@pytest.mark.parametrize("changes,named", [
    (dict(max_token_length=100), "max_token_length is 100, but it must be 75, 150 or 225"),
    (dict(masked_loss=True), "masked_loss is on, but no masks are named"),
    (dict(conditioning_data_dir="/masks"), "conditioning_data_dir names a mask folder"),
    (dict(conditioning_data_dir="/masks", masked_loss=True, alpha_mask=True), "alpha_mask and a mask folder"),
    (dict(multires_noise_iterations=0), "multires_noise_iterations is 0"),
    (dict(ip_noise_gamma=-0.1), "ip_noise_gamma is -0.1"),
])
def test_options_that_cannot_work_are_refused_by_name(changes, named):
    with pytest.raises(ConfigError) as err:
        validate(TrainConfig(**changes), need_paths=False)
    assert any(p.startswith(named) for p in err.value.problems), err.value.problems


def test_a_missing_mask_folder_is_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(TrainConfig(masked_loss=True, conditioning_data_dir=str(tmp_path / "none")), need_paths=True)
    assert any(p.startswith("conditioning_data_dir: mask folder not found") for p in err.value.problems)


def test_what_changes_another_setting_is_said():
    warnings = validate(TrainConfig(random_crop=True), need_paths=False)
    assert any(w.startswith("random_crop change the pixels at every step, so the latents are not cached")
               for w in warnings)
    assert not TrainConfig(color_aug=True).latents_cacheable and TrainConfig(flip_aug=True).latents_cacheable
    assert any("multires_noise_discount does nothing" in w
               for w in validate(TrainConfig(multires_noise_discount=0.5), need_paths=False))
    assert any("debiased_estimation_loss and min_snr_gamma" in w
               for w in validate(TrainConfig(debiased_estimation_loss=True, min_snr_gamma=5), need_paths=False))
    assert validate(TrainConfig(flip_aug=True, alpha_mask=True, max_token_length=150), need_paths=False) == []


@pytest.mark.parametrize("optimizer", ["Lion", "Lion8bit", "PagedLion8bit", "lion8bit"])
def test_lion_with_regularization_images_is_warned_not_refused(optimizer):
    from lora_trainer.config.option_checks import LION_WITH_REGULARIZATION
    from lora_trainer.ui.fields import with_label

    warnings = validate(TrainConfig(optimizer_type=optimizer, reg_data_dir="/data/reg"), need_paths=False)
    assert LION_WITH_REGULARIZATION in warnings
    assert "use AdamW or AdamW8bit with regularization images, or clear reg_data_dir" in LION_WITH_REGULARIZATION
    assert with_label(LION_WITH_REGULARIZATION) == LION_WITH_REGULARIZATION, "one fixed text, translated as it is"
    assert LION_WITH_REGULARIZATION not in validate(TrainConfig(optimizer_type=optimizer), need_paths=False)
    for other in ("AdamW", "AdamW8bit", "DAdaptAdam"):
        assert LION_WITH_REGULARIZATION not in validate(TrainConfig(optimizer_type=other, reg_data_dir="/data/reg",
                                                                    learning_rate=1.0), need_paths=False)


def test_the_dataset_checks_use_the_training_token_limit(tmp_path):
    from lora_trainer.dataset.checks import CheckSettings, check_dataset
    from lora_trainer.ui.dataset.check_actions import check_settings

    assert check_settings(TrainConfig(max_token_length=150), "character", "").token_limit == 150
    folder = tmp_path / "img" / "3_zkz"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"")
        (folder / f"{i}.txt").write_text("zkz, " + ", ".join(f"tag{n}" for n in range(40)), encoding="utf-8")
    count = lambda text: len(text.split(",")) * 2   # noqa: E731  (82 tokens)
    long75 = [f.key for f in check_dataset(tmp_path / "img", CheckSettings(token_limit=75), count_tokens=count)]
    long150 = [f.key for f in check_dataset(tmp_path / "img", CheckSettings(token_limit=150), count_tokens=count)]
    assert "long_captions" in long75 and "long_captions" not in long150
