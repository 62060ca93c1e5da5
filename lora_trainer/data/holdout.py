"""Hold out a share of the training images for the validation loss (``validation_split``).

The held-out images leave their concept folders before items, buckets and step maths are
built, so nothing downstream trains on them and the step count shown is the real one.
The choice is seeded and spread over the concepts in proportion to their size; a concept
always keeps at least one image, so no folder silently drops out of training.
"""
from __future__ import annotations

import dataclasses
import random

from ..errors import DatasetError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from .folders import ConceptFolder, DatasetScan, ImageEntry


def holdout_count(num_images: int, fraction: float) -> int:
    """Images held out of ``num_images`` for ``fraction`` (at least one when the fraction is above 0)."""
    if fraction <= 0 or num_images <= 0:
        return 0
    return max(1, round(num_images * fraction))


def split_validation(scan: DatasetScan, fraction: float, seed: int) -> DatasetScan:
    """A copy of ``scan`` without the held-out training images; they are in its ``held_out``.

    Regularization folders are never split. Raises ``DatasetError`` when the folders cannot
    spare an image."""
    if fraction <= 0:
        return scan
    wanted = holdout_count(scan.num_train_images, fraction)
    spare = {id(c): len(c.images) - 1 for c in scan.train_concepts}
    if wanted > sum(spare.values()):
        raise DatasetError(msg("data.holdout", fraction=fraction, wanted=wanted, images=scan.num_train_images),
                           msg("data.holdout.advice"))
    rng = random.Random(seed)
    # proportional share per concept (largest remainders), then capped by what the concept can spare
    shares = {id(c): wanted * len(c.images) / scan.num_train_images for c in scan.train_concepts}
    take = {key: min(int(share), spare[key]) for key, share in shares.items()}
    by_remainder = sorted(scan.train_concepts, key=lambda c: (-(shares[id(c)] - int(shares[id(c)])),
                                                              -len(c.images)))
    while sum(take.values()) < wanted:
        grew = False
        for concept in by_remainder:
            key = id(concept)
            if sum(take.values()) < wanted and take[key] < spare[key]:
                take[key] += 1
                grew = True
        if not grew:
            break
    concepts: list[ConceptFolder] = []
    held_out: list[ImageEntry] = []
    for concept in scan.concepts:
        count = 0 if concept.is_reg else take[id(concept)]
        if not count:
            concepts.append(concept)
            continue
        chosen = set(rng.sample(range(len(concept.images)), count))
        held_out += [img for i, img in enumerate(concept.images) if i in chosen]
        concepts.append(dataclasses.replace(concept, images=[img for i, img in enumerate(concept.images)
                                                             if i not in chosen]))
    return dataclasses.replace(scan, concepts=concepts, held_out=held_out)
