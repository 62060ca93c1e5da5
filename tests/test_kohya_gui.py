"""Import of kohya_ss GUI settings files (.json): renamed keys, GUI conventions, what is ignored (torch-free)."""
import json

import pytest

from lora_trainer.config.schema import TrainConfig
from lora_trainer.errors import ConfigError
from lora_trainer.ui.kohya_gui import import_kohya_gui, looks_like_kohya_gui, read_kohya_gui_file

# As kohya_ss's LoRA tab saves it (v22–v24 layout), trimmed of nothing: every key the GUI writes.
KOHYA_GUI_SAMPLE = {
    "LoRA_type": "Standard", "LyCORIS_preset": "full", "adaptive_noise_scale": 0, "additional_parameters": "",
    "block_alphas": "", "block_dims": "", "block_lr_zero_threshold": "", "bucket_no_upscale": True,
    "bucket_reso_steps": 64, "cache_latents": True, "cache_latents_to_disk": False,
    "caption_dropout_every_n_epochs": 0.0, "caption_dropout_rate": 0, "caption_extension": ".txt",
    "clip_skip": "2", "color_aug": False, "constrain": 0.0, "conv_alpha": 1, "conv_block_alphas": "",
    "conv_block_dims": "", "conv_dim": 1, "debiased_estimation_loss": False, "decompose_both": False,
    "dim_from_weights": False, "down_lr_weight": "", "enable_bucket": True, "epoch": 12, "factor": -1,
    "flip_aug": False, "fp8_base": False, "full_bf16": False, "full_fp16": False, "gpu_ids": "",
    "gradient_accumulation_steps": 1, "gradient_checkpointing": True, "keep_tokens": "1",
    "learning_rate": 0.0001, "logging_dir": "D:/lora/ningguang/log", "lora_network_weights": "",
    "lr_scheduler": "cosine_with_restarts", "lr_scheduler_args": "", "lr_scheduler_num_cycles": "3",
    "lr_scheduler_power": "", "lr_warmup": 10, "max_bucket_reso": 1024, "max_data_loader_n_workers": "0",
    "max_grad_norm": 1, "max_resolution": "768,768", "max_timestep": 1000, "max_token_length": "75",
    "max_train_epochs": "", "max_train_steps": "", "mem_eff_attn": False, "mid_lr_weight": "",
    "min_bucket_reso": 256, "min_snr_gamma": 5, "min_timestep": 0, "mixed_precision": "fp16",
    "model_list": "custom", "module_dropout": 0, "multi_gpu": False, "multires_noise_discount": 0.3,
    "multires_noise_iterations": 0, "network_alpha": 16, "network_dim": 32, "network_dropout": 0,
    "noise_offset": 0, "noise_offset_type": "Original", "num_cpu_threads_per_process": 2, "num_machines": 1,
    "num_processes": 1, "optimizer": "AdamW8bit", "optimizer_args": "weight_decay=0.01",
    "output_dir": "D:/lora/ningguang/model", "output_name": "ningguang",
    "persistent_data_loader_workers": False,
    "pretrained_model_name_or_path": "D:/sd/models/Stable-diffusion/anything-v5.safetensors",
    "prior_loss_weight": 1.0, "random_crop": False, "rank_dropout": 0, "rank_dropout_scale": False,
    "reg_data_dir": "", "rescaled": False, "resume": "", "sample_every_n_epochs": 1, "sample_every_n_steps": 0,
    "sample_prompts": "ningguang, 1girl --n lowres --w 512 --h 512", "sample_sampler": "euler_a",
    "save_every_n_epochs": 2, "save_every_n_steps": 0, "save_last_n_steps": 0, "save_last_n_steps_state": 0,
    "save_model_as": "safetensors", "save_precision": "fp16", "save_state": False,
    "scale_v_pred_loss_like_noise_pred": False, "scale_weight_norms": 0, "sdxl": False,
    "sdxl_cache_text_encoder_outputs": False, "sdxl_no_half_vae": True, "seed": "1234",
    "shuffle_caption": True, "stop_text_encoder_training": 0, "text_encoder_lr": 5e-05,
    "train_batch_size": 2, "train_data_dir": "D:/lora/ningguang/img", "train_norm": False,
    "train_on_input": True, "training_comment": "trigger: ningguang", "unet_lr": 0.0001, "unit": 1,
    "up_lr_weight": "", "use_cp": False, "use_scalar": False, "use_tucker": False, "use_wandb": False,
    "v2": False, "v_parameterization": False, "v_pred_like_loss": 0, "vae": "", "vae_batch_size": 0,
    "wandb_api_key": "", "weighted_captions": False, "xformers": "xformers",
}


def test_a_realistic_gui_file_maps_onto_our_settings(tmp_path):
    path = tmp_path / "ningguang.json"
    path.write_text(json.dumps(KOHYA_GUI_SAMPLE, indent=2), encoding="utf-8")
    result = read_kohya_gui_file(str(path))
    cfg = result.config
    assert cfg.pretrained_model_name_or_path.endswith("anything-v5.safetensors")
    assert (cfg.train_data_dir, cfg.output_dir, cfg.output_name) == \
        ("D:/lora/ningguang/img", "D:/lora/ningguang/model", "ningguang")
    assert cfg.max_train_epochs == 12 and cfg.resolution == "768,768" and cfg.optimizer_type == "AdamW8bit"
    assert (cfg.network_dim, cfg.network_alpha, cfg.train_batch_size) == (32, 16.0, 2)
    assert (cfg.unet_lr, cfg.text_encoder_lr) == (1e-4, 5e-5) and not cfg.network_train_unet_only
    assert cfg.lr_warmup_steps == pytest.approx(0.10) and cfg.lr_scheduler_num_cycles == 3
    assert cfg.min_snr_gamma == 5 and cfg.noise_offset is None and cfg.network_dropout is None
    assert cfg.clip_skip == 2 and cfg.keep_tokens == 1 and cfg.seed == 1234 and cfg.shuffle_caption
    assert cfg.optimizer_args == ["weight_decay=0.01"] and cfg.conv_dim is None  # conv only for LoCon
    assert cfg.v_parameterization is None and cfg.save_every_n_epochs == 2
    # switched on in the GUI, no effect here: named; defaults and GUI plumbing: silent
    assert result.ignored == []   # multires_noise_discount: the GUI passes it on only with noise type Multires
    assert cfg.max_token_length == 75 and cfg.multires_noise_iterations is None and not cfg.flip_aug
    assert any("warm-up" in n for n in result.notes)


def test_learning_rate_zero_means_that_part_is_not_trained():
    cfg = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, text_encoder_lr=0)).config
    assert cfg.network_train_unet_only and cfg.unet_lr == 1e-4
    cfg = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, text_encoder_lr=0, unet_lr=0)).config
    assert not cfg.network_train_unet_only and cfg.unet_lr is None and cfg.learning_rate == 1e-4


def test_locon_keeps_conv_rank_and_lycoris_only_types_are_refused():
    cfg = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, LoRA_type="Kohya LoCon", conv_dim=8, conv_alpha=4)).config
    assert (cfg.conv_dim, cfg.conv_alpha) == (8, 4.0)
    with pytest.raises(ConfigError) as err:
        import_kohya_gui(dict(KOHYA_GUI_SAMPLE, LoRA_type="LyCORIS/iA3"))
    assert "iA3" in str(err.value) and "LyCORIS/LoHa" in err.value.advice


def test_lycoris_types_carry_algo_dora_factor_and_name_what_does_not_apply():
    loha = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, LoRA_type="LyCORIS/LoHa", conv_dim=4, conv_alpha=2, dora_wd=True,
                                 factor=8, down_lr_weight="1,0.5", use_tucker=True))
    cfg = loha.config
    assert (cfg.algo, cfg.dora_wd, cfg.factor, cfg.conv_dim) == ("loha", True, -1, 4)   # factor: LoKr's only
    assert cfg.network_module_text == "lycoris.kohya" and cfg.down_lr_weight == ""
    assert {"use_tucker", "down_lr_weight"} <= set(loha.ignored)   # kohya_ss passes block weights to LoRA only
    assert any("LyCORIS_preset 'full'" in n for n in loha.notes)
    lokr = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, LoRA_type="LyCORIS/LoKr", factor=8, LyCORIS_preset="attn-only"))
    assert (lokr.config.algo, lokr.config.factor) == ("lokr", 8) and "LyCORIS_preset" in lokr.ignored
    standard = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, up_lr_weight="0,0,1", dora_wd=True, fp8_base=True,
                                     lora_network_weights="D:/lora/old.safetensors", dim_from_weights=True))
    cfg = standard.config
    assert cfg.algo == "lora" and cfg.up_lr_weight == "0,0,1" and not cfg.dora_wd and "dora_wd" in standard.ignored
    assert cfg.fp8_base and cfg.network_weights == "D:/lora/old.safetensors" and cfg.dim_from_weights


def test_gui_epochs_box_wins_over_epoch_and_options_named_when_on():
    result = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, max_train_epochs="20", flip_aug=True, full_fp16=True,
                                   additional_parameters="--debug"))
    assert result.config.max_train_epochs == 20 and result.config.flip_aug
    assert result.ignored == ["additional_parameters", "full_fp16"]


def test_data_and_noise_options_carry_over_as_the_gui_passes_them():
    cfg = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, max_token_length=225, color_aug=True, random_crop=True,
                                masked_loss=True, debiased_estimation_loss=True, ip_noise_gamma=0.1,
                                noise_offset=0.05, multires_noise_iterations=6, multires_noise_discount=0.8)).config
    assert cfg.max_token_length == 225 and cfg.color_aug and cfg.random_crop and cfg.masked_loss
    assert cfg.debiased_estimation_loss and cfg.ip_noise_gamma == 0.1
    # noise type "Original": the offset is used, the multires settings are the GUI's hidden ones
    assert cfg.noise_offset == 0.05 and cfg.multires_noise_iterations is None and cfg.multires_noise_discount == 0.3
    multires = import_kohya_gui(dict(KOHYA_GUI_SAMPLE, noise_offset_type="Multires", noise_offset=0.05,
                                     multires_noise_iterations=6, multires_noise_discount=0.8)).config
    assert multires.noise_offset is None and (multires.multires_noise_iterations, multires.multires_noise_discount) \
        == (6, 0.8)
    assert import_kohya_gui(dict(KOHYA_GUI_SAMPLE, ip_noise_gamma=0)).config.ip_noise_gamma is None   # 0 is off


def test_import_keeps_what_the_file_does_not_set():
    base = TrainConfig(output_dir="/webui/models/Lora", network_dim=4)
    cfg = import_kohya_gui({"LoRA_type": "Standard", "epoch": 3}, base=base).config
    assert cfg.output_dir == "/webui/models/Lora" and cfg.network_dim == 4 and cfg.max_train_epochs == 3


def test_bad_values_and_files_are_explained(tmp_path):
    with pytest.raises(ConfigError) as err:
        import_kohya_gui(dict(KOHYA_GUI_SAMPLE, train_batch_size="two"))
    assert "train_batch_size" in str(err.value)
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_kohya_gui_file(str(broken))
    assert "not a valid JSON" in str(err.value)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"prompt": "a cat"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a kohya_ss GUI settings file"):
        read_kohya_gui_file(str(other))
    assert looks_like_kohya_gui(KOHYA_GUI_SAMPLE) and not looks_like_kohya_gui([1, 2])
