"""kohya sd-scripts' augmentations, drawn per sample: horizontal flip, random crop, weak colour shift.

``draw_view`` picks from the run's random generator how one sample of an item looks this step (in kohya's
order: flip, then the crop, then the colour); ``render`` makes that picture at the item's bucket, and
``render_mask`` its loss mask, cut and mirrored alike. A flip is half of the samples (``flip_aug``). A random
crop cuts the bucket out of the resized picture at a random offset instead of the centre (``random_crop``;
the offset is the sample's SDXL crop conditioning). The colour shift is kohya's ``AugHelper.color_aug``: in
a third of the samples either the hue turns by up to ±8 of OpenCV's 180 hue steps, or every channel value v
(0–255) becomes min(255, v^γ) with γ in 0.95–1.05 (``color_aug``). Torch-free.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional

from PIL import Image

from .buckets import cover_geometry, resize_to_bucket
from .dataset import TrainItem

HUE_LIMIT = 8.0            # kohya: hue_shift_limit, in OpenCV's hue steps (180 to the circle)
GAMMA_RANGE = (0.95, 1.05)
COLOR_SHARE = 0.33         # the share of samples that get a colour shift


@dataclass(frozen=True)
class Augment:
    """Which augmentations a run uses."""
    flip: bool = False
    random_crop: bool = False
    color: bool = False

    @classmethod
    def from_config(cls, cfg) -> "Augment":
        return cls(bool(cfg.flip_aug), bool(cfg.random_crop), bool(cfg.color_aug))

    @property
    def changes_pixels(self) -> bool:
        """Each step's picture differs from the cached one (more than a mirror image)."""
        return self.random_crop or self.color


@dataclass(frozen=True)
class View:
    """How one sample of an item looks."""
    flip: bool = False
    crop: Optional[tuple[int, int]] = None   # (top, left) in the resized picture; None: the centre
    hue: float = 0.0                         # OpenCV hue steps (180 to the circle)
    gamma: float = 1.0

    @property
    def recolored(self) -> bool:
        return bool(self.hue) or self.gamma != 1.0


PLAIN = View()


def draw_view(item: TrainItem, augment: Augment, rng: random.Random) -> View:
    """This step's view of ``item``, drawn from ``rng`` (nothing is drawn for an augmentation that is off)."""
    flip = augment.flip and rng.random() < 0.5
    crop = None
    if augment.random_crop:
        rw, rh, top, left = cover_geometry(item.image.width, item.image.height, item.bucket)
        bw, bh = item.bucket
        left = rng.randint(0, rw - bw) if rw > bw else 0
        top = rng.randint(0, rh - bh) if rh > bh else 0
        crop = (top, left)
    hue, gamma = 0.0, 1.0
    if augment.color and rng.random() <= COLOR_SHARE:
        if rng.random() > 0.5:
            hue = rng.uniform(-HUE_LIMIT, HUE_LIMIT)
        else:
            gamma = rng.uniform(*GAMMA_RANGE)
    return View(flip, crop, hue, gamma)


def crop_top_left(item: TrainItem, view: View) -> tuple[int, int]:
    """(top, left) of the sample's cut in the resized picture, as seen in the (mirrored) sample."""
    rw, _, top, left = cover_geometry(item.image.width, item.image.height, item.bucket)
    if view.crop is not None:
        top, left = view.crop
    if view.flip:
        left = rw - item.bucket[0] - left
    return top, left


def recolor(img: Image.Image, hue: float, gamma: float) -> Image.Image:
    """kohya's colour shift of an RGB picture: the hue turned by ``hue`` OpenCV steps, or v → min(255, v^γ)."""
    if hue:
        h, s, v = img.convert("HSV").split()
        steps = hue * 256.0 / 180.0   # PIL's hue runs 0–255 around the circle, OpenCV's 0–179
        h = h.point(lambda x: math.floor(x + steps) % 256)
        img = Image.merge("HSV", (h, s, v)).convert("RGB")
    if gamma != 1.0:
        img = img.point([min(255, int(x ** gamma)) for x in range(256)] * 3)
    return img


def _place(img: Image.Image, item: TrainItem, view: View) -> Image.Image:
    img, _, _ = resize_to_bucket(img, item.bucket, crop=view.crop)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if view.flip else img


def render(img: Image.Image, item: TrainItem, view: View = PLAIN) -> Image.Image:
    """The item's RGB picture ``img`` as the sample shows it: resized to cover the bucket, cut (centre or the
    view's crop), mirrored, recoloured."""
    img = _place(img, item, view)
    return recolor(img, view.hue, view.gamma) if view.recolored else img


def render_mask(mask: Image.Image, item: TrainItem, view: View = PLAIN) -> Image.Image:
    """A mask ("L", the size of the item's picture) resized, cut and mirrored as the sample's picture."""
    return _place(mask, item, view)
