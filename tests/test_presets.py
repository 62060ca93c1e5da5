"""Presets: valid settings only, VRAM tiers inside their budget, paths and names never touched (torch-free)."""
import re
from pathlib import Path

import pytest

from lora_trainer.config.schema import TrainConfig
from lora_trainer.config.validation import validate
from lora_trainer.errors import ConfigError
from lora_trainer.config.presets import (FAMILIES, PRESETS, SUBJECT, VRAM, apply_preset, estimated_peak_gb,
                                         get_preset, preset_changes, preset_names, tiers_gb, vram_tier)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_names_real_fields_and_passes_validation(name):
    preset = PRESETS[name]
    assert set(preset.values) <= TrainConfig.field_names()
    assert preset.description and preset.title
    cfg = apply_preset(TrainConfig(), name)
    warnings = validate(cfg, need_paths=False)
    assert not any("alpha" in w for w in warnings), warnings


def test_subject_presets_and_one_tier_per_family_and_size():
    assert preset_names(SUBJECT) == ["character", "style", "concept"]
    for family in FAMILIES:
        tiers = [PRESETS[n] for n in preset_names(VRAM, family)]
        assert [t.vram_gb for t in tiers] == list(tiers_gb(family))
        batches = [t.values["train_batch_size"] for t in tiers]
        assert batches == sorted(batches), "more memory never means a smaller batch"


@pytest.mark.parametrize("name", preset_names(VRAM))
def test_tiers_fit_their_card_by_the_memory_model(name):
    tier = PRESETS[name]
    peak = estimated_peak_gb(tier.family, tier.values["train_batch_size"], tier.values["gradient_checkpointing"],
                             tier.values.get("fp8_base", False))
    assert peak <= tier.vram_gb * (0.85 if tier.vram_gb <= 8 else 2 / 3)


def measured_sdxl_presets() -> dict:
    """docs/BENCHMARKS.md's newest whole-run measurements of the SDXL presets: name → (cap GB, setup peak
    reserved, steps' peak allocated, steps' peak reserved), the figures after "→" (now)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    rows = {}
    for match in re.finditer(r"^\| (sdxl-\d+gb) \([^|]*\| ([\d.]+) \|[^|]*\|[^|]*\|[^|]*\| ([\d.]+) \| "
                             r"[\d.]+ / [\d.]+ → ([\d.]+) / ([\d.]+) \| yes \|$", text, re.MULTILINE):
        rows[match[1]] = tuple(float(match[i]) for i in range(2, 6))
    return rows


def measured_fp8_tiers() -> dict:
    """docs/BENCHMARKS.md's fp8-base tiers: name → (cap GB, setup peak reserved, steps' peak reserved)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    return {m[1]: (float(m[2]), float(m[3]), float(m[4])) for m in re.finditer(
        r"^\| (sd1-4gb|sdxl-6gb) \(fp8 base[^|]*\| ([\d.]+) \| ([\d.]+) \| [\d.]+ / ([\d.]+) \| [\d.]+ \| yes \|$",
        text, re.MULTILINE)}


def test_sdxl_tiers_fit_their_card_as_measured():
    measured = measured_sdxl_presets()
    fp8 = {name for name in preset_names(VRAM) if PRESETS[name].values.get("fp8_base")}
    assert set(measured) == set(preset_names(VRAM, "sdxl")) - fp8
    for name, (cap, setup, _alloc, reserved) in measured.items():
        assert cap == pytest.approx((PRESETS[name].vram_gb - 0.5) * 2**30 / 1e9, abs=0.01)   # the card less 0.5 GiB
        assert max(setup, reserved) <= cap
    # the memory model is of the UNet's step: the UNet-only tier's estimate is its measured peak, within 5%
    _cap, _setup, alloc, reserved = measured["sdxl-8gb"]
    assert alloc * 0.95 <= PRESETS["sdxl-8gb"].estimated_peak_gb <= reserved * 1.05


def test_fp8_tiers_fit_their_card_as_measured():
    measured = measured_fp8_tiers()
    assert set(measured) == {name for name in preset_names(VRAM) if PRESETS[name].values.get("fp8_base")}
    for name, (cap, setup, reserved) in measured.items():
        assert cap == pytest.approx((PRESETS[name].vram_gb - 0.5) * 2**30 / 1e9, abs=0.01)
        assert max(setup, reserved) <= cap
def test_style_has_more_capacity_than_character_than_concept():
    dims = [PRESETS[n].values["network_dim"] for n in ("style", "character", "concept")]
    assert dims == sorted(dims, reverse=True)


def test_a_preset_keeps_paths_and_names_and_a_tier_applied_after_a_subject_wins():
    cfg = TrainConfig(train_data_dir="/data", output_name="ningguang", pretrained_model_name_or_path="/m.safetensors")
    cfg = apply_preset(apply_preset(cfg, "character"), "sdxl-8gb")
    assert (cfg.train_data_dir, cfg.output_name, cfg.pretrained_model_name_or_path) == \
        ("/data", "ningguang", "/m.safetensors")
    assert cfg.network_dim == 8 and cfg.network_train_unet_only and cfg.gradient_checkpointing
    assert cfg.resolution == "1024" and cfg.shuffle_caption  # the subject's caption handling stays


def test_changes_are_listed_before_they_are_applied():
    cfg = TrainConfig(network_dim=32, network_alpha=16.0)
    changed = {name: (old, new) for name, old, new in preset_changes(cfg, "style")}
    assert changed["network_dim"] == (32, 64)
    assert "learning_rate" not in changed  # already 1e-4: not listed


def test_vram_tier_picks_the_largest_that_fits():
    assert vram_tier("sdxl", 12).name == "sdxl-12gb"
    assert vram_tier("sd1", 11.5).name == "sd1-8gb"
    assert vram_tier("sd2", 80).name == "sd1-24gb"
    assert vram_tier(None, 4).name == "sd1-4gb" and vram_tier(None, 2).name == "sd1-4gb"
    assert vram_tier("sdxl", 6).name == "sdxl-6gb" and vram_tier("sdxl", 7.9).name == "sdxl-6gb"


def test_the_smallest_tiers_store_the_base_in_fp8():
    for name, peak in (("sd1-4gb", 1.2), ("sdxl-6gb", 3.9)):
        tier = PRESETS[name]
        assert tier.values["fp8_base"] and tier.values["gradient_checkpointing"] and tier.estimated_peak_gb == peak
    assert not any(PRESETS[n].values.get("fp8_base") for n in preset_names(VRAM) if n not in ("sd1-4gb", "sdxl-6gb"))


def test_unknown_preset_says_which_exist():
    with pytest.raises(ConfigError) as err:
        get_preset("anime")
    assert "character" in err.value.advice
