"""The network type, DoRA, per-block, optimizer, fp8 and continue-from settings: kohya's network_args read
into fields, refusals that name the setting and the fix, and the ss_* metadata kohya writes (no torch)."""
import json

import pytest

from lora_trainer.config.blocks import block_names, block_plan
from lora_trainer.config.files import load_toml_text, config_from_dict
from lora_trainer.config.metadata import RunFacts, read_training_metadata, training_metadata
from lora_trainer.config.optimizer_fields import field_kwargs
from lora_trainer.config.schema import TrainConfig
from lora_trainer.config.validation import validate
from lora_trainer.errors import ConfigError

LYCORIS_TOML = '''
[additional_network_arguments]
network_module = "lycoris.kohya"
network_dim = 16
network_alpha = 8
network_args = ["algo=lokr", "factor=8", "dora_wd=True", "conv_dim=4", "preset=attn-mlp",
                "down_lr_weight=0,0.5,1", "block_dims=8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8"]
[optimizer_arguments]
optimizer_type = "Prodigy"
learning_rate = 1.0
optimizer_args = ["decouple=True"]
d_coef = 0.5
[training_arguments]
max_train_epochs = 2
fp8_base = true
mixed_precision = "bf16"
'''


def problems(cfg) -> list[str]:
    with pytest.raises(ConfigError) as err:
        validate(cfg, need_paths=False)
    return err.value.problems


def test_a_lycoris_toml_is_read_into_the_fields_and_its_metadata_is_what_lycoris_writes():
    cfg, warnings = config_from_dict(load_toml_text(LYCORIS_TOML, "lokr.toml"))
    assert not warnings and cfg.fp8_base and cfg.d_coef == 0.5
    settings = cfg.network_settings()
    assert (settings["algo"], settings["factor"], settings["dora_wd"], settings["conv_dim"]) == ("lokr", 8, True, 4)
    assert settings["conv_alpha"] == 4.0 and settings["down_lr_weight"] == "0,0.5,1"
    with pytest.raises(ConfigError) as err:   # Prodigy has one step size: per-block learning rates are refused
        validate(cfg, need_paths=False)
    assert any("down_lr_weight" in p and "Prodigy" in p for p in err.value.problems)
    cfg = cfg.replace(network_args=[a for a in cfg.network_args if "lr_weight" not in a])
    assert validate(cfg, need_paths=False) == []
    meta = training_metadata(cfg, RunFacts("sd1", "base.safetensors", 4, 0, 1, 8, 0.0, {}))
    assert meta["ss_network_module"] == "lycoris.kohya" and meta["ss_fp8_base"] == "True"
    args = json.loads(meta["ss_network_args"])
    assert args["algo"] == "lokr" and args["factor"] == "8" and args["dora_wd"] == "True" and args["conv_dim"] == "4"
    assert meta["ss_optimizer"] == "Prodigy(d_coef=0.5,decouple=True)"
    assert read_training_metadata(meta)["fp8_base"] is True


def test_a_plain_lora_writes_what_kohya_writes():
    cfg = TrainConfig(weight_decay=0.1, betas="0.9,0.99", optimizer_type="AdamW8bit")
    meta = training_metadata(cfg, RunFacts("sdxl", "b", 1, 0, 1, 1, 0.0, {}))
    assert meta["ss_network_module"] == "networks.lora" and json.loads(meta["ss_network_args"]) == {}
    assert meta["ss_optimizer"] == "AdamW8bit(weight_decay=0.1,betas=(0.9, 0.99))"
    assert field_kwargs(cfg) == {"weight_decay": 0.1, "betas": (0.9, 0.99)}


def test_network_args_a_field_disagrees_with_or_this_trainer_does_not_use_are_named():
    found = problems(TrainConfig(algo="loha", network_args=["algo=lokr", "use_tucker=True", "bogus=1",
                                                            "preset=attn-only", "conv_dim=x"]))
    text = "\n".join(found)
    assert "algo is 'loha', but network_args says algo='lokr'" in text
    assert "'use_tucker=True' is not supported" in text and "'bogus=1' is not a setting" in text
    assert "'preset=attn-only' is not supported" in text and "'conv_dim=x': not a number" in text
    warnings = validate(TrainConfig(algo="loha", network_args=["preset=full"]), need_paths=False)
    assert any("preset=full" in w and "conv_dim" in w for w in warnings)   # as kohya_ss writes it: taken, explained
    assert "algo 'dylora'" in "\n".join(problems(TrainConfig(network_args=["algo=dylora"])))
    # the same value twice is fine; a field at its default takes the string's value
    assert TrainConfig(algo="loha", network_args=["algo=loha"]).network_settings()["algo"] == "loha"
    assert TrainConfig(network_args=["algo=locon"]).network_settings()["algo"] == "lora"


@pytest.mark.parametrize("changes,words", [
    (dict(algo="loha", network_dropout=0.1), ["network_dropout", "LoHa", "rank_dropout"]),
    (dict(factor=4), ["factor (4) only shapes a LoKr"]),
    (dict(algo="lokr", factor=0), ["factor is 0"]),
    (dict(dora_wd=True, rank_dropout=0.1), ["rank_dropout cannot be used with DoRA"]),
    (dict(dora_wd=True, scale_weight_norms=1.0), ["scale_weight_norms", "DoRA"]),
    (dict(d_coef=2.0), ["d_coef is set, but the AdamW optimizer has no such setting", "Prodigy"]),
    (dict(optimizer_type="Lion", eps=1e-6), ["eps is set, but the Lion optimizer"]),
    (dict(optimizer_type="Adafactor", relative_step=True, betas="0.9,0.99"), ["betas is set, but the Adafactor"]),
    (dict(weight_decay=0.1, optimizer_args=["weight_decay=0.01"]), ["weight_decay is set both"]),
    (dict(betas="0.9,1.5"), ["betas '0.9,1.5' must each be at least 0 and below 1"]),
    (dict(dim_from_weights=True), ["dim_from_weights", "network_weights, which is empty"]),
    (dict(network_weights="a.safetensors", resume="a-state"), ["network_weights and resume are both set"]),
    (dict(network_weights="a.safetensors", dim_from_weights=True, block_dims=",".join(["4"] * 25)),
     ["dim_from_weights takes every layer's rank"]),
    (dict(up_lr_weight="1,1", network_train_text_encoder_only=True), ["up_lr_weight", "only the text encoder"]),
    (dict(block_dims="4,4,4"), ["block_dims has 3 values", "25 for SD1/SD2 and 23 for SDXL"]),
    (dict(down_lr_weight="1,1,1,1,1,1,1,1,1,1,1,1,1"), ["down_lr_weight has 13 values"]),
    (dict(mid_lr_weight="half"), ["mid_lr_weight 'half' must be numbers"]),
    (dict(down_lr_weight="cosnie"), ["down_lr_weight 'cosnie' is not a list of numbers or a curve"]),
    (dict(network_module="networks.oft"), ["network_module 'networks.oft' is not supported"]),
])
def test_an_option_that_cannot_apply_is_refused_with_the_reason_and_the_fix(changes, words):
    text = "\n".join(problems(TrainConfig(**changes)))
    for word in words:
        assert word in text, text


def test_a_continue_file_that_is_not_there_is_named():
    cfg = TrainConfig(pretrained_model_name_or_path=__file__, train_data_dir=".", output_dir=".",
                      network_weights="/nowhere/old.safetensors")
    with pytest.raises(ConfigError, match="network_weights file not found: /nowhere/old.safetensors"):
        validate(cfg)


def test_fp8_without_mixed_precision_computes_in_fp32_and_says_so():
    warnings = validate(TrainConfig(fp8_base=True, mixed_precision="no"), need_paths=False)
    assert any("fp8_base" in w and "fp32" in w for w in warnings)


def test_block_plan_follows_kohyas_tables():
    assert len(block_names("sd1")) == 25 and len(block_names("sdxl")) == 23
    settings = TrainConfig(down_lr_weight="0,1,0.5", mid_lr_weight="2", conv_dim=4,
                           network_args=["conv_alpha=2"]).network_settings()
    plan = block_plan(settings, "sd1", 8, 4.0)
    assert plan.lr_weights[:4] == [0.0, 1.0, 0.5, 1.0] and plan.lr_weights[12] == 2.0 and len(plan.lr_weights) == 25
    assert any("3 of 12 values" in n for n in plan.notes)      # as kohya: the rest keep weight 1
    assert plan.dims[0] == 0 and plan.dims[1] == 8 and plan.conv_dims[0] == 0 and plan.conv_alphas[1] == 2.0
    assert plan.rank_alpha(1, False, 8, 4.0) == (8, 4.0) and plan.rank_alpha(-1, True, 4, 2.0) == (4, 2.0)
    sdxl = block_plan(TrainConfig(up_lr_weight="zeros+0.5", block_alphas=",".join(["2"] * 23)).network_settings(),
                      "sdxl", 8, 4.0)
    assert sdxl.lr_weights[0] == sdxl.lr_weights[-1] == 1.0 and sdxl.lr_weights[13:22] == [0.5] * 9
    assert sdxl.alphas == [2.0] * 23 and sdxl.dims == [8] * 23
    with pytest.raises(ConfigError) as err:
        block_plan(TrainConfig(block_dims=",".join(["4"] * 25)).network_settings(), "sdxl", 8, 4.0)
    assert "the SD1/SD2 layout" in str(err.value) and "SDXL with 23 blocks" in str(err.value)
    assert block_plan(TrainConfig().network_settings(), "sd1", 8, 4.0) is None
