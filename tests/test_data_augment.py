"""kohya's augmentations and loss masks on the data side: flip, random crop, colour shift, transparency
and mask-folder masks, and what the latent cache keeps for them (two latents with flip_aug, the mask)."""
from __future__ import annotations

import random

import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from lora_trainer.data.augment import PLAIN, Augment, View, crop_top_left, draw_view, recolor, render  # noqa: E402
from lora_trainer.data.buckets import BucketSet  # noqa: E402
from lora_trainer.data.dataset import build_items  # noqa: E402
from lora_trainer.data.folders import scan_dataset  # noqa: E402
from lora_trainer.data.latent_cache import LatentCache, pixels_for, sample_for  # noqa: E402
from lora_trainer.data.masks import alpha_masks, match_mask_folder  # noqa: E402
from lora_trainer.errors import DatasetError  # noqa: E402


def pool(pixels):   # a stand-in VAE: 8×8 average, 4 channels
    pooled = torch.nn.functional.avg_pool2d(pixels, 8)
    return torch.cat([pooled, pooled.mean(dim=1, keepdim=True)], dim=1)


@pytest.fixture
def data(tmp_path):
    """A cut-out (left half opaque, alpha 255; right half transparent), a wide opaque picture, and a folder
    of reg images."""
    root = tmp_path / "train"
    folder = root / "2_zkz"
    folder.mkdir(parents=True)
    cutout = Image.new("RGBA", (64, 64), (200, 20, 20, 0))
    cutout.paste((200, 20, 20, 255), (0, 0, 32, 64))
    cutout.save(folder / "cutout.png")
    wide = Image.new("RGB", (128, 64), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 16, 64))      # a white band at the left edge
    wide.save(folder / "wide.png")
    return root


def items_of(root):
    buckets = BucketSet.build(64, min_reso=64, max_reso=128, step=64)
    return {it.image.path.name: it for it in build_items(scan_dataset(root), buckets, 64, enable_bucket=True)}


def test_views_are_drawn_only_for_what_is_on_and_mirror_the_crop(data):
    wide = items_of(data)["wide.png"]
    rng = random.Random(5)
    assert draw_view(wide, Augment(), rng) == PLAIN and rng.random() == random.Random(5).random()
    views = [draw_view(wide, Augment(flip=True, random_crop=True), random.Random(s)) for s in range(40)]
    assert {v.flip for v in views} == {True, False}
    assert {v.crop[0] for v in views} == {0} and len({v.crop[1] for v in views}) > 5   # 128×64 → 64×64: x only
    assert all(0 <= v.crop[1] <= 64 for v in views)
    assert crop_top_left(wide, PLAIN) == (0, 32)                          # the centre
    assert crop_top_left(wide, View(flip=True, crop=(0, 10))) == (0, 54)  # seen from the mirrored side
    left = render(Image.open(wide.image.path).convert("RGB"), wide, View(crop=(0, 0)))
    assert left.getpixel((0, 0)) == (255, 255, 255) and left.getpixel((20, 0)) == (0, 0, 0)
    mirrored = render(Image.open(wide.image.path).convert("RGB"), wide, View(flip=True, crop=(0, 0)))
    assert mirrored.getpixel((63, 0)) == (255, 255, 255)


def test_colour_shift_is_kohyas_gamma_or_a_hue_turn():
    img = Image.new("RGB", (4, 4), (100, 200, 30))
    brighter = recolor(img, 0.0, 1.05)
    assert brighter.getpixel((0, 0)) == (int(100 ** 1.05), 255, int(30 ** 1.05))   # v^γ on 0–255, clipped
    turned = recolor(img, 8.0, 1.0)
    assert turned.size == img.size and turned.getpixel((0, 0)) != (100, 200, 30)
    shares = [draw_view_colour(seed) for seed in range(300)]
    assert 0.2 < sum(s != (0.0, 1.0) for s in shares) / 300 < 0.45   # about a third of the samples
    assert all(abs(h) <= 8 and 0.95 <= g <= 1.05 for h, g in shares)


def draw_view_colour(seed):
    item = type("Item", (), {"image": None, "bucket": (64, 64)})()
    view = draw_view(item, Augment(color=True), random.Random(seed))
    return view.hue, view.gamma


def test_flip_aug_caches_the_mirrored_latent_beside_the_plain_one(data, tmp_path):
    wide = items_of(data)["wide.png"]
    cache = LatentCache(pool, mode="memory", flip=True)
    cache.prepare([wide], 1)
    entry = cache.entry(wide)
    assert set(entry) == {"latent", "latent_flipped"}
    torch.testing.assert_close(entry["latent_flipped"], pool(pixels_for(wide, View(flip=True))[None])[0])
    torch.testing.assert_close(entry["latent_flipped"], entry["latent"].flip(-1))   # a mirror image, here exactly
    disk = tmp_path / "cache"
    LatentCache(pool, "disk", disk, settings_key="k").prepare([wide], 1)
    flipped = LatentCache(pool, "disk", disk, settings_key="k", flip=True)
    flipped.prepare([wide], 1)
    assert flipped.encoded == 1 and "latent_flipped" in flipped.entry(wide)   # a plain entry is redone
    again = LatentCache(pool, "disk", disk, settings_key="k", flip=True)
    again.prepare([wide], 1)
    assert again.encoded == 0 and again.reused == 1


def test_transparency_is_the_mask_at_the_latent_size_and_the_cache_keeps_it(data):
    items = items_of(data)
    masks = alpha_masks(list(items.values()))
    assert masks.notes and "1 of 2 image(s) have no transparency" in masks.notes[0] and "wide.png" in masks.notes[0]
    pixels, mask = sample_for(items["cutout.png"], PLAIN, masks)
    assert pixels.shape == (3, 64, 64) and mask.shape == (8, 8)
    assert float(mask[:, :4].min()) == 1.0 and float(mask[:, 4:].max()) == 0.0
    assert sample_for(items["wide.png"], PLAIN, masks)[1] is None       # no alpha: the whole picture
    assert float(sample_for(items["cutout.png"], View(flip=True), masks)[1][:, 4:].min()) == 1.0
    cache = LatentCache(pool, mode="memory", flip=True, masks=masks)
    cache.prepare(list(items.values()), 1)
    torch.testing.assert_close(cache.entry(items["cutout.png"])["mask"], mask)
    assert "mask" not in cache.entry(items["wide.png"])


def test_mask_folder_masks_are_matched_by_name_and_checked(data, tmp_path):
    items = items_of(data)
    masks_dir = tmp_path / "masks"
    (masks_dir / "2_zkz").mkdir(parents=True)
    Image.new("RGB", (64, 64), (255, 255, 255)).save(masks_dir / "2_zkz" / "cutout.jpg")   # in the concept folder
    with pytest.raises(DatasetError) as err:
        match_mask_folder(list(items.values()), masks_dir)
    assert "no mask" in str(err.value) and "2_zkz/wide.png" in str(err.value) and "wide.png" in err.value.advice
    Image.new("RGB", (64, 64)).save(masks_dir / "wide.png")                # beside it, but of another size
    with pytest.raises(DatasetError, match="64×64, its image 128×64"):
        match_mask_folder(list(items.values()), masks_dir)
    wide = Image.new("RGB", (128, 64), (0, 0, 0))
    wide.paste((255, 255, 255), (64, 0, 128, 64))                           # only the right half is trained
    wide.save(masks_dir / "wide.png")
    Image.new("RGB", (8, 8)).save(masks_dir / "stray.png")
    found = match_mask_folder(list(items.values()), masks_dir)
    assert found.file_for(items["cutout.png"]).name == "cutout.jpg" and any("stray.png" in n for n in found.notes)
    _, mask = sample_for(items["wide.png"], View(crop=(0, 64)), found)
    assert float(mask.min()) == 1.0
    _, mask = sample_for(items["wide.png"], PLAIN, found)                   # the centre cut: half and half
    assert float(mask[:, :4].max()) == 0.0 and float(mask[:, 4:].min()) == 1.0
