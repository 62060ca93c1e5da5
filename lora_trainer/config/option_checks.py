"""The checks of the network, per-block, optimizer, fp8 and continue-from-a-file options, and the ones
across them: an option the chosen optimizer, network type or setting cannot use is refused with the reason
and the fix, never ignored. ``schema.validate`` runs them with the other checks. Torch-free.
"""
from __future__ import annotations

from ..errors import ConfigError
from . import blocks, optimizer_fields
from .network_args import check_network, network_settings

ADAPTIVE_OPTIMIZERS = ("prodigy", "dadaptadam", "dadaptation", "dadaptlion")


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
