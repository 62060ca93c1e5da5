"""Config: kohya TOML import, validation messages, CLI flags, TOML round trip (no torch)."""
import argparse

import pytest

from lora_trainer.config.schema import TrainConfig, parse_resolution
from lora_trainer.config.validation import validate
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
    with pytest.raises(ConfigError, match="train_data_dir: the training images folder .* was not found"):
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


def test_sizes_seeds_and_lengths_have_an_upper_limit(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(_valid(tmp_path, resolution="1048576", max_train_epochs=100_001, seed=2**32,
                        max_bucket_reso=8192, validation_seed=2**63, max_train_steps=10_000_001))
    problems = err.value.problems
    assert "max_train_steps is 10000001, but it cannot be above 10000000" in problems
    assert "resolution 1048576 is too large; use at most 4096 (512 for SD1.5, 768 for SD2, 1024 for SDXL)" in problems
    assert "max_train_epochs is 100001, but it cannot be above 10000" in problems
    assert "seed is 4294967296, but it cannot be above 4294967295" in problems
    assert "validation_seed is 9223372036854775808, but it cannot be above 4294967295" in problems
    assert "max_bucket_reso is 8192, but it cannot be above 4096" in problems
    validate(_valid(tmp_path, resolution="4096,64", seed=2**32 - 1, max_train_epochs=10_000, max_bucket_reso=4096))


def test_a_wrong_resolution_is_one_message_that_says_what_is_accepted(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(_valid(tmp_path, resolution="32"))
    assert err.value.problems == ["resolution 32 is too small; use at least 64 (512 for SD1.5, 768 for SD2, "
                                  "1024 for SDXL)"]
    validate(_valid(tmp_path, resolution="64", min_bucket_reso=64))
    with pytest.raises(ConfigError, match="resolution 'inf' is not a number"):
        validate(_valid(tmp_path, resolution="inf"))


def test_path_problems_name_their_setting_and_tell_a_file_from_a_missing_folder(tmp_path):
    a_file = tmp_path / "a file.txt"
    a_file.write_text("x")
    with pytest.raises(ConfigError) as err:
        validate(_valid(tmp_path, pretrained_model_name_or_path=str(tmp_path / "gone.safetensors"),
                        train_data_dir=str(a_file), reg_data_dir=str(tmp_path / "no reg"), output_dir=str(a_file),
                        logging_dir=str(a_file / "logs")))
    problems = err.value.problems
    assert f"pretrained_model_name_or_path: the base model {tmp_path / 'gone.safetensors'} was not found; " \
           f"check the path" in problems
    assert any(p.startswith(f"train_data_dir {a_file} is a file, not a folder; choose the training images "
                            f"folder") for p in problems)
    assert any(p.startswith(f"reg_data_dir: the regularization folder {tmp_path / 'no reg'} was not found")
               for p in problems)
    assert any(p.startswith(f"output_dir {a_file} is a file, not a folder") for p in problems)
    assert any(p.startswith(f"logging_dir {a_file / 'logs'} cannot be created: {a_file} is a file") for p in problems)


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_run(tmp_path, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real_access(p, mode))
    with pytest.raises(ConfigError) as err:
        validate(_valid(tmp_path, output_dir=str(locked / "new")))
    assert err.value.problems == [f"output_dir {locked / 'new'} cannot be written (it would be created in {locked}): "
                                  f"permission denied; choose a folder you may write to, or change the folder's "
                                  f"permissions"]


@pytest.mark.parametrize("name,expected", [
    ("a\x00b", "holds control characters"), ("x" * 256, "output_name is 256 bytes long"),
    ("凝" * 61, "output_name is 183 bytes long")], ids=["nul", "256 letters", "61 Chinese characters"])
def test_output_names_that_no_file_system_can_hold_are_refused(tmp_path, name, expected):
    with pytest.raises(ConfigError, match=expected):
        validate(_valid(tmp_path, output_name=name))
    validate(_valid(tmp_path, output_name="凝" * 60))


@pytest.mark.parametrize("key,value,expected", [
    ("network_dim", {"a": 1}, "network_dim = {'a': 1} is not a whole number"),
    ("output_name", ["a"], "output_name = ['a'] is not text"),
    ("output_dir", 5, "output_dir = 5 is not text"),
    ("max_train_epochs", True, "max_train_epochs = True is not a whole number"),
    ("learning_rate", float("inf"), "learning_rate = inf is not a finite number"),
    ("learning_rate", "nan", "learning_rate = 'nan' is not a finite number"),
    ("seed", 10**30, "seed is 1000000000000000000000000000000, but it cannot be above 4294967295"),
    ("network_args", [{"conv_dim": 4}], "network_args = [{'conv_dim': 4}] is not a list"),
])
def test_json_values_of_the_wrong_type_are_refused_not_coerced(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as err:
        cfg, _ = config_from_dict({key: value}, base=_valid(tmp_path), source="the request's config")
        validate(cfg)
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_values_set_in_code_are_checked_for_their_type(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(_valid(tmp_path, max_train_epochs=True, learning_rate=float("inf"), output_dir=5))
    assert set(err.value.problems) == {"max_train_epochs = True is not a whole number",
                                       "learning_rate is inf; it must be a finite number", "output_dir = 5 is not text"}
