"""The checks of the caption-length and noise settings (part of ``schema.validate``).

A value that cannot work is a problem that names the setting and the fix; a setting that changes how
another one works, or changes nothing, is a warning. Torch-free.
"""
from __future__ import annotations

TOKEN_LIMITS = (75, 150, 225)          # kohya's max_token_length: chunks of 75 tokens
MULTIRES_DISCOUNT_DEFAULT = 0.3


def check_options(cfg, problems: list[str], warnings: list[str], *, need_paths: bool = True) -> None:
    """Append what is wrong with ``cfg``'s options to ``problems`` and what is worth knowing to ``warnings``."""
    _token_length(cfg, problems)
    _noise(cfg, warnings)


def _token_length(cfg, problems: list[str]) -> None:
    if cfg.max_token_length not in TOKEN_LIMITS:
        nearest = min(TOKEN_LIMITS, key=lambda limit: abs(limit - cfg.max_token_length))
        problems.append(f"max_token_length is {cfg.max_token_length}, but it must be 75, 150 or 225 (captions are "
                        f"encoded in chunks of 75 tokens); use {nearest}")


def _noise(cfg, warnings: list[str]) -> None:
    if not cfg.multires_noise_iterations and cfg.multires_noise_discount != MULTIRES_DISCOUNT_DEFAULT:
        warnings.append("multires_noise_discount does nothing without multires_noise_iterations (6–10 is usual)")
    if cfg.debiased_estimation_loss and cfg.min_snr_gamma:
        warnings.append("debiased_estimation_loss and min_snr_gamma both weight the loss by the timestep's SNR and "
                        "multiply; most runs use one of them")
