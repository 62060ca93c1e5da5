"""The settings' checks beyond a field's range (part of ``validation.validate``): caption length, masks,
augmentation, noise, Lion with regularization images; network type, per-block, optimizer, fp8 and
continue-from-a-file options, and the ones across them. A value that cannot work is a problem that names the
setting and the fix, never ignored; a setting that changes how another one works, or changes nothing, or works
worse with another one, is a warning. Torch-free.
"""
from __future__ import annotations

import os

from ..errors import ConfigError
from . import blocks, optimizer_fields
from .network_args import check_network, network_settings

TOKEN_LIMITS = (75, 150, 225)          # kohya's max_token_length: chunks of 75 tokens
MULTIRES_DISCOUNT_DEFAULT = 0.3
ADAPTIVE_OPTIMIZERS = ("prodigy", "dadaptadam", "dadaptation", "dadaptlion")
LION_OPTIMIZERS = ("lion", "lion8bit", "pagedlion8bit")
# one fixed sentence, so that the WebUI's localization (localizations/zh_CN.json) puts it into Chinese
LION_WITH_REGULARIZATION = ("Lion optimizers (Lion, Lion8bit, PagedLion8bit) with regularization images "
                            "(reg_data_dir) tend to over-fit or give worse pictures, the tutorials find: use AdamW "
                            "or AdamW8bit with regularization images, or clear reg_data_dir to train without them")


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
        problems.append(f"max_token_length is {cfg.max_token_length}, but it must be 75, 150 or 225 (captions are "
                        f"encoded in chunks of 75 tokens); use {nearest}")


def _masks(cfg, problems: list[str], need_paths: bool) -> None:
    folder = cfg.conditioning_data_dir
    if cfg.masked_loss and not folder and not cfg.alpha_mask:
        problems.append("masked_loss is on, but no masks are named: choose the mask folder (conditioning_data_dir), "
                        "or turn on alpha_mask to use the images' transparency as the mask")
    if folder and not cfg.masked_loss:
        problems.append(f"conditioning_data_dir names a mask folder ({folder}), but masked_loss is off: turn "
                        f"masked_loss on, or leave the mask folder empty")
    if folder and cfg.alpha_mask:
        problems.append("alpha_mask and a mask folder (conditioning_data_dir) are both set, and the loss takes one "
                        "mask: turn alpha_mask off to use the mask folder, or empty the mask folder to use the "
                        "images' transparency")
    if need_paths and folder and not os.path.isdir(folder):
        problems.append(f"conditioning_data_dir: mask folder not found: {folder} (leave it empty for none)")


def _augmentation(cfg, warnings: list[str]) -> None:
    if cfg.cache_latents and not cfg.latents_cacheable:
        which = " and ".join(name for name in ("color_aug", "random_crop") if getattr(cfg, name))
        warnings.append(f"{which} change the pixels at every step, so the latents are not cached (cache_latents is "
                        f"set aside): the VAE encodes each batch, which is slower and needs the VAE's memory")


def _noise(cfg, warnings: list[str]) -> None:
    if not cfg.multires_noise_iterations and cfg.multires_noise_discount != MULTIRES_DISCOUNT_DEFAULT:
        warnings.append("multires_noise_discount does nothing without multires_noise_iterations (6–10 is usual)")
    if cfg.debiased_estimation_loss and cfg.min_snr_gamma:
        warnings.append("debiased_estimation_loss and min_snr_gamma both weight the loss by the timestep's SNR and "
                        "multiply; most runs use one of them")


def _optimizer(cfg, warnings: list[str]) -> None:
    if cfg.optimizer_type.lower() in LION_OPTIMIZERS and cfg.reg_data_dir.strip():
        warnings.append(LION_WITH_REGULARIZATION)


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
        problems.append(f"{', '.join(lr_blocks)} give blocks learning rates of their own, but {cfg.optimizer_type} "
                        f"uses one step size for all: clear them (block_dims still works) or choose AdamW")
    if lr_blocks and not cfg.train_unet:
        problems.append(f"{', '.join(lr_blocks)} weight the UNet's blocks, but only the text encoder is trained: "
                        f"clear them or train the UNet")
    if cfg.dim_from_weights and not cfg.network_weights:
        problems.append("dim_from_weights takes the ranks from network_weights, which is empty: choose the LoRA "
                        "file to continue from, or turn dim_from_weights off")
    if cfg.dim_from_weights and any(settings[k] for k in blocks.DIM_KEYS):
        problems.append("dim_from_weights takes every layer's rank from the file, so block_dims / block_alphas / "
                        "conv_block_dims / conv_block_alphas cannot also set them: clear one of the two")
    if cfg.network_weights and cfg.resume:
        problems.append("network_weights and resume are both set: resume continues a run with its own weights "
                        "and optimizer state; network_weights starts a new run from a LoRA file. Clear one")
    if any(str(a).replace(" ", "").lower() == "preset=full" for a in cfg.network_args) and settings["conv_dim"] is None:
        warnings.append("network_args preset=full: LyCORIS's 'full' also trains the ResNet convolutions; here they "
                        "train only with conv_dim set (attention and feed-forward layers train either way)")
    if cfg.fp8_base and cfg.mixed_precision == "no":
        warnings.append("fp8_base with mixed_precision 'no': the layers compute in fp32 (bf16 is faster and what "
                        "kohya uses)")
    return problems
