"""VAE latents computed once per (image, bucket), kept in memory or on disk.

A disk entry is one ``.safetensors`` file whose metadata records the image (path, size,
mtime_ns, sha1 of its bytes), the bucket and the caller's ``settings_key`` (VAE identity,
dtype, resolution...). An entry is reused only when content hash, size, bucket, settings
and format match, so editing an image or changing the VAE recomputes it, while merely
touching or copying a file (new mtime, same bytes) does not.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ..errors import ConfigError, TrainerError
from .buckets import resize_to_bucket
from .dataset import TrainItem
from .images import ImageLoadError, load_image

CACHE_FORMAT = "lora_trainer.latent.v1"  # bump when pixels_for() changes what it produces
EncodeFn = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]  # (done, total)


def pixels_for(item: TrainItem) -> torch.Tensor:
    """The item's image resized and cropped to its bucket: float32 [3, H, W] in [-1, 1]."""
    img, _, _ = resize_to_bucket(load_image(item.image.path, training=True), item.bucket)
    width, height = img.size
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(height, width, 3).permute(2, 0, 1).float().div(127.5).sub(1.0)


def _file_fingerprint(path: Path, memo: dict) -> dict[str, str]:
    """size, mtime_ns and sha1 of the file; hashed again only when size or mtime change."""
    try:
        stat = path.stat()
        memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo_key not in memo:
            digest = hashlib.sha1()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            memo[memo_key] = digest.hexdigest()
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    return {"file_size": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns), "sha1": memo[memo_key]}


class LatentCache:
    """Latents for training items; ``encode_fn`` maps pixels [B,3,H,W] in [-1,1] (CPU,
    float32) to latents [B,C,h,w] and must move them to the VAE's device/dtype itself.
    Returned latents are CPU tensors [C,h,w]."""

    _CHECKED_KEYS = ("format", "settings_key", "bucket", "file_size", "sha1")

    def __init__(
        self,
        encode_fn: EncodeFn,
        mode: str = "memory",
        cache_dir: str | os.PathLike | None = None,
        settings_key: str = "",
    ) -> None:
        if mode not in ("memory", "disk"):
            raise ConfigError(f"cache_latents mode '{mode}' is unknown; use 'memory' or 'disk'.")
        if mode == "disk" and not cache_dir:
            raise ConfigError("Caching latents to disk needs a cache folder, but none was given.",
                              "set the latent cache folder, or cache latents in memory instead.")
        self.encode_fn = encode_fn
        self.mode = mode
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.settings_key = str(settings_key)
        self.failed: dict[Path, str] = {}  # images that could not be loaded: path → reason
        self.encoded = 0  # latents computed by this object
        self.reused = 0  # valid disk entries found
        self._memory: dict[tuple[str, tuple[int, int]], torch.Tensor] = {}
        self._valid_on_disk: set[tuple[str, tuple[int, int]]] = set()
        self._hashes: dict[tuple[str, int, int], str] = {}

    @staticmethod
    def _key(item: TrainItem) -> tuple[str, tuple[int, int]]:
        return str(item.image.path), tuple(item.bucket)

    def cache_file(self, item: TrainItem) -> Path:
        """Where the disk entry for ``item`` lives (one file per image and bucket)."""
        bw, bh = item.bucket
        digest = hashlib.sha1(f"{item.image.path}|{bw}x{bh}".encode("utf-8")).hexdigest()[:24]
        return self.cache_dir / f"{digest}_{bw}x{bh}.safetensors"

    def _metadata(self, item: TrainItem) -> dict[str, str]:
        bw, bh = item.bucket
        return {"format": CACHE_FORMAT, "image_path": str(item.image.path), "bucket": f"{bw}x{bh}",
                "settings_key": self.settings_key, **_file_fingerprint(item.image.path, self._hashes)}

    def _disk_entry_valid(self, item: TrainItem) -> bool:
        from safetensors import safe_open

        key = self._key(item)
        if key in self._valid_on_disk:
            return True
        file = self.cache_file(item)
        if not file.is_file():
            return False
        expected = self._metadata(item)
        try:
            with safe_open(str(file), framework="pt") as f:
                stored = f.metadata() or {}
                has_latent = "latent" in f.keys()
        except Exception:  # truncated or foreign file: recompute it
            return False
        if has_latent and all(stored.get(k) == expected[k] for k in self._CHECKED_KEYS):
            self._valid_on_disk.add(key)
            return True
        return False

    def _is_cached(self, item: TrainItem) -> bool:
        if self.mode == "memory":
            return self._key(item) in self._memory
        return self._disk_entry_valid(item)

    def _store(self, item: TrainItem, latent: torch.Tensor) -> None:
        latent = latent.detach().to("cpu").contiguous().clone()
        if self.mode == "memory":
            self._memory[self._key(item)] = latent
            return
        from safetensors.torch import save_file

        file = self.cache_file(item)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=file.parent)
            os.close(fd)
            try:
                save_file({"latent": latent}, tmp, metadata=self._metadata(item))
                os.replace(tmp, file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TrainerError(
                f"Cannot write the latent cache file {file}: {exc.strerror or exc}.",
                "free disk space or choose a writable cache folder, or cache latents in memory instead.",
            ) from exc
        self._valid_on_disk.add(self._key(item))

    def _encode(self, items: list[TrainItem], pixels: list[torch.Tensor]) -> None:
        with torch.no_grad():
            latents = self.encode_fn(torch.stack(pixels))
        if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or latents.shape[0] != len(items):
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise TypeError(f"encode_fn must return a [B,C,h,w] tensor with B={len(items)}, got {shape}")
        finite = torch.isfinite(latents.float()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = [str(it.image.path) for it, ok in zip(items, finite.tolist()) if not ok]
            raise TrainerError(
                f"The VAE produced NaN/infinite latents for {', '.join(bad[:3])}.",
                "run the VAE in float32 (no_half_vae; SDXL's VAE overflows in float16) or use an "
                "fp16-fixed VAE; then start again.",
            )
        for item, latent in zip(items, latents):
            self._store(item, latent)
        self.encoded += len(items)

    def _load_pixels(self, items: list[TrainItem]) -> tuple[list[TrainItem], list[torch.Tensor]]:
        ok, pixels = [], []
        for item in items:
            try:
                if self.mode == "disk":
                    self._metadata(item)  # fingerprint the bytes before encoding them
                pixels.append(pixels_for(item))
                ok.append(item)
            except ImageLoadError as exc:
                self.failed[item.image.path] = exc.reason
        return ok, pixels

    def prepare(
        self, items: Iterable[TrainItem], batch_size: int, progress: Progress | None = None
    ) -> list[tuple[Path, str]]:
        """Encode every (image, bucket) not cached yet, ``batch_size`` images of one bucket at a
        time. Returns (path, reason) for images that could not be loaded: drop those items."""
        todo: dict[tuple[str, tuple[int, int]], TrainItem] = {}
        for item in items:
            key = self._key(item)
            if key in todo or item.image.path in self.failed:
                continue
            try:
                cached = self._is_cached(item)
            except ImageLoadError as exc:
                self.failed[item.image.path] = exc.reason
                continue
            if cached and self.mode == "disk":
                self.reused += 1
            elif not cached:
                todo[key] = item
        ordered = sorted(todo.values(), key=lambda it: (it.bucket, str(it.image.path)))
        by_bucket: dict[tuple[int, int], list[TrainItem]] = {}
        for item in ordered:
            by_bucket.setdefault(tuple(item.bucket), []).append(item)
        step, done = max(1, int(batch_size)), 0
        for group in by_bucket.values():
            for start in range(0, len(group), step):
                chunk = group[start:start + step]
                ok, pixels = self._load_pixels(chunk)
                if ok:
                    self._encode(ok, pixels)
                done += len(chunk)
                if progress is not None:
                    progress(done, len(ordered))
        return [(p, r) for p, r in self.failed.items()]

    def get(self, item: TrainItem) -> torch.Tensor:
        """The latent [C,h,w] for ``item`` (encoded now if it was not prepared)."""
        if item.image.path in self.failed:
            raise ImageLoadError(item.image.path, self.failed[item.image.path])
        if not self._is_cached(item):
            ok, pixels = self._load_pixels([item])
            if not ok:
                raise ImageLoadError(item.image.path, self.failed[item.image.path])
            self._encode(ok, pixels)
        if self.mode == "memory":
            return self._memory[self._key(item)]
        from safetensors.torch import load_file

        return load_file(str(self.cache_file(item)))["latent"]
