"""A saved file's ss_* metadata comes from the schema: every key written is read back, with the value written."""
from __future__ import annotations

import json

from lora_trainer.config.metadata import (RUN_KEYS, FORMS, RunFacts, family_from_metadata, read_training_metadata,
                                          setting_keys, training_metadata)
from lora_trainer.config.schema import TrainConfig
from lora_trainer.evaluate.summary import summary_from_metadata

# what kohya's sd-scripts writes too: a file read by the hosts, civitai and other tools needs them
KOHYA_KEYS = {"ss_output_name", "ss_base_model_version", "ss_v2", "ss_v_parameterization", "ss_network_module",
              "ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_sd_model_name", "ss_resolution",
              "ss_num_train_images", "ss_num_reg_images", "ss_epoch", "ss_steps", "ss_num_epochs",
              "ss_batch_size_per_device", "ss_gradient_accumulation_steps", "ss_learning_rate", "ss_unet_lr",
              "ss_text_encoder_lr", "ss_optimizer", "ss_lr_scheduler", "ss_lr_warmup_steps", "ss_mixed_precision",
              "ss_max_grad_norm", "ss_min_snr_gamma", "ss_noise_offset", "ss_network_dropout",
              "ss_scale_weight_norms", "ss_seed", "ss_keep_tokens", "ss_shuffle_caption", "ss_caption_dropout_rate",
              "ss_prior_loss_weight", "ss_enable_bucket", "ss_training_started_at", "ss_tag_frequency",
              "ss_clip_skip", "ss_training_comment", "ss_network_train_unet_only",
              "ss_network_train_text_encoder_only"}

CFG = TrainConfig(output_name="my lora", resolution="768,512", enable_bucket=False, shuffle_caption=True,
                  keep_tokens=2, caption_dropout_rate=0.05, prior_loss_weight=0.5, training_comment="a note",
                  network_dim=8, network_alpha=4, network_args=["conv_dim=4", "rank_dropout=0.1"],
                  network_dropout=0.1, scale_weight_norms=1.0, network_train_unet_only=True,
                  optimizer_type="AdamW8bit", optimizer_args=["weight_decay=0.1"], learning_rate=2e-4,
                  text_encoder_lr=5e-5, lr_scheduler="cosine", lr_warmup_steps=0.1, max_grad_norm=0.5,
                  train_batch_size=3, max_train_epochs=7, gradient_accumulation_steps=2, mixed_precision="fp16",
                  min_snr_gamma=5, noise_offset=0.05, seed=7, clip_skip=2)
FACTS = RunFacts(family="sdxl", model_name="base.safetensors", num_train_images=12, num_reg_images=3, epoch=4,
                 steps=96, training_started_at=1700000000.25, tag_frequency={"5_zkz": {"zkz": 12, "red": 3}},
                 v_prediction=False)


def expected(item, cfg):
    value = getattr(cfg, item.value or item.name)
    return value() if callable(value) else value


def test_every_key_written_is_read_back_with_its_value():
    meta = training_metadata(CFG, FACTS)
    assert all(isinstance(v, str) for v in meta.values())
    assert KOHYA_KEYS <= set(meta)
    values = read_training_metadata(meta)
    read_keys = {item.key for item in (*setting_keys(), *RUN_KEYS)} | {"ss_base_model_version", "ss_v2"}
    assert {k for k in meta if k.startswith("ss_")} == read_keys
    for item in setting_keys():
        want = FORMS[item.form].read(FORMS[item.form].write(expected(item, CFG)))
        assert values.get(item.name) == want, item
    assert values["resolution"] == (768, 512) and values["unet_lr"] == 2e-4 and values["text_encoder_lr"] == 5e-5
    assert values["optimizer_type"] == "AdamW8bit(weight_decay=0.1)"
    assert values["network_args"] == {"conv_dim": "4", "conv_alpha": "4.0", "rank_dropout": "0.1"}
    for item in RUN_KEYS:
        assert values[item.name] == getattr(FACTS, item.name), item
    assert values["family"] == "sdxl" and meta["modelspec.resolution"] == "768x512"
    assert json.loads(meta["ss_tag_frequency"]) == FACTS.tag_frequency


def test_unset_values_are_written_as_kohya_writes_them_and_read_as_nothing():
    meta = training_metadata(TrainConfig(max_train_epochs=None, max_train_steps=100),
                             RunFacts("sd1", "m", 1, 0, 1, 1, 0.0, {}))
    assert (meta["ss_clip_skip"], meta["ss_num_epochs"], meta["ss_min_snr_gamma"]) == ("None", "", "")
    values = read_training_metadata(meta)
    assert "clip_skip" not in values and "max_train_epochs" not in values and "min_snr_gamma" not in values


def test_the_summary_reads_through_the_schema():
    s = summary_from_metadata(training_metadata(CFG, FACTS))
    assert (s.output_name, s.family, s.network_dim, s.network_alpha, s.resolution) == ("my lora", "sdxl", 8, 4.0, (768, 512))
    assert (s.unet_lr, s.text_encoder_lr, s.optimizer, s.batch_size, s.epochs, s.epoch, s.steps) == \
        (2e-4, 5e-5, "AdamW8bit(weight_decay=0.1)", 3, 7, 4, 96)
    assert (s.num_train_images, s.num_reg_images, s.min_snr_gamma, s.clip_skip, s.train_text_encoder) == \
        (12, 3, 5.0, 2, False)
    assert s.concepts[0].name == "zkz" and s.concepts[0].repeats == 5 and s.trigger_words() == ["zkz"]


def test_family_from_other_trainers_metadata():
    assert family_from_metadata({"ss_base_model_version": "sdxl_base_v0-9"}) == "sdxl"
    assert family_from_metadata({"modelspec.architecture": "stable-diffusion-v2-768-v/lora"}) == "sd2"
    assert family_from_metadata({"ss_v2": "False"}) == "sd1"
    assert family_from_metadata({}) is None
