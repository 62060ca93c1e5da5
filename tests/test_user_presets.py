"""Presets a user saves: one TOML file each with settings only, listed, applied as the built-in ones are (paths and
names kept), replaced and deleted by name; built-in names and names that cannot be files refused in both
languages; a broken file listed with its reason, never raised; the command line's --preset (torch-free)."""
from __future__ import annotations

import os
import types

import pytest

from lora_trainer.config import files
from lora_trainer.config.presets import USER, apply_preset, preset_changes
from lora_trainer.config.schema import TrainConfig
from lora_trainer.config.user_presets import (RUN_FIELDS, SETTINGS, PresetError, check_name, delete_preset,
                                              find_preset, list_presets, presets_dir, read_preset, resolve_preset,
                                              save_preset)

FORM = TrainConfig(pretrained_model_name_or_path="/models/base.safetensors", train_data_dir="/data/train",
                   reg_data_dir="/data/reg", output_dir="/out", output_name="mine-v1", resume="/out/state",
                   network_weights="/out/old.safetensors", logging_dir="/logs", training_comment="first try",
                   network_dim=48, network_alpha=24.0, optimizer_type="AdamW8bit", unet_lr=None,
                   text_encoder_lr=3e-5, resolution="768", train_batch_size=3, max_train_epochs=None,
                   max_train_steps=1200, network_args=["conv_dim=8"], seed=7)
OTHER = TrainConfig(pretrained_model_name_or_path="/m/other.safetensors", train_data_dir="/d/other",
                    output_dir="/o", output_name="other", unet_lr=5e-4, network_weights="/o/keep.safetensors")


def test_a_preset_holds_the_settings_and_no_path_or_name(tmp_path):
    preset, replaced = save_preset(FORM, "  my sdxl 角色  ", str(tmp_path))
    assert not replaced and preset.name == "my sdxl 角色"
    text = (tmp_path / "my sdxl 角色.toml").read_text(encoding="utf-8")
    keys = {line.split(" = ")[0] for line in text.splitlines() if " = " in line and not line.startswith("#")}
    assert keys and not keys & set(RUN_FIELDS), "no path, name or per-run text in the file"
    assert "/data" not in text and "mine-v1" not in text and "first try" not in text
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f], "written through a temp file"

    [listed] = list_presets(str(tmp_path))
    assert listed.error is None and set(listed.values) == set(SETTINGS)
    assert listed.values == {name: getattr(FORM, name) for name in SETTINGS}   # empty ones too (unet_lr, epochs)
    applied = apply_preset(OTHER, listed.as_preset())
    assert all(getattr(applied, name) == getattr(OTHER, name) for name in RUN_FIELDS), "paths and names are kept"
    assert applied.network_dim == 48 and applied.unet_lr is None and applied.max_train_epochs is None
    assert applied.network_args == ["conv_dim=8"] and applied.optimizer_type == "AdamW8bit"
    changes = {name: (old, new) for name, old, new in preset_changes(OTHER, listed.as_preset())}
    assert changes["network_dim"] == (32, 48) and changes["unet_lr"] == (5e-4, None)
    assert "output_name" not in changes and "seed" in changes
    assert listed.as_preset().kind == USER and find_preset("MY SDXL 角色", str(tmp_path)).name == "my sdxl 角色"


def test_the_same_name_in_any_case_replaces_and_delete_removes(tmp_path):
    save_preset(FORM, "Mine", str(tmp_path))
    _, replaced = save_preset(FORM.replace(network_dim=8), "mine", str(tmp_path))
    assert replaced and [p.name for p in list_presets(str(tmp_path))] == ["mine"]
    assert find_preset("MINE", str(tmp_path)).values["network_dim"] == 8
    save_preset(FORM, "b", str(tmp_path))
    assert delete_preset("MINE", str(tmp_path)) == "mine"
    assert [p.name for p in list_presets(str(tmp_path))] == ["b"]
    with pytest.raises(PresetError) as err:
        delete_preset("mine", str(tmp_path))
    assert "There is no preset called 'mine'" in str(err.value) and "b" in err.value.advice
    assert err.value.reason.format("zh_CN") == "没有名为 'mine' 的预设。"
    assert list_presets(str(tmp_path / "never saved")) == []


@pytest.mark.parametrize("name, english, chinese", [
    ("", "has no name", "没有名称"),
    ("character", "name of a built-in preset", "内置预设"),
    ("Style", "name of a built-in preset", "内置预设"),
    ("SDXL-12GB", "name of a built-in preset", "内置预设"),
    ("SD 1.5 · 8 GB", "name of a built-in preset", "内置预设"),
    ("—", "name of a built-in preset", "内置预设"),
    ("a/b", "cannot hold", "不能包含"),
    ("..\\up", "cannot hold", "不能包含"),
    ("two\nlines", "cannot hold", "不能包含"),
    ("nul\x00byte", "cannot hold", "不能包含"),
    ("x" * 65, "65 characters; 64 at most", "65 个字符；最多 64 个"),
    ("..", "start or end with a dot", "以点或空格开头"),
    (".hidden", "start or end with a dot", "以点或空格开头"),
    ("CON", "device name on Windows", "Windows 的设备名"),
])
def test_names_that_are_built_in_or_cannot_be_files_are_refused_in_both_languages(tmp_path, name, english, chinese):
    with pytest.raises(PresetError) as err:
        save_preset(FORM, name, str(tmp_path))
    assert english in err.value.message and err.value.advice
    assert chinese in err.value.reason.format("zh_CN") and err.value.fix.format("zh_CN") != err.value.advice
    assert list_presets(str(tmp_path)) == [] and not list(tmp_path.iterdir())


def test_plain_names_pass():
    assert check_name(" 我的风格 v2 ") == "我的风格 v2" and check_name("x" * 64) == "x" * 64
    assert check_name("character-2") == "character-2" and check_name("console") == "console"


def test_broken_files_are_listed_with_their_reason_and_never_raise(tmp_path):
    save_preset(FORM, "good", str(tmp_path))
    (tmp_path / "broken.toml").write_text("network_dim = = 3", encoding="utf-8")
    (tmp_path / "wrong type.toml").write_text('network_dim = "many"', encoding="utf-8")
    (tmp_path / "bytes.toml").write_bytes(b"\xff\xfe\x00network_dim = 3\x00")
    (tmp_path / "character.toml").write_text("network_dim = 4", encoding="utf-8")
    (tmp_path / "by hand.toml").write_text('network_dim = 12\noutput_dir = "/elsewhere"\nfoo = 1\n'
                                           '[model]\npretrained_model_name_or_path = "/x.safetensors"\n',
                                           encoding="utf-8")
    (tmp_path / ".good.toml.tmp-1-ab").write_text("left by a crash", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a preset", encoding="utf-8")
    listed = {p.name: p for p in list_presets(str(tmp_path))}
    assert sorted(listed) == ["broken", "by hand", "bytes", "character", "good", "wrong type"]
    for name in ("broken", "wrong type", "bytes", "character"):
        assert listed[name].error is not None and listed[name].values == {}, name
        with pytest.raises(PresetError):
            find_preset(name, str(tmp_path))
        with pytest.raises(PresetError):
            listed[name].as_preset()
    assert "broken cannot be read" in listed["broken"].error.message
    assert listed["broken"].error.reason.format("zh_CN").startswith("无法读取 broken")
    assert "network_dim = 'many' is not a whole number" in listed["wrong type"].error.message
    assert "name of a built-in preset" in listed["character"].error.message
    assert "Rename the file" in listed["character"].error.advice
    by_hand = listed["by hand"]
    assert by_hand.error is None and by_hand.values["network_dim"] == 12 and "output_dir" not in by_hand.values
    assert [str(n) for n in by_hand.notes] == [
        "by hand: output_dir, pretrained_model_name_or_path not used (a preset keeps no paths or names)",
        "by hand: settings this trainer does not use: foo"]
    assert delete_preset("broken", str(tmp_path)) == "broken", "a broken preset can be deleted"


def test_a_failed_write_leaves_the_previous_preset_whole(tmp_path, monkeypatch):
    save_preset(FORM, "kept", str(tmp_path))
    before = (tmp_path / "kept.toml").read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files, "to_toml", fail)
    with pytest.raises(PresetError) as err:
        save_preset(FORM.replace(network_dim=4), "kept", str(tmp_path))
    assert "No space left on device" in err.value.message and "写入" in err.value.reason.format("zh_CN")
    assert (tmp_path / "kept.toml").read_bytes() == before and os.listdir(tmp_path) == ["kept.toml"]
    assert read_preset(str(tmp_path / "kept.toml")).values["network_dim"] == 48


def test_the_folder_is_the_hosts_own_else_the_standalone_one(tmp_path, monkeypatch):
    monkeypatch.delenv("LORA_TRAINER_PRESETS_DIR", raising=False)
    monkeypatch.setenv("LORA_TRAINER_CACHE", str(tmp_path / "cache"))
    assert presets_dir() == str(tmp_path / "cache" / "standalone" / "presets")
    host = types.SimpleNamespace(presets_dir=lambda: str(tmp_path / "data" / "lora_trainer" / "presets"))
    assert presets_dir(host) == str(tmp_path / "data" / "lora_trainer" / "presets")

    def starting():
        raise RuntimeError("not yet")
    assert presets_dir(types.SimpleNamespace(presets_dir=starting)) == presets_dir()
    from lora_trainer.hosts.standalone import StandaloneAdapter
    assert presets_dir(StandaloneAdapter(lora_dir=str(tmp_path / "out"))) == presets_dir()
    monkeypatch.setenv("LORA_TRAINER_PRESETS_DIR", str(tmp_path / "chosen"))
    assert presets_dir(host) == str(tmp_path / "chosen")


def test_the_command_line_takes_built_in_and_saved_presets(tmp_path, monkeypatch):
    from lora_trainer.cli.main import build_parser, train_config

    monkeypatch.setenv("LORA_TRAINER_PRESETS_DIR", str(tmp_path))
    save_preset(FORM, "mine", str(tmp_path))
    assert resolve_preset("style", str(tmp_path)).values["network_dim"] == 64
    config = tmp_path / "run.toml"
    files.save_config(OTHER, str(config))
    args = build_parser().parse_args(["train", "--config", str(config), "--preset", "Mine", "--preset", "sdxl-12gb",
                                      "--network_dim", "20"])
    cfg, _ = train_config(args)
    assert cfg.output_name == "other" and cfg.train_data_dir == "/d/other", "the file's paths are kept"
    assert cfg.max_train_steps == 1200 and cfg.seed == 7, "the saved preset's settings"
    assert cfg.optimizer_type == "AdamW" and cfg.train_batch_size == 2, "the tier goes over the saved preset"
    assert cfg.network_dim == 20, "a flag goes over the presets"
    with pytest.raises(PresetError) as err:
        train_config(build_parser().parse_args(["train", "--preset", "nothing"]))
    assert "character" in err.value.advice and "mine" in err.value.advice
