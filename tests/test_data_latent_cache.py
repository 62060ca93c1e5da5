from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.data.buckets import BucketSet  # noqa: E402
from lora_trainer.data.dataset import build_items  # noqa: E402
from lora_trainer.data.folders import scan_dataset  # noqa: E402
from lora_trainer.data.images import ImageLoadError  # noqa: E402
from lora_trainer.data.latent_cache import LatentCache, pixels_for  # noqa: E402
from lora_trainer.errors import ConfigError, TrainerError  # noqa: E402


class FakeVAE:
    """Average-pools 8×8 blocks into 4 channels; records each call's batch size."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, pixels):
        assert pixels.dtype == torch.float32 and pixels.min() >= -1 and pixels.max() <= 1
        self.calls.append(pixels.shape[0])
        pooled = torch.nn.functional.avg_pool2d(pixels, 8)
        return torch.cat([pooled, pooled.mean(dim=1, keepdim=True)], dim=1)

    @property
    def images(self):
        return sum(self.calls)


@pytest.fixture
def data(tmp_path, make_image):
    root = tmp_path / "训练 data"
    folder = root / "4_凝光 角色"
    for i in range(3):
        make_image(folder / f"sq {i}.png", size=(64, 64), color=(255, 10 * i, 0))
    for i in range(2):
        make_image(folder / f"wide {i}.png", size=(128, 32), color=(0, 0, 255))
    return root


def _items(root):
    buckets = BucketSet.build(64, min_reso=32, max_reso=128, step=32)
    return build_items(scan_dataset(root), buckets, 64, enable_bucket=True)


def test_pixels_for_range_and_shape(data):
    items = _items(data)
    sq = next(it for it in items if it.image.path.name == "sq 0.png")
    wide = next(it for it in items if it.image.path.name == "wide 0.png")
    assert (sq.bucket, wide.bucket) == ((64, 64), (128, 32))
    px = pixels_for(sq)
    assert px.shape == (3, 64, 64) and px.dtype == torch.float32
    assert torch.allclose(px[0], torch.ones(64, 64)) and torch.allclose(px[2], -torch.ones(64, 64))
    assert pixels_for(wide).shape == (3, 32, 128)


def test_memory_mode_batches_per_bucket(data):
    items = _items(data)
    vae = FakeVAE()
    cache = LatentCache(vae, mode="memory")
    progress = []
    assert cache.prepare(items + items, batch_size=2, progress=lambda d, t: progress.append((d, t))) == []
    assert sorted(vae.calls) == [1, 2, 2]  # 3 square → 2 + 1, 2 wide → 2
    assert progress[-1] == (5, 5)
    sq = next(it for it in items if it.image.path.name == "sq 1.png")
    latent = cache.get(sq)
    assert latent.shape == (4, 8, 8) and latent.device.type == "cpu"
    assert torch.allclose(latent, vae(pixels_for(sq)[None])[0])
    vae.calls.clear()
    cache.prepare(items, batch_size=2)
    assert vae.calls == []


def test_get_without_prepare_encodes_on_demand(data):
    vae = FakeVAE()
    cache = LatentCache(vae)
    item = _items(data)[0]
    assert cache.get(item).shape == (4, 8, 8) and vae.calls == [1]
    cache.get(item)
    assert vae.calls == [1]


def test_disk_mode_reuse_and_invalidation(data, tmp_path):
    cache_dir = tmp_path / "cache 缓存"
    items = _items(data)
    vae = FakeVAE()
    LatentCache(vae, "disk", cache_dir, settings_key="vae=a;fp32;64").prepare(items, 4)
    assert vae.images == 5
    files = sorted(cache_dir.iterdir())
    assert len(files) == 5 and all(f.suffix == ".safetensors" for f in files)  # no temp files left

    # unchanged (even touched) → reused
    os.utime(items[0].image.path, ns=(1, 1))
    vae2 = FakeVAE()
    cache2 = LatentCache(vae2, "disk", cache_dir, settings_key="vae=a;fp32;64")
    cache2.prepare(items, 4)
    assert vae2.images == 0 and cache2.reused == 5
    assert torch.allclose(cache2.get(items[0]), vae(pixels_for(items[0])[None])[0])

    # one image's bytes change → only it is recomputed, and get returns the new latent
    changed = next(it for it in items if it.image.path.name == "sq 2.png")
    from PIL import Image
    Image.new("RGB", (64, 64), (0, 255, 0)).save(changed.image.path)
    vae3 = FakeVAE()
    cache3 = LatentCache(vae3, "disk", cache_dir, settings_key="vae=a;fp32;64")
    cache3.prepare(items, 4)
    assert vae3.images == 1
    assert cache3.get(changed)[1].mean() > 0.9  # green channel

    # other settings → everything recomputed
    vae4 = FakeVAE()
    LatentCache(vae4, "disk", cache_dir, settings_key="vae=b;fp16;64").prepare(items, 4)
    assert vae4.images == 5


def test_disk_metadata_and_corrupt_entry(data, tmp_path):
    from safetensors import safe_open

    item = _items(data)[0]
    cache = LatentCache(FakeVAE(), "disk", tmp_path / "c", settings_key="k")
    cache.prepare([item], 1)
    file = cache.cache_file(item)
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata()
    stat = item.image.path.stat()
    assert meta["image_path"] == str(item.image.path) and meta["bucket"] == "64x64"
    assert meta["settings_key"] == "k" and meta["file_size"] == str(stat.st_size)
    assert meta["mtime_ns"] == str(stat.st_mtime_ns) and len(meta["sha1"]) == 40

    file.write_bytes(b"garbage")
    vae = FakeVAE()
    LatentCache(vae, "disk", tmp_path / "c", settings_key="k").prepare([item], 1)
    assert vae.calls == [1]


def test_unreadable_image_reported_and_skipped(data):
    items = _items(data)
    bad = next(it for it in items if it.image.path.name == "wide 1.png")
    bad.image.path.write_bytes(b"\x89PNG broken")
    vae = FakeVAE()
    cache = LatentCache(vae)
    failed = cache.prepare(items, 8)
    assert [p for p, _ in failed] == [bad.image.path] and vae.images == 4
    with pytest.raises(ImageLoadError) as info:
        cache.get(bad)
    assert str(bad.image.path) in str(info.value)


def test_nan_latents_raise_actionable_error(data):
    cache = LatentCache(lambda px: torch.full((px.shape[0], 4, 8, 8), float("nan")))
    with pytest.raises(TrainerError) as info:
        cache.prepare(_items(data)[:1], 1)
    assert "sq 0.png" in str(info.value) and "no_half_vae" in info.value.advice


def test_bad_arguments():
    with pytest.raises(ConfigError):
        LatentCache(FakeVAE(), mode="disk")
    with pytest.raises(ConfigError):
        LatentCache(FakeVAE(), mode="gpu")


def test_pictures_read_ahead_in_threads_give_the_same_latents_and_failures(tmp_path, make_image, monkeypatch):
    """prepare decodes the next chunks in threads while the VAE encodes: the same latents, in the same encode
    order (the VAE's noise follows it), and the unreadable images reported in the same order."""
    from lora_trainer.data import read_ahead as ra

    root = tmp_path / "data"
    folder = root / "2_zkz"
    for i in range(7):
        make_image(folder / f"p{i}.png", size=(64, 64) if i % 2 else (128, 32), color=(30 * i, 10, 200))
    for name in ("bad a.png", "bad b.png"):
        make_image(folder / name, size=(64, 64))
    monkeypatch.setattr(ra.os, "cpu_count", lambda: 4)
    items = _items(root)
    for name in ("bad a.png", "bad b.png"):   # broken after the scan read their size
        (folder / name).write_bytes(b"\x89PNG broken")

    def run(threads):
        monkeypatch.setattr(ra, "MAX_THREADS", threads)
        order = []

        def encode(pixels):
            order.append(pixels.sum().item())
            pooled = torch.nn.functional.avg_pool2d(pixels, 8)
            return torch.cat([pooled, pooled.mean(dim=1, keepdim=True)], dim=1)
        cache = LatentCache(encode)
        failed = cache.prepare(items, batch_size=1)
        latents = {str(it.image.path): cache.get(it) for it in items if it.image.path not in cache.failed}
        return order, failed, latents

    serial, threaded = run(1), run(4)
    assert threaded[0] == serial[0] and len(serial[0]) == 7
    assert [p.name for p, _ in threaded[1]] == [p.name for p, _ in serial[1]] == ["bad a.png", "bad b.png"]
    assert threaded[2].keys() == serial[2].keys()
    for key in serial[2]:
        assert torch.equal(threaded[2][key], serial[2][key])
