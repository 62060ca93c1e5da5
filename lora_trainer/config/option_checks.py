"""The settings' checks beyond a field's range (part of ``validation.validate``): caption length, masks,
augmentation, noise, Lion with regularization images; network type, per-block, optimizer, fp8 and
continue-from-a-file options, and the ones across them. A value that cannot work is a problem that names the
setting and the fix, never ignored; a setting that changes how another one works, or changes nothing, or works
worse with another one, is a warning. Torch-free.
"""
from __future__ import annotations

import os

from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import blocks, optimizer_fields
from .messages import LION_WITH_REGULARIZATION  # noqa: F401  (one fixed sentence the WebUI's localization knows)
from .network_args import check_network, network_settings

TOKEN_LIMITS = (75, 150, 225)          # kohya's max_token_length: chunks of 75 tokens
MULTIRES_DISCOUNT_DEFAULT = 0.3
ADAPTIVE_OPTIMIZERS = ("prodigy", "dadaptadam", "dadaptation", "dadaptlion")
LION_OPTIMIZERS = ("lion", "lion8bit", "pagedlion8bit")


def check_options(cfg, problems: list[str], warnings: list[str], *, need_paths: bool = True) -> None:
    """Append what is wrong with ``cfg``'s options to ``problems`` and what is worth knowing to ``warnings``."""
    _token_length(cfg, problems)
    _masks(cfg, problems, need_paths)
    _augmentation(cfg, warnings)
    _noise(cfg, warnings)
    _optimizer(cfg, warnings)


def _token_length(cfg, problems: list[str]) -> None:
    if cfg.max_token_length not in TOKEN_LIMITS:
        nearest = min(TOKEN_LIMITS, key=lambda limit: abs(limit - cfg.max_token_length))
        problems.append(sentence("config.token_limit", value=cfg.max_token_length, nearest=nearest))


def _masks(cfg, problems: list[str], need_paths: bool) -> None:
    folder = cfg.conditioning_data_dir
    if cfg.masked_loss and not folder and not cfg.alpha_mask:
        problems.append(sentence("config.masked_no_masks"))
    if folder and not cfg.masked_loss:
        problems.append(sentence("config.mask_folder_unused", folder=folder))
    if folder and cfg.alpha_mask:
        problems.append(sentence("config.two_masks"))
    if need_paths and folder and not os.path.isdir(folder):
        problems.append(sentence("config.mask_folder_missing", folder=folder))


def _augmentation(cfg, warnings: list[str]) -> None:
    if cfg.cache_latents and not cfg.latents_cacheable:
        names = [name for name in ("color_aug", "random_crop") if getattr(cfg, name)]
        which = msg("config.and", first=names[0], second=names[1]) if len(names) == 2 else names[0]
        warnings.append(sentence("config.not_cached", which=which))


def _noise(cfg, warnings: list[str]) -> None:
    if not cfg.multires_noise_iterations and cfg.multires_noise_discount != MULTIRES_DISCOUNT_DEFAULT:
        warnings.append(sentence("config.discount_unused"))
    if cfg.debiased_estimation_loss and cfg.min_snr_gamma:
        warnings.append(sentence("config.two_snr_weights"))


def _optimizer(cfg, warnings: list[str]) -> None:
    if cfg.optimizer_type.lower() in LION_OPTIMIZERS and cfg.reg_data_dir.strip():
        warnings.append(sentence("config.lion_regularization"))


def options_problems(cfg, warnings: list[str]) -> list[str]:
    """Problems (ConfigError lines) of these options; notes that are not refusals go to ``warnings``."""
    problems = optimizer_fields.check(cfg)
    try:
        settings = network_settings(cfg)
    except ConfigError as err:
        return problems + err.problems
    problems += check_network(cfg, settings)
    problems += blocks.check_syntax(settings)
    lr_blocks = [k for k in blocks.LR_KEYS if settings[k]]
    if lr_blocks and cfg.optimizer_type.lower() in ADAPTIVE_OPTIMIZERS:
        problems.append(sentence("config.block_lr_adaptive", names=", ".join(lr_blocks), optimizer=cfg.optimizer_type))
    if lr_blocks and not cfg.train_unet:
        problems.append(sentence("config.block_lr_no_unet", names=", ".join(lr_blocks)))
    if cfg.dim_from_weights and not cfg.network_weights:
        problems.append(sentence("config.dim_from_nothing"))
    if cfg.dim_from_weights and any(settings[k] for k in blocks.DIM_KEYS):
        problems.append(sentence("config.dim_from_and_blocks"))
    if cfg.network_weights and cfg.resume:
        problems.append(sentence("config.weights_and_resume"))
    if any(str(a).replace(" ", "").lower() == "preset=full" for a in cfg.network_args) and settings["conv_dim"] is None:
        warnings.append(sentence("config.preset_full"))
    if cfg.fp8_base and cfg.mixed_precision == "no":
        warnings.append(sentence("config.fp8_fp32"))
    return problems
