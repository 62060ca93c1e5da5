"""Config: kohya TOML import, validation messages, CLI flags, TOML round trip (no torch)."""
import argparse

import pytest

from lora_trainer.config.schema import TrainConfig, parse_resolution, validate
from lora_trainer.config.files import (add_config_flags, config_from_dict, load_config, overrides_from_args,
                                    to_toml, load_toml_text)
from lora_trainer.errors import ConfigError

KOHYA_TOML = '''
[model_arguments]
pretrained_model_name_or_path = "D:/sd/models/anything-v5.safetensors"
v2 = false

[dataset_arguments]
train_data_dir = "D:/train/凝光"
resolution = "512,768"
caption_extension = ".txt"
shuffle_caption = true
keep_tokens = 1
enable_bucket = true
cache_latents = true

[training_arguments]
output_dir = "D:/out"
output_name = "ningguang"
train_batch_size = 2
max_train_epochs = 10
save_every_n_epochs = 1
mixed_precision = "fp16"
save_precision = "fp16"
xformers = true
clip_skip = 2
seed = 1337
max_data_loader_n_workers = 8
some_future_option = 3

[optimizer_arguments]
optimizer_type = "AdamW8bit"
learning_rate = 1e-4
unet_lr = 1e-4
text_encoder_lr = 1e-5
lr_scheduler = "cosine_with_restarts"
lr_warmup_steps = 0
lr_scheduler_num_cycles = 3
optimizer_args = ["weight_decay=0.01"]

[additional_network_arguments]
network_module = "networks.lora"
network_dim = 32
network_alpha = 16
network_args = ["conv_dim=8", "conv_alpha=4"]
'''


def test_kohya_toml_loads_as_is(tmp_path):
    path = tmp_path / "kohya 配置.toml"
    path.write_text(KOHYA_TOML, encoding="utf-8")
    cfg, warnings = load_config(str(path))
    assert cfg.train_data_dir == "D:/train/凝光"
    assert cfg.resolution_wh == (512, 768)
    assert cfg.train_batch_size == 2 and cfg.max_train_epochs == 10
    assert cfg.optimizer_type == "AdamW8bit" and cfg.optimizer_args == ["weight_decay=0.01"]
    assert cfg.text_encoder_lr == 1e-5 and cfg.lr_scheduler_num_cycles == 3
    assert cfg.clip_skip == 2 and cfg.seed == 1337
    assert cfg.network_kwargs()["conv_dim"] == 8 and cfg.network_kwargs()["conv_alpha"] == 4.0
    # unknown keys are named in one warning; keys we handle ourselves are silent
    assert len(warnings) == 1 and "some_future_option" in warnings[0]
    assert "xformers" not in warnings[0] and "max_data_loader_n_workers" not in warnings[0]


def test_toml_with_bom_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'network_dim = 8\nlearning_rate = "3e-4"\n')
    cfg, _ = load_config(str(path), overrides={"network_dim": "16", "shuffle_caption": "true"})
    assert cfg.network_dim == 16 and cfg.learning_rate == 3e-4 and cfg.shuffle_caption is True


def test_bad_toml_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('output_dir = "unterminated\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_config(str(path))


def test_bad_values_are_explained():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"train_batch_size": "two", "network_dim": 1.5})
    text = str(err.value)
    assert "train_batch_size = 'two' is not a whole number" in text
    assert "network_dim = 1.5 is not a whole number" in text


def test_legacy_optimizer_flags():
    cfg, _ = config_from_dict({"use_8bit_adam": True})
    assert cfg.optimizer_type == "AdamW8bit"


@pytest.mark.parametrize("value,expected", [("512", (512, 512)), (768, (768, 768)), ("768,512", (768, 512)),
                                            ([1024, 768], (1024, 768)), ("640x512", (640, 512))])
def test_parse_resolution(value, expected):
    assert parse_resolution(value) == expected


def _valid(tmp_path, **changes):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x")
    data = tmp_path / "train"
    data.mkdir(exist_ok=True)
    base = dict(pretrained_model_name_or_path=str(model), train_data_dir=str(data), output_dir=str(tmp_path / "o"))
    base.update(changes)
    return TrainConfig(**base)


def test_validation_messages(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(_valid(tmp_path, resolution="500", learning_rate=-1.0, optimizer_type="Adam9000",
                        min_bucket_reso=1100, output_name="a/b"))
    problems = err.value.problems
    assert "resolution 500 is not a multiple of 64; use 512" in problems
    assert any(p.startswith("learning_rate is -1.0, but it cannot be below 0") for p in problems)
    assert any("optimizer_type 'Adam9000' is not known" in p and "AdamW8bit" in p for p in problems)
    assert any("min_bucket_reso (1100) is larger than max_bucket_reso (1024)" in p for p in problems)
    assert any("output_name 'a/b'" in p for p in problems)


def test_validation_paths_and_warnings(tmp_path):
    with pytest.raises(ConfigError, match="training images folder not found"):
        validate(_valid(tmp_path, train_data_dir=str(tmp_path / "missing")))
    warnings = validate(_valid(tmp_path, network_dim=8, network_alpha=32, optimizer_type="Prodigy"))
    assert any("network_alpha (32) is larger than network_dim (8)" in w for w in warnings)
    assert any("Prodigy finds its own step size" in w for w in warnings)
    assert validate(_valid(tmp_path)) == []


def test_cli_flags_are_generated_from_fields():
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--network_dim", "64", "--shuffle_caption", "--optimizer_args", "a=1", "b=2",
                              "--clip_skip", "none"])
    overrides = overrides_from_args(args)
    assert overrides == {"network_dim": "64", "shuffle_caption": "true", "optimizer_args": ["a=1", "b=2"],
                         "clip_skip": "none"}
    cfg, _ = config_from_dict(overrides)
    assert cfg.network_dim == 64 and cfg.shuffle_caption and cfg.clip_skip is None
    assert cfg.optimizer_args == ["a=1", "b=2"]
    # every field has a flag
    flags = {a.dest for a in parser._actions}
    assert {f"cfg_{name}" for name in TrainConfig.field_names()} <= flags


def test_toml_round_trip():
    cfg = TrainConfig(train_data_dir='C:\\数据 "quoted"\\x', network_args=["conv_dim=4"], clip_skip=2,
                      v_parameterization=True, lr_warmup_steps=0.1)
    back, warnings = config_from_dict(load_toml_text(to_toml(cfg), "round trip"))
    assert back == cfg and warnings == []
    # empty where the default is not: training by steps, saving only at the end
    by_steps = TrainConfig(max_train_epochs=None, max_train_steps=500, save_every_n_epochs=None)
    text = to_toml(by_steps)
    assert 'max_train_epochs = "none"' in text and "# max_train_steps =" not in text
    assert config_from_dict(load_toml_text(text, "round trip"))[0] == by_steps


def test_every_field_is_documented():
    for f in TrainConfig.fields():
        assert f.metadata.get("help"), f.name
        assert f.metadata.get("section"), f.name
