"""validation_split: which training images are held out, and what the step maths then says (torch-free)."""
from __future__ import annotations

from pathlib import Path

import pytest

from lora_trainer.config.schema import TrainConfig
from lora_trainer.config.validation import validate
from lora_trainer.data.folders import scan_dataset
from lora_trainer.data.holdout import holdout_count, split_validation
from lora_trainer.errors import ConfigError, DatasetError
from lora_trainer.config.steps import format_plan, scan_and_plan


def make_dataset(root: Path, make_image, counts: dict[str, int], reg: dict[str, int] | None = None) -> Path:
    for folder, count in counts.items():
        for i in range(count):
            make_image(root / "train" / folder / f"{i:02d}.png")
            (root / "train" / folder / f"{i:02d}.txt").write_text(f"zkz, {folder} {i}", encoding="utf-8")
    for folder, count in (reg or {}).items():
        for i in range(count):
            make_image(root / "reg" / folder / f"{i:02d}.png")
    return root


def test_holdout_count():
    assert holdout_count(20, 0.0) == 0
    assert holdout_count(20, 0.1) == 2
    assert holdout_count(5, 0.05) == 1     # at least one when asked for any
    assert holdout_count(0, 0.5) == 0


def test_split_is_proportional_seeded_and_keeps_every_concept(tmp_path, make_image):
    root = make_dataset(tmp_path, make_image, {"10_alice": 12, "5_bob": 6, "3_cat": 2},
                        reg={"1_person": 4})
    scan = scan_dataset(root / "train", root / "reg")
    split = split_validation(scan, 0.25, seed=3)
    by_name = {c.name: c for c in split.concepts}
    assert len(split.held_out) == 5   # round(20 × 0.25): shares 3 / 1.5 / 0.5, the tie goes to the larger folder
    assert [len(by_name[n].images) for n in ("alice", "bob", "cat", "person")] == [9, 4, 2, 4]
    kept = {img.path for c in split.concepts for img in c.images}
    assert not kept & {img.path for img in split.held_out}              # never trained on
    assert len(kept) + len(split.held_out) == 24
    assert split.num_train_images == 15 and scan.num_train_images == 20  # the original scan is untouched
    again = split_validation(scan_dataset(root / "train", root / "reg"), 0.25, seed=3)
    assert [img.path for img in again.held_out] == [img.path for img in split.held_out]
    other = split_validation(scan, 0.25, seed=4)
    assert [img.path for img in other.held_out] != [img.path for img in split.held_out]
    assert split_validation(scan, 0.0, seed=3) is scan


def test_a_split_that_would_empty_the_folders_is_refused(tmp_path, make_image):
    root = make_dataset(tmp_path, make_image, {"10_alice": 1, "10_bob": 1})
    with pytest.raises(DatasetError, match="each concept folder must keep at least one") as err:
        split_validation(scan_dataset(root / "train"), 0.5, seed=0)
    assert "validation images folder" in err.value.advice


def test_step_maths_count_only_the_trained_images(tmp_path, make_image):
    root = make_dataset(tmp_path, make_image, {"10_alice": 10})
    cfg = TrainConfig(train_data_dir=str(root / "train"), resolution="64", min_bucket_reso=64, max_bucket_reso=128,
                      max_train_epochs=2, validation_split=0.2)
    scan, items, plan = scan_and_plan(cfg)
    assert len(items) == 8 and len(scan.held_out) == 2
    assert plan.total_steps == 8 * 10 * 2
    assert "2 training image(s) are held out for the validation loss" in format_plan(plan)
    assert scan.tag_frequency()["10_alice"].get("zkz") == 8   # the file's metadata counts trained images
    assert cfg.validation_enabled and cfg.effective_validation_seed == cfg.seed
    assert not TrainConfig().validation_enabled
    assert TrainConfig(validate_every_n_epochs=2).validation_enabled


def test_config_checks_the_validation_settings(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(TrainConfig(validation_split=0.7, validation_data_dir=str(tmp_path / "nope"),
                             validate_every_n_epochs=0), need_paths=True)
    text = " ".join(err.value.problems)
    assert "validation_split is 0.7, but it cannot be above 0.5" in text
    assert "validate_every_n_epochs is 0" in text
    assert f"validation_data_dir: the validation images folder {tmp_path / 'nope'} was not found" in text
