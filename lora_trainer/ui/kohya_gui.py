"""Import a kohya_ss GUI settings file (the .json its "Save" button writes) into a ``TrainConfig``.

The GUI stores its form, not sd-scripts' arguments: a few keys are renamed (``epoch``,
``max_resolution``, ``optimizer``), the warm-up is a percentage, a learning rate of 0 means
"do not train this part", 0 means "off" for optional features, and ``LoRA_type`` picks the network.
Keys that have no effect here are only named when they are switched on, so the user sees what
will not carry over. Torch- and gradio-free.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..config.files import HANDLED_KOHYA_KEYS, config_from_dict
from ..config.schema import TrainConfig
from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the import's sentences)

# GUI key → our field, where the names differ.
RENAMED = {"epoch": "max_train_epochs", "max_resolution": "resolution", "optimizer": "optimizer_type",
           "lora_network_weights": "network_weights"}
# Optional features the GUI switches off with 0 (ours: empty).
ZERO_IS_OFF = ("min_snr_gamma", "noise_offset", "network_dropout", "rank_dropout", "module_dropout",
               "scale_weight_norms", "max_train_steps", "max_train_epochs", "clip_skip",
               "lr_scheduler_num_cycles", "lr_scheduler_power", "multires_noise_iterations", "ip_noise_gamma")
# The GUI's noise type picks which of its noise settings it passes on: the other kind's are left behind.
NOISE_SETTINGS = {"Original": ("noise_offset",), "Multires": ("multires_noise_iterations", "multires_noise_discount")}
# Network types the WebUI loads natively: (algo, uses conv_dim, LyCORIS).
LORA_TYPES = {"Standard": ("lora", False, False), "Kohya LoCon": ("lora", True, False), "LoCon": ("lora", True, False),
              "LyCORIS/LoCon": ("lora", True, True), "LyCORIS/LoHa": ("loha", True, True),
              "LyCORIS/LoKr": ("lokr", True, True)}
# Settings the GUI passes only for some network types: read here, not by the generic loop.
BY_TYPE = {"dora_wd", "factor", "LyCORIS_preset", "down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_dims",
           "block_alphas", "conv_block_dims", "conv_block_alphas"}
# GUI-only keys: how the GUI runs things, nothing a training result depends on.
GUI_ONLY = {"model_list", "training_preset", "num_cpu_threads_per_process", "num_processes", "num_machines",
            "multi_gpu", "gpu_ids", "main_process_port", "dynamo_backend", "dynamo_mode", "dynamo_use_fullgraph",
            "dynamo_use_dynamic", "extra_accelerate_launch_args", "mixed_precision_accelerate", "use_wandb",
            "wandb_api_key", "wandb_run_name", "log_tracker_name", "log_tracker_config", "log_config",
            "save_as_bool", "sample_every_n_steps", "sample_every_n_epochs", "sample_sampler", "sample_prompts",
            "headless", "print_only", "stop_text_encoder_training", "lr_warmup",
            "LoRA_type", "conv_dim", "conv_alpha", "text_encoder_lr", "unet_lr", "v_parameterization", "seed",
            "keep_tokens", "additional_parameters", "max_train_epochs", "sdxl_no_half_vae",
            "sdxl_cache_text_encoder_outputs", "noise_offset_type"}
OFF_VALUES = (None, "", 0, 0.0, False, "0", "none", "None", "[]", {}, [])
# GUI keys whose default is not "off": only a changed value is worth naming.
GUI_DEFAULTS = {"max_timestep": 1000, "factor": -1, "unit": 1,
                "train_on_input": True, "loss_type": "l2", "huber_c": 0.1, "huber_schedule": "snr",
                "sample_sampler": "euler_a", "save_model_as": "safetensors"}


@dataclass
class KohyaGuiImport:
    config: TrainConfig
    notes: list[str] = field(default_factory=list)     # how a GUI value was read
    ignored: list[str] = field(default_factory=list)   # keys switched on in the GUI that have no effect here


def _number(value: Any) -> float | None:
    if value in ("", None):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _translate(data: dict) -> tuple[dict, list[str], list[str]]:
    names = TrainConfig.field_names()
    out: dict[str, Any] = {}
    notes: list[str] = []
    ignored: list[str] = []

    lora_type = str(data.get("LoRA_type") or "Standard")
    if lora_type not in LORA_TYPES:
        raise ConfigError(msg("ui.kohya.network", lora_type=lora_type), msg("ui.kohya.network.advice"))
    algo, uses_conv, lycoris = LORA_TYPES[lora_type]
    if uses_conv and (_number(data.get("conv_dim")) or 0) > 0:
        out["conv_dim"] = int(_number(data["conv_dim"]))
        if _number(data.get("conv_alpha")):
            out["conv_alpha"] = _number(data["conv_alpha"])
        if algo == "lora" and lora_type != "Kohya LoCon":
            notes.append(sentence("ui.kohya.as_locon", lora_type=lora_type))
    out.update(_by_type(data, algo, lycoris, notes, ignored))

    unet_lr, te_lr = _number(data.get("unet_lr")), _number(data.get("text_encoder_lr"))
    if unet_lr and te_lr:
        out.update(unet_lr=unet_lr, text_encoder_lr=te_lr)
    elif unet_lr and te_lr == 0:
        out.update(unet_lr=unet_lr, network_train_unet_only=True)
        notes.append(sentence("ui.kohya.unet_only"))
    elif te_lr and unet_lr == 0:
        out.update(text_encoder_lr=te_lr, network_train_text_encoder_only=True)
        notes.append(sentence("ui.kohya.text_encoder_only"))

    warmup = _number(data.get("lr_warmup"))
    if warmup:
        out["lr_warmup_steps"] = warmup / 100.0 if warmup < 100 else 0.99
        notes.append(sentence("ui.kohya.warmup", percent=warmup, steps=out["lr_warmup_steps"]))

    if data.get("v_parameterization") is True:
        out["v_parameterization"] = True
    seed = _number(data.get("seed"))
    if seed is not None and seed >= 0:
        out["seed"] = int(seed)
    keep = _number(data.get("keep_tokens"))
    if keep is not None:
        out["keep_tokens"] = int(keep)
    if _number(data.get("stop_text_encoder_training")):
        ignored.append("stop_text_encoder_training")
    if str(data.get("additional_parameters") or "").strip():
        ignored.append("additional_parameters")

    noise_type = str(data.get("noise_offset_type") or "Original")
    unused_noise = {key for kind, keys in NOISE_SETTINGS.items() if kind != noise_type for key in keys}
    if noise_type not in NOISE_SETTINGS:
        ignored.append("noise_offset_type")
    for key, value in data.items():
        target = RENAMED.get(key, key)
        if key in GUI_ONLY or key in HANDLED_KOHYA_KEYS or key in BY_TYPE or key in unused_noise:
            continue
        if target in names:
            if target in ZERO_IS_OFF and _number(value) == 0:
                value = None
            if target in ("network_args", "optimizer_args") and isinstance(value, str):
                value = value.split()
            if value == "" and target not in ("reg_data_dir", "resume", "logging_dir", "training_comment"):
                continue  # the GUI's "empty = default"
            out[target] = value
        elif value not in OFF_VALUES and GUI_DEFAULTS.get(key, object()) != value:
            ignored.append(key)
    if data.get("max_train_epochs") not in OFF_VALUES:   # the GUI's own epochs box wins over "epoch"
        out["max_train_epochs"] = data["max_train_epochs"]
    return out, notes, sorted(set(ignored))


def _by_type(data: dict, algo: str, lycoris: bool, notes: list[str], ignored: list[str]) -> dict:
    """The settings kohya_ss passes only for some network types: LyCORIS's algo, DoRA, LoKr's factor and
    preset; kohya's per-block values for its own LoRA types. Left-over values of another type are named."""
    out: dict[str, Any] = {}
    if lycoris:
        out["network_module"] = "lycoris.kohya"
        if algo != "lora":
            out["algo"] = algo
        if data.get("dora_wd") in (True, "true", "True"):
            out["dora_wd"] = True
        if algo == "lokr" and _number(data.get("factor")) not in (None, -1):
            out["factor"] = int(_number(data["factor"]))
        preset = str(data.get("LyCORIS_preset") or "full")
        if preset == "full":
            notes.append(sentence("ui.kohya.full_preset"))
        elif preset not in ("attn-mlp",):
            ignored.append("LyCORIS_preset")
    elif data.get("dora_wd") in (True, "true", "True"):
        ignored.append("dora_wd")
    blocks = [k for k in ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_dims", "block_alphas",
                          "conv_block_dims", "conv_block_alphas") if str(data.get(k) or "").strip()]
    for key in blocks:
        if lycoris:
            ignored.append(key)   # kohya_ss passes them to kohya's LoRA only
        else:
            out[key] = str(data[key]).strip()
    return out


def import_kohya_gui(data: dict, base: TrainConfig | None = None) -> KohyaGuiImport:
    """Map a kohya_ss GUI settings dict onto ``base`` (default settings when None)."""
    if not isinstance(data, dict):
        raise ConfigError(msg("ui.kohya.not_an_object"))
    values, notes, ignored = _translate(data)
    cfg, _warnings = config_from_dict(values, base=base, source="kohya_ss settings")
    return KohyaGuiImport(cfg, notes, ignored)


def looks_like_kohya_gui(data: Any) -> bool:
    return isinstance(data, dict) and any(k in data for k in ("LoRA_type", "max_resolution", "epoch", "model_list"))


def read_kohya_gui_file(path: str, base: TrainConfig | None = None) -> KohyaGuiImport:
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8-sig", errors="replace")
    except OSError as err:
        raise ConfigError(msg("ui.kohya.cannot_read", path=path, reason=err.strerror)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(msg("ui.kohya.bad_json", path=path, error=err.msg, line=err.lineno),
                          msg("ui.kohya.bad_json.advice")) from None
    if not looks_like_kohya_gui(data):
        raise ConfigError(msg("ui.not_kohya", source=path), msg("ui.kohya.not_gui.advice"))
    return import_kohya_gui(data, base)
