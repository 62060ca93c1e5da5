from __future__ import annotations

import random

import pytest
from PIL import Image

from lora_trainer.data.buckets import BucketSet, crop_conditioning, resize_to_bucket
from lora_trainer.errors import ConfigError


def test_build_512_matches_kohya_rules():
    bs = BucketSet.build((512, 512))
    assert bs.sizes == tuple(sorted(set(bs.sizes)))
    assert (512, 512) in bs.sizes
    for w, h in bs.sizes:
        assert w % 64 == 0 and h % 64 == 0
        assert w * h <= 512 * 512
        assert 256 <= w <= 1024 and 256 <= h <= 1024
        assert (h, w) in bs.sizes  # symmetric
    # each width gets its tallest height within the area
    assert {(320, 768), (384, 640), (448, 576), (704, 320), (832, 256), (1024, 256)} <= set(bs.sizes)
    assert (256, 256) not in bs.sizes and (320, 640) not in bs.sizes


def test_build_int_resolution_and_tiny_square():
    assert BucketSet.build(512) == BucketSet.build((512, 512))
    assert BucketSet.build(64).sizes == ((64, 64),)  # below min_reso: only the square
    small = BucketSet.build(64, min_reso=32, max_reso=128, step=32)
    assert {(64, 64), (32, 128), (128, 32)} <= set(small.sizes)


def test_build_non_square_resolution():
    bs = BucketSet.build((1024, 768), min_reso=256, max_reso=2048)
    assert (832, 832) in bs.sizes  # isqrt(1024*768) = 886 → 832
    assert all(w * h <= 1024 * 768 for w, h in bs.sizes)


@pytest.mark.parametrize("kwargs", [dict(step=60), dict(min_reso=300), dict(min_reso=1024, max_reso=512),
                                    dict(resolution=32)])
def test_invalid_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError) as info:
        BucketSet.build(**{"resolution": 512, **kwargs})
    assert info.value.advice


def test_assign_exact_and_closest_ratio():
    bs = BucketSet.build(512)
    assert bs.assign(512, 512) == (512, 512)
    assert bs.assign(640, 384) == (640, 384)
    assert bs.assign(2000, 2000) == (512, 512)
    rng = random.Random(0)
    for _ in range(300):
        w, h = rng.randint(50, 4000), rng.randint(50, 4000)
        bw, bh = bs.assign(w, h)
        err = abs(bw / bh - w / h)   # kohya's measure: the plain difference of the ratios
        assert all(err <= abs(a / b - w / h) + 1e-12 for a, b in bs.sizes)
    assert bs.assign(1500, 1020) == (576, 448)   # where kohya goes (a log scale would pick 640 x 384)


def test_assign_no_upscale():
    bs = BucketSet.build(512)
    assert bs.assign(300, 200, no_upscale=True) == (256, 192)  # own size, rounded down
    assert bs.assign(40, 40, no_upscale=True) == (64, 64)  # below one step
    assert bs.assign(2048, 1024, no_upscale=True) == (704, 320)  # shrunk to the area first
    rng = random.Random(1)
    for _ in range(300):
        w, h = rng.randint(64, 3000), rng.randint(64, 3000)
        bw, bh = bs.assign(w, h, no_upscale=True)
        assert bw <= w and bh <= h and bw % 64 == 0 and bh % 64 == 0
        assert bw * bh <= 512 * 512


def test_resize_to_bucket_center_crop():
    img = Image.new("RGB", (200, 100), (0, 0, 255))
    img.paste((255, 0, 0), (90, 0, 110, 100))  # red vertical stripe in the middle
    out, crop_tl, original = resize_to_bucket(img, (64, 64))
    assert out.size == (64, 64) and original == (100, 200)
    assert crop_tl == (0, 32)  # scaled to 128x64, 32 cut on each side
    assert out.getpixel((32, 32))[0] > 200 and out.getpixel((2, 32))[2] > 200


def test_resize_upscales_to_cover_and_identity():
    out, crop_tl, original = resize_to_bucket(Image.new("RGB", (30, 40)), (64, 128))
    assert out.size == (64, 128) and original == (40, 30)
    img = Image.new("RGB", (64, 64), (1, 2, 3))
    out, crop_tl, _ = resize_to_bucket(img, (64, 64))
    assert crop_tl == (0, 0) and out.getpixel((0, 0)) == (1, 2, 3)


def test_crop_conditioning_matches_resize():
    rng = random.Random(2)
    bs = BucketSet.build(256, min_reso=128, max_reso=512)
    for _ in range(40):
        w, h = rng.randint(20, 700), rng.randint(20, 700)
        bucket = bs.assign(w, h)
        _, crop_tl, original = resize_to_bucket(Image.new("RGB", (w, h)), bucket)
        assert crop_conditioning(w, h, bucket) == (crop_tl, original)
