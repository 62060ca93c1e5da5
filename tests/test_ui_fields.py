"""The form's rules, without gradio: which component each config field gets, and values ⇄ config."""
import pytest

from lora_trainer.config.option import BASIC
from lora_trainer.config.schema import TrainConfig
from lora_trainer.errors import ConfigError
from lora_trainer.ui.fields import (config_from_widgets, field_specs, from_widget, spec_map, to_widget,
                                    widget_values, with_label)

NON_DEFAULT = TrainConfig(
    pretrained_model_name_or_path="/m/base.safetensors", v_parameterization=True, clip_skip=2,
    train_data_dir="/d/train", reg_data_dir="/d/reg", resolution="768,512", enable_bucket=False, keep_tokens=1,
    caption_dropout_rate=0.05, output_dir="/out", output_name="凝光", save_every_n_epochs=None, network_dim=16,
    network_alpha=8.0, conv_dim=4, network_args=["module_dropout=0.1"], optimizer_type="Lion",
    optimizer_args=["weight_decay=0.01", "betas=0.9,0.99"], learning_rate=2e-5, unet_lr=3e-4,
    text_encoder_lr=5e-5, lr_scheduler="cosine", lr_warmup_steps=0.05, train_batch_size=3, max_train_epochs=None,
    max_train_steps=900, mixed_precision="fp16", min_snr_gamma=5.0, noise_offset=0.05, seed=7,
    algo="loha", dora_wd=True, fp8_base=True, weight_decay=0.05, betas="0.9,0.99", safeguard_warmup=False,
    up_lr_weight="0,0,0.5,1,1,1,1,1,1,1,1,1", mid_lr_weight="0.5", block_dims=",".join(["8"] * 25))


def test_every_field_gets_a_component_and_the_basic_view_is_the_tutorials_set():
    specs = field_specs()
    assert [s.name for s in specs] == [f.name for f in TrainConfig.fields()]
    kinds = spec_map()
    assert kinds["enable_bucket"].widget == "checkbox" and kinds["v_parameterization"].widget == "tristate"
    assert kinds["optimizer_type"].widget == "dropdown" and kinds["caption_dropout_rate"].widget == "slider"
    assert kinds["network_dim"].widget == "number" and kinds["unet_lr"].widget == "optional_number"
    assert kinds["network_args"].widget == "list" and kinds["resolution"].widget == "textbox"
    basic = {s.name for s in specs if s.group == BASIC}
    assert {"pretrained_model_name_or_path", "train_data_dir", "resolution", "train_batch_size", "max_train_epochs",
            "network_dim", "network_alpha", "learning_rate", "optimizer_type", "lr_scheduler",
            "save_every_n_epochs"} <= basic
    assert all(s.help for s in specs), "every field explains itself"


def test_values_round_trip_through_the_widgets():
    names = [s.name for s in field_specs()]
    values = widget_values(NON_DEFAULT, names)
    assert values[names.index("unet_lr")] == "0.0003" and values[names.index("v_parameterization")] == "on"
    assert values[names.index("save_every_n_epochs")] == ""   # empty, never a 0 that would mean something
    cfg, warnings = config_from_widgets(names, values)
    assert cfg == NON_DEFAULT and not warnings


def test_what_a_browser_sends_back_is_understood():
    specs = spec_map()
    assert from_widget(specs["train_batch_size"], 4.0) == 4          # gradio numbers arrive as floats
    assert from_widget(specs["unet_lr"], "  ") is None
    assert from_widget(specs["v_parameterization"], "auto") is None
    assert to_widget(specs["network_args"], ["a=1", "b=2"]) == "a=1 b=2"
    names = ["unet_lr", "train_batch_size", "network_args"]
    cfg, _ = config_from_widgets(names, ["1e-4", 2.0, "conv_dim=4 conv_alpha=2"])
    assert cfg.unet_lr == 1e-4 and cfg.train_batch_size == 2 and cfg.network_args == ["conv_dim=4", "conv_alpha=2"]


def test_bad_values_name_the_field_as_the_form_labels_it():
    with pytest.raises(ConfigError) as err:
        config_from_widgets(["unet_lr", "learning_rate"], ["fast", None])
    text = str(err.value)
    assert "UNet learning rate (unet_lr)" in text and "Learning rate (learning_rate) needs a value" in text
    unlabelled = "min_snr_gamma is -1, but it cannot be below 0"
    assert with_label(unlabelled) == unlabelled
    assert with_label("base model not found: x") == "base model not found: x"


def test_the_per_block_table_stands_for_kohyas_seven_block_settings():
    from lora_trainer.ui.block_table import TABLE, fields_from_rows, table_rows

    assert spec_map()["block_dims"].widget == "block_table"
    sdxl = TrainConfig(down_lr_weight="cosine", mid_lr_weight="1,0.5,1", block_dims=",".join(["8"] * 23))
    rows = widget_values(sdxl, [TABLE])[0]
    assert len(rows) == 23 and [r[0] for r in rows[:2]] == ["BASE", "IN00"] and rows[-1][0] == "OUT"
    assert rows[0][1] == "" and rows[1][1] == "1" and rows[11][1] == "0.5" and rows[5][2] == "8"  # MID01, a rank
    cfg, _ = config_from_widgets([TABLE], [rows])
    assert cfg.mid_lr_weight == "1,0.5,1" and cfg.block_dims == sdxl.block_dims and cfg.up_lr_weight == ""
    assert cfg.down_lr_weight.startswith("1,0.9808,") and cfg.down_lr_weight.endswith(",0")  # the curve's values
    sd1 = table_rows({}, "sd1")
    assert len(sd1) == 25 and sd1[12][0] == "MID" and fields_from_rows(sd1)["down_lr_weight"] == ""
    sd1[14][1] = "0"                        # OUT01 not trained; empty cells are weight 1
    sd1[3][2] = "16"                        # a rank for one block only
    with pytest.raises(ConfigError) as err:
        config_from_widgets([TABLE], [sd1])
    assert "block_dims" in str(err.value) and "1 of 25" in str(err.value)
    sd1[3][2] = ""
    assert config_from_widgets([TABLE], [sd1])[0].up_lr_weight == "1,0,1,1,1,1,1,1,1,1,1,1"
