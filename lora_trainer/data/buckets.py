"""kohya aspect-ratio buckets: train each image near its own shape instead of a square crop."""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

Size = tuple[int, int]  # (width, height)


def as_size(resolution: int | tuple[int, int] | list[int]) -> Size:
    """512 → (512, 512); (768, 512) stays (width, height)."""
    if isinstance(resolution, int):
        return resolution, resolution
    width, height = resolution
    return int(width), int(height)


@dataclass(frozen=True)
class BucketSet:
    resolution: Size
    min_reso: int
    max_reso: int
    step: int
    sizes: tuple[Size, ...]

    @property
    def max_area(self) -> int:
        return self.resolution[0] * self.resolution[1]

    @classmethod
    def build(
        cls,
        resolution: int | Size = (512, 512),
        min_reso: int = 256,
        max_reso: int = 1024,
        step: int = 64,
    ) -> "BucketSet":
        """For each width (multiple of ``step`` in [min_reso, max_reso]) the tallest height
        within the resolution's area (and the transposed size), plus the square (kohya)."""
        width, height = as_size(resolution)
        _validate(width, height, min_reso, max_reso, step)
        area = width * height
        sizes = {(math.isqrt(area) // step * step,) * 2}
        for w in range(min_reso, max_reso + 1, step):
            h = min(max_reso, area // w // step * step)
            if h >= min_reso:
                sizes.add((w, h))
                sizes.add((h, w))
        return cls((width, height), min_reso, max_reso, step, tuple(sorted(sizes)))

    def assign(self, width: int, height: int, no_upscale: bool = False) -> Size:
        """The bucket for an image of ``width`` × ``height``.

        Normally the bucket with the closest aspect ratio, width ÷ height, as kohya measures it (the plain
        difference of the ratios, not of their logarithms: a wide image may then go to a less wide bucket than a
        log scale would give it, 1500 × 1020 at 512² to 576 × 448, as in kohya); ties → larger bucket.
        With ``no_upscale`` (kohya ``bucket_no_upscale``) the bucket is the image's own size,
        shrunk to the resolution's area if larger, rounded down to ``step``: never upscaled
        (except an image smaller than ``step`` on a side, which gets one ``step``).
        """
        if no_upscale:
            scale = min(1.0, math.sqrt(self.max_area / (width * height)))
            return (self._floor_step(width * scale), self._floor_step(height * scale))
        if (width, height) in self.sizes:
            return width, height
        target = width / height
        return min(self.sizes, key=lambda s: (abs(s[0] / s[1] - target), -s[0] * s[1]))

    def _floor_step(self, value: float) -> int:
        return max(self.step, int(value + 1e-6) // self.step * self.step)


def _validate(width: int, height: int, min_reso: int, max_reso: int, step: int) -> None:
    problems = []
    if step < 8 or step % 8:
        problems.append(sentence("data.bucket_step", step=step))
    elif min_reso % step or max_reso % step:
        problems.append(sentence("data.bucket_multiple", min_reso=min_reso, max_reso=max_reso, step=step))
    if min_reso > max_reso:
        problems.append(sentence("data.bucket_order", min_reso=min_reso, max_reso=max_reso))
    if min(width, height) < max(step, 8):
        problems.append(sentence("data.bucket_small", width=width, height=height, step=step))
    if problems:
        raise ConfigError(problems, msg("data.bucket.advice"))


def cover_geometry(width: int, height: int, bucket: Size) -> tuple[int, int, int, int]:
    """(resized_w, resized_h, top, left): scale to cover ``bucket``, then center crop offsets."""
    bw, bh = bucket
    scale = max(bw / width, bh / height)
    rw = max(bw, int(width * scale + 0.5))
    rh = max(bh, int(height * scale + 0.5))
    return rw, rh, (rh - bh) // 2, (rw - bw) // 2


def crop_conditioning(width: int, height: int, bucket: Size) -> tuple[tuple[int, int], tuple[int, int]]:
    """SDXL size conditioning without decoding: (crop_top_left (y, x), original_size (h, w))."""
    _, _, top, left = cover_geometry(width, height, bucket)
    return (top, left), (height, width)


def resize_to_bucket(
    img: Image.Image, bucket: Size, crop: tuple[int, int] | None = None
) -> tuple[Image.Image, tuple[int, int], tuple[int, int]]:
    """Scale ``img`` to cover ``bucket`` and center-crop it (or cut it at ``crop``, (top, left)).

    Returns (image of exactly ``bucket`` size, crop_top_left (y, x), original_size (h, w)).
    """
    width, height = img.size
    rw, rh, top, left = cover_geometry(width, height, bucket)
    if crop is not None:
        top, left = crop
    if (rw, rh) != (width, height):
        shrinking = rw < width or rh < height
        resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
        img = img.resize((rw, rh), resample=resample)
    bw, bh = bucket
    if (rw, rh) != (bw, bh):
        img = img.crop((left, top, left + bw, top + bh))
    return img, (top, left), (height, width)
