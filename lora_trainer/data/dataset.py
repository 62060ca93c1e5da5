"""Training items and per-epoch batches with kohya's repeats and regularization balance.

An epoch holds each training image ``repeats`` times, plus exactly as many regularization
samples as training samples: reg images are taken in folder order, each with its own
repeats; if that is too many only the first needed ones are used, if too few they are
cycled one extra time each, in order, until the count matches. A batch holds one bucket.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from ..errors import ConfigError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from .buckets import BucketSet, Size, as_size, crop_conditioning
from .folders import ConceptFolder, DatasetScan, ImageEntry


@dataclass(frozen=True)
class TrainItem:
    image: ImageEntry
    concept: ConceptFolder
    bucket: Size  # (width, height) the image is trained at
    loss_weight: float  # 1.0 for training images, prior_loss_weight for regularization

    @property
    def is_reg(self) -> bool:
        return self.concept.is_reg

    @property
    def crop_top_left(self) -> tuple[int, int]:
        """(y, x) of the center crop in the resized image (SDXL conditioning)."""
        return crop_conditioning(self.image.width, self.image.height, self.bucket)[0]

    @property
    def original_size(self) -> tuple[int, int]:
        """(height, width) of the image as displayed (SDXL conditioning)."""
        return self.image.height, self.image.width


def build_items(
    scan: DatasetScan,
    buckets: BucketSet | None,
    resolution: int | Size,
    enable_bucket: bool,
    bucket_no_upscale: bool = False,
    prior_loss_weight: float = 1.0,
) -> list[TrainItem]:
    """One item per image (repeats are applied per epoch), in scan order.

    Without ``enable_bucket`` every image is trained at ``resolution`` (cover + center crop);
    with it and ``buckets`` None, kohya's default bucket set for ``resolution`` is used.
    """
    size = as_size(resolution)
    if enable_bucket and buckets is None:
        buckets = BucketSet.build(size)
    items = []
    for concept in scan.concepts:
        weight = float(prior_loss_weight) if concept.is_reg else 1.0
        for image in concept.images:
            if enable_bucket:
                bucket = buckets.assign(image.width, image.height, no_upscale=bucket_no_upscale)
            else:
                bucket = size
            items.append(TrainItem(image, concept, bucket, weight))
    return items


def epoch_sample_counts(items: list[TrainItem]) -> list[tuple[TrainItem, int]]:
    """How often each item appears in one epoch (items that do not appear are left out)."""
    counts = [(it, it.concept.repeats) for it in items if not it.is_reg]
    needed = sum(c for _, c in counts)
    reg = [it for it in items if it.is_reg]
    if not reg or needed == 0:
        return counts
    reg_counts = [0] * len(reg)
    for i, it in enumerate(reg):  # first pass: each reg image with its own repeats
        reg_counts[i] = min(it.concept.repeats, needed)
        needed -= reg_counts[i]
        if needed == 0:
            break
    cycles, rest = divmod(needed, len(reg))  # then cycle through them one at a time
    reg_counts = [c + cycles + (1 if i < rest else 0) for i, c in enumerate(reg_counts)]
    return counts + [(it, c) for it, c in zip(reg, reg_counts) if c]


def _check_batch_size(batch_size: int) -> None:
    if int(batch_size) < 1:
        raise ConfigError(msg("data.batch_size", batch_size=batch_size))


def epoch_batches(items: list[TrainItem], batch_size: int, seed: int, epoch: int) -> list[list[TrainItem]]:
    """The batches of one epoch: single-bucket, shuffled reproducibly from (seed, epoch);
    each bucket's last partial batch is kept."""
    _check_batch_size(batch_size)
    rng = random.Random(f"lora_trainer:{seed}:{epoch}")
    by_bucket: dict[Size, list[TrainItem]] = {}
    for item, count in epoch_sample_counts(items):
        by_bucket.setdefault(item.bucket, []).extend([item] * count)
    batches: list[list[TrainItem]] = []
    for bucket in sorted(by_bucket):
        samples = by_bucket[bucket]
        rng.shuffle(samples)
        batches += [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
    rng.shuffle(batches)
    return batches


def count_steps_per_epoch(items: list[TrainItem], batch_size: int) -> int:
    """len(epoch_batches(items, batch_size, ...)) without building the batches."""
    _check_batch_size(batch_size)
    per_bucket: Counter = Counter()
    for item, count in epoch_sample_counts(items):
        per_bucket[item.bucket] += count
    return sum(math.ceil(n / batch_size) for n in per_bucket.values())


def unreadable_images(items: list[TrainItem]) -> dict:
    """Each image decoded once, as caching latents does: path → why it cannot be trained."""
    from .images import ImageLoadError, load_image

    failed = {}
    for item in items:
        try:
            load_image(item.image.path, training=True)
        except ImageLoadError as err:
            failed[item.image.path] = err.reason
    return failed


def without_images(scan: DatasetScan, items: list[TrainItem], paths) -> list[TrainItem]:
    """The items without the images at ``paths`` (they could not be read); the scan's concept folders lose
    them too, so that the step maths count what is trained."""
    drop = set(paths)
    for concept in scan.concepts:
        concept.images = [image for image in concept.images if image.path not in drop]
    return [item for item in items if item.image.path not in drop]
