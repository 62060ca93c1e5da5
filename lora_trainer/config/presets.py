"""Named starting points that fill the training form: what is trained, and how much GPU memory there is.

Two kinds, applied in this order (a later one wins where both set a field):

* subject presets — ``character``, ``style``, ``concept``. Values follow the tutorials the
  product is built from: rank 32 / alpha 16 for characters ("no need to raise the rank for
  characters"), 64 / 32 for painting styles ("complex styles 64–128"), 16 / 8 for objects
  and outfits, the text encoder at half the UNet rate (the usual range is 1/2 to 1/10),
  ``constant_with_warmup`` with ~5 % warm-up ("small datasets: about 5 % of the
  steps"), and a saved file every epoch so the best one can be picked on an X/Y/Z grid.
* VRAM tiers — 8 / 12 / 16 / 24 GB per family (``sd1`` also covers SD2 at 512 px). Batch size and
  gradient checkpointing come from the memory model in the performance notes, measured on an
  H100 and cross-checked with published figures: SD1.5 @512 needs ≈3.1 GB at batch 1 plus ≈1.3 GB
  per extra image (≈2.1 GB + 0.3 GB per image with checkpointing); SDXL @1024 ≈12–15 GB at batch 1
  without checkpointing and ≈6.5 GB + 0.9 GB per image with it (``estimated_peak_gb``). Each tier
  leaves at least a third of the card free for the desktop, the CUDA context and fragmentation,
  except SDXL on 8 GB, which has no room to spare: it follows kohya's published "SDXL LoRA in 8 GB"
  recipe (UNet only, checkpointing, rank 4–8) but keeps plain AdamW. The 8-bit optimizer of that
  recipe saves 0.13 GB for a rank-8 LoRA's states, fails on many Windows setups, and its update runs
  outside the CUDA graph with an fp32 gradient buffer kept between steps (85 MB at rank 8).
* fp8 tiers — SD1.5 on 4 GB and SDXL on 6 GB: the smallest tiers, with the frozen UNet stored in fp8
  (``fp8_base``, as kohya's low-VRAM recipes), which saves half of its bf16 weights: 0.86 GB for SD1.5's
  860 M parameters, 2.57 GB for SDXL's 2.57 G. Checkpointing, batch 1; SDXL trains the UNet only (its
  text encoders' outputs are cached and leave the card) at rank 8. Their figures come from the memory
  model less that saving until measured as whole ``train`` runs under a cap (benchmarks/bench_device.sh,
  part fp8-presets).

Torch-free: the form and the benchmark's memory check read these tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .schema import TrainConfig

SUBJECT = "subject"
VRAM = "vram"
USER = "user"                                        # saved from the form (config/user_presets.py)
FAMILIES = ("sd1", "sdxl")
VRAM_TIERS_GB = (8, 12, 16, 24)                      # every family
SMALLEST_TIER_GB = {"sd1": 4, "sdxl": 6}            # with fp8_base
FP8_SAVING_GB = {"sd1": 0.86, "sdxl": 2.57}         # half the UNet's bf16 weights


def tiers_gb(family: str) -> tuple[int, ...]:
    return (SMALLEST_TIER_GB["sdxl" if family == "sdxl" else "sd1"],) + VRAM_TIERS_GB


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)
    kind: str = SUBJECT
    family: str | None = None
    vram_gb: int | None = None
    estimated_peak_gb: float | None = None   # from the memory model above, for the benchmark's check


_SUBJECTS = (
    Preset("character", "Character", sentence("config.preset.character"),
           {"network_dim": 32, "network_alpha": 16.0, "learning_rate": 1e-4, "unet_lr": 1e-4,
            "text_encoder_lr": 5e-5, "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 0.05,
            "max_train_epochs": 10, "save_every_n_epochs": 1, "shuffle_caption": True, "keep_tokens": 1}),
    Preset("style", "Style", sentence("config.preset.style"),
           {"network_dim": 64, "network_alpha": 32.0, "learning_rate": 1e-4, "unet_lr": 1e-4,
            "text_encoder_lr": 5e-5, "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 0.05,
            "max_train_epochs": 10, "save_every_n_epochs": 1, "shuffle_caption": True, "keep_tokens": 0}),
    Preset("concept", "Concept", sentence("config.preset.concept"),
           {"network_dim": 16, "network_alpha": 8.0, "learning_rate": 1e-4, "unet_lr": 1e-4,
            "text_encoder_lr": 5e-5, "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 0.05,
            "max_train_epochs": 10, "save_every_n_epochs": 1, "shuffle_caption": True, "keep_tokens": 1}),
)

_SD1_BASE = {"resolution": "512", "min_bucket_reso": 256, "max_bucket_reso": 1024, "cache_latents": True,
             "optimizer_type": "AdamW", "network_train_unet_only": False}
_SDXL_BASE = {"resolution": "1024", "min_bucket_reso": 512, "max_bucket_reso": 2048, "cache_latents": True,
              "optimizer_type": "AdamW", "network_train_unet_only": False}

# Memory model (GB) of the performance notes: (batch-1 peak, per extra image) without / with checkpointing.
_MEMORY = {"sd1": ((3.1, 1.3), (2.1, 0.3)), "sdxl": ((13.5, 8.8), (6.5, 0.86))}

# (family, GB, batch, gradient checkpointing, extra values, description)
_TIERS = (
    ("sd1", 4, 1, True, {"fp8_base": True}, sentence("config.preset.sd1_4gb")),
    ("sd1", 8, 2, True, {}, sentence("config.preset.sd1_8gb")),
    ("sd1", 12, 4, False, {}, sentence("config.preset.sd1_12gb")),
    ("sd1", 16, 6, False, {}, sentence("config.preset.sd1_16gb")),
    ("sd1", 24, 8, False, {}, sentence("config.preset.sd1_24gb")),
    ("sdxl", 6, 1, True, {"fp8_base": True, "network_train_unet_only": True, "network_dim": 8, "network_alpha": 4.0},
     sentence("config.preset.sdxl_6gb")),
    ("sdxl", 8, 1, True, {"network_train_unet_only": True, "network_dim": 8, "network_alpha": 4.0},
     sentence("config.preset.sdxl_8gb")),
    ("sdxl", 12, 2, True, {}, sentence("config.preset.sdxl_12gb")),
    ("sdxl", 16, 4, True, {}, sentence("config.preset.sdxl_16gb")),
    ("sdxl", 24, 8, True, {}, sentence("config.preset.sdxl_24gb")),
)


def estimated_peak_gb(family: str, batch: int, checkpointing: bool, fp8: bool = False) -> float:
    """Training peak at the family's native resolution, from the memory model above."""
    key = "sdxl" if family == "sdxl" else "sd1"
    first, per_image = _MEMORY[key][bool(checkpointing)]
    return round(first + per_image * (batch - 1) - (FP8_SAVING_GB[key] if fp8 else 0.0), 1)


_FAMILY_TITLES = {"sd1": "SD 1.5", "sdxl": "SDXL"}


def _tier(family: str, gb: int, batch: int, checkpointing: bool, extra: dict, description: str) -> Preset:
    values = dict(_SD1_BASE if family == "sd1" else _SDXL_BASE)
    values.update(train_batch_size=batch, gradient_checkpointing=checkpointing)
    values.update(extra)
    return Preset(f"{family}-{gb}gb", f"{_FAMILY_TITLES[family]} · {gb} GB", description, values,
                  kind=VRAM, family=family, vram_gb=gb,
                  estimated_peak_gb=estimated_peak_gb(family, batch, checkpointing, bool(extra.get("fp8_base"))))


PRESETS: dict[str, Preset] = {p.name: p for p in _SUBJECTS}
PRESETS.update((p.name, p) for p in (_tier(*row) for row in _TIERS))


def preset_names(kind: str | None = None, family: str | None = None) -> list[str]:
    return [p.name for p in PRESETS.values()
            if (kind is None or p.kind == kind) and (family is None or p.family == family)]


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(msg("config.no_preset", name=name),
                          msg("config.no_preset.advice", names=", ".join(PRESETS))) from None


def vram_tier(family: str | None, vram_gb: float) -> Preset:
    """The largest tier of ``family`` (SD2 counts as sd1, unknown as sd1) that fits ``vram_gb``."""
    family = "sdxl" if family == "sdxl" else "sd1"
    tiers = tiers_gb(family)
    fitting = [gb for gb in tiers if gb <= vram_gb] or [tiers[0]]
    return PRESETS[f"{family}-{max(fitting)}gb"]


def _preset(preset: Preset | str) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def apply_preset(cfg: TrainConfig, preset: Preset | str) -> TrainConfig:
    """``cfg`` with the preset's values (a built-in one by name, or a ``Preset``); every other setting (paths,
    names) is kept."""
    return cfg.replace(**_preset(preset).values)


def preset_changes(cfg: TrainConfig, preset: Preset | str) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for each value the preset would change: shown so nothing changes unseen."""
    return [(key, getattr(cfg, key), value) for key, value in _preset(preset).values.items()
            if getattr(cfg, key) != value]
