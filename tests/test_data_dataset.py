from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from lora_trainer.data.buckets import BucketSet
from lora_trainer.data.dataset import (
    build_items,
    count_steps_per_epoch,
    epoch_batches,
    epoch_sample_counts,
)
from lora_trainer.data.folders import ConceptFolder, DatasetScan, ImageEntry, scan_dataset
from lora_trainer.errors import ConfigError


def _concept(name, repeats, sizes, is_reg=False):
    folder = Path("/data", "reg" if is_reg else "train", f"{repeats}_{name}")
    images = [ImageEntry(folder / f"{i}.png", name, True, w, h) for i, (w, h) in enumerate(sizes)]
    return ConceptFolder(folder, name, repeats, is_reg, images)


def _scan(*concepts):
    return DatasetScan(list(concepts))


def _items(*concepts, **kw):
    args = dict(buckets=BucketSet.build(512), resolution=512, enable_bucket=True)
    args.update(kw)
    return build_items(_scan(*concepts), **args)


def _counts(items):
    return {it.image.path.name if not it.is_reg else "reg/" + it.image.path.name: c
            for it, c in epoch_sample_counts(items)}


def test_build_items_buckets_and_weights(tmp_path, make_image):
    make_image(tmp_path / "10_凝光 角色" / "wide.png", size=(1024, 512))
    make_image(tmp_path / "10_凝光 角色" / "tall.png", size=(300, 600))
    make_image(tmp_path / "reg" / "1_person" / "r.png", size=(512, 512))
    scan = scan_dataset(tmp_path / "10_凝光 角色" / "..", tmp_path / "reg")
    items = build_items(scan, None, 512, enable_bucket=True, prior_loss_weight=0.5)
    by_name = {it.image.path.name: it for it in items}
    assert by_name["wide.png"].bucket == (704, 320) and by_name["tall.png"].bucket == (320, 704)
    assert by_name["wide.png"].loss_weight == 1.0 and by_name["r.png"].loss_weight == 0.5
    assert by_name["r.png"].is_reg and by_name["wide.png"].original_size == (512, 1024)
    assert by_name["tall.png"].crop_top_left == (0, 16)  # 300x600 → 352x704, 16 px cut left and right
    assert by_name["wide.png"].crop_top_left == (16, 0)
    fixed = build_items(scan, None, (512, 384), enable_bucket=False, bucket_no_upscale=True)
    assert {it.bucket for it in fixed} == {(512, 384)}
    small = build_items(scan, None, 512, enable_bucket=True, bucket_no_upscale=True)
    assert {it.image.path.name: it.bucket for it in small}["tall.png"] == (256, 576)


def test_repeats_without_reg():
    items = _items(_concept("a", 3, [(512, 512)] * 2), _concept("b", 1, [(512, 512)]))
    batches = epoch_batches(items, batch_size=1, seed=0, epoch=0)
    seen = Counter(str(it.image.path) for b in batches for it in b)
    assert seen == {"/data/train/3_a/0.png": 3, "/data/train/3_a/1.png": 3, "/data/train/1_b/0.png": 1}


def test_reg_cycled_when_fewer():
    # 2 train images × 5 repeats = 10 samples; 3 reg images × 1 → cycled to 4, 3, 3
    items = _items(_concept("a", 5, [(512, 512)] * 2), _concept("p", 1, [(512, 512)] * 3, is_reg=True))
    assert _counts(items) == {"0.png": 5, "1.png": 5, "reg/0.png": 4, "reg/1.png": 3, "reg/2.png": 3}
    # reg repeats count first: 2 images × 3 = 6, then cycled: 5, 5
    items = _items(_concept("a", 5, [(512, 512)] * 2), _concept("p", 3, [(512, 512)] * 2, is_reg=True))
    assert _counts(items) == {"0.png": 5, "1.png": 5, "reg/0.png": 5, "reg/1.png": 5}


def test_reg_truncated_when_more():
    items = _items(_concept("a", 5, [(512, 512)] * 2), _concept("p", 3, [(512, 512)] * 5, is_reg=True))
    assert _counts(items) == {"0.png": 5, "1.png": 5, "reg/0.png": 3, "reg/1.png": 3, "reg/2.png": 3,
                              "reg/3.png": 1}
    batches = epoch_batches(items, 4, seed=1, epoch=0)
    assert sum(it.is_reg for b in batches for it in b) == 10


def test_batches_single_bucket_partial_kept_deterministic():
    items = _items(_concept("a", 1, [(512, 512)] * 3 + [(1024, 512)] * 5))
    batches = epoch_batches(items, batch_size=2, seed=42, epoch=3)
    assert all(len({it.bucket for it in b}) == 1 for b in batches)
    assert sorted(len(b) for b in batches) == [1, 1, 2, 2, 2]  # 3 → 2+1, 5 → 2+2+1
    assert batches == epoch_batches(items, batch_size=2, seed=42, epoch=3)
    orders = {tuple(str(it.image.path) for b in epoch_batches(items, 2, 42, e) for it in b) for e in range(6)}
    assert len(orders) > 1  # a new order each epoch


def test_batch_size_must_be_positive():
    items = _items(_concept("a", 1, [(512, 512)]))
    with pytest.raises(ConfigError):
        epoch_batches(items, 0, 0, 0)
    with pytest.raises(ConfigError):
        count_steps_per_epoch(items, 0)


def test_count_steps_matches_batches_random_cases():
    rng = random.Random(123)
    shapes = [(512, 512), (1024, 512), (512, 1024), (800, 600), (300, 900)]
    for case in range(150):
        concepts = [
            _concept(f"c{i}", rng.randint(1, 12), [rng.choice(shapes) for _ in range(rng.randint(1, 6))],
                     is_reg=rng.random() < 0.3)
            for i in range(rng.randint(1, 4))
        ]
        items = _items(*concepts, bucket_no_upscale=rng.random() < 0.3)
        batch_size = rng.randint(1, 7)
        batches = epoch_batches(items, batch_size, seed=case, epoch=rng.randint(0, 5))
        assert count_steps_per_epoch(items, batch_size) == len(batches)
        train = sum(len(c.images) * c.repeats for c in concepts if not c.is_reg)
        reg = sum(it.is_reg for b in batches for it in b)
        has_reg = any(c.is_reg for c in concepts)
        assert reg == (train if has_reg and train else 0)
        assert sum(len(b) for b in batches) == train + reg


