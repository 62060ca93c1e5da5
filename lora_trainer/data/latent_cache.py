"""VAE latents computed once per (image, bucket), kept in memory or on disk.

A disk entry is one ``.safetensors`` file whose metadata records the image (path, size,
mtime_ns, sha1 of its bytes), the bucket and the caller's ``settings_key`` (VAE identity,
dtype, resolution...). An entry is reused only when content hash, size, bucket, settings
and format match, so editing an image or changing the VAE recomputes it, while merely
touching or copying a file (new mtime, same bytes) does not.

An entry holds the latent, with ``flip`` also the latent of the mirrored picture (kohya's
``flip_aug`` caches both), and with ``masks`` the image's loss mask at the latent's size; the
entry's ``variant`` records which (and the mask file), so that turning them on recomputes it.
``sample_for`` gives one step's picture and mask when latents are not cached (random crop,
colour augmentation).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError, TrainerError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .augment import PLAIN, View, render, render_mask
from .dataset import TrainItem
from .images import ImageLoadError, load_image
from .masks import MaskSet, load_mask, open_with_alpha
from .read_ahead import read_ahead

CACHE_FORMAT = "lora_trainer.latent.v1"  # bump when pixels_for() changes what it produces
LATENT_FACTOR = 8   # pixels per latent along each side (every SD VAE)
EncodeFn = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]  # (done, total)


def _pixels(img) -> torch.Tensor:
    width, height = img.size
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(height, width, 3).permute(2, 0, 1).float().div(127.5).sub(1.0)


def mask_tensor(mask) -> torch.Tensor:
    """A mask picture ("L", bucket size) as float32 [H/8, W/8] in [0, 1]: the average of each latent's 8×8
    pixels (kohya resizes the mask to the loss's size by area)."""
    width, height = mask.size
    data = torch.frombuffer(bytearray(mask.tobytes()), dtype=torch.uint8).view(1, 1, height, width)
    return F.avg_pool2d(data.float().div(255.0), LATENT_FACTOR)[0, 0]


def sample_for(item: TrainItem, view: View = PLAIN, masks: MaskSet | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One sample of ``item``: its picture as ``view`` shows it (float32 [3, H, W] in [-1, 1]) and, with
    ``masks``, its loss mask at the latent's size (None: the whole picture is trained)."""
    if masks is not None and masks.kind == "alpha":
        img, alpha = open_with_alpha(item.image.path)
    else:
        img, alpha = load_image(item.image.path, training=True), None
    pixels = _pixels(render(img, item, view))
    if masks is None:
        return pixels, None
    try:
        raw = load_mask(masks, item, alpha)
    except ImageLoadError as exc:
        raise ImageLoadError(item.image.path, sentence("data.mask_unreadable", name=exc.path.name,
                                                       reason=exc.reason)) from exc
    return pixels, (mask_tensor(render_mask(raw, item, view)) if raw is not None else None)


def pixels_for(item: TrainItem, view: View = PLAIN) -> torch.Tensor:
    """The item's image resized and cropped to its bucket: float32 [3, H, W] in [-1, 1]."""
    return sample_for(item, view)[0]


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
        raise ImageLoadError(path, sentence("data.file_unreadable", reason=exc.strerror or exc)) from exc
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
        *,
        flip: bool = False,
        masks: MaskSet | None = None,
    ) -> None:
        if mode not in ("memory", "disk"):
            raise ConfigError(msg("data.cache_mode", mode=mode))
        if mode == "disk" and not cache_dir:
            raise ConfigError(msg("data.cache_no_folder"), msg("data.cache_no_folder.advice"))
        self.encode_fn = encode_fn
        self.mode = mode
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.settings_key = str(settings_key)
        self.flip = bool(flip)
        self.masks = masks
        self.failed: dict[Path, str] = {}  # images that could not be loaded: path → reason
        self.encoded = 0  # latents computed by this object
        self.reused = 0  # valid disk entries found
        self._memory: dict[tuple[str, tuple[int, int]], dict[str, torch.Tensor]] = {}
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

    def _variant(self, item: TrainItem) -> str:
        """What the entry holds besides the latent ("" for the latent alone)."""
        parts = (["flip"] if self.flip else []) + ([f"mask={self.masks.key(item)}"] if self.masks else [])
        return "|".join(parts)

    def _metadata(self, item: TrainItem) -> dict[str, str]:
        bw, bh = item.bucket
        meta = {"format": CACHE_FORMAT, "image_path": str(item.image.path), "bucket": f"{bw}x{bh}",
                "settings_key": self.settings_key, **_file_fingerprint(item.image.path, self._hashes)}
        variant = self._variant(item)
        if variant:
            meta["variant"] = variant
        return meta

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
        if has_latent and all(stored.get(k, "") == expected.get(k, "") for k in (*self._CHECKED_KEYS, "variant")):
            self._valid_on_disk.add(key)
            return True
        return False

    def _is_cached(self, item: TrainItem) -> bool:
        if self.mode == "memory":
            return self._key(item) in self._memory
        return self._disk_entry_valid(item)

    def _store(self, item: TrainItem, entry: dict[str, torch.Tensor]) -> None:
        entry = {name: t.detach().to("cpu").contiguous().clone() for name, t in entry.items()}
        if self.mode == "memory":
            self._memory[self._key(item)] = entry
            return
        from safetensors.torch import save_file

        file = self.cache_file(item)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=file.parent)
            os.close(fd)
            try:
                save_file(entry, tmp, metadata=self._metadata(item))
                os.replace(tmp, file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TrainerError(msg("data.cache_write", file=file, reason=exc.strerror or exc),
                               msg("data.cache_write.advice")) from exc
        self._valid_on_disk.add(self._key(item))

    def _encode(self, items: list[TrainItem], pixels: list[torch.Tensor], masks: list[torch.Tensor | None]) -> None:
        batch = torch.stack(pixels)
        latents = self._encode_checked(items, batch)
        flipped = self._encode_checked(items, torch.flip(batch, dims=[3])) if self.flip else None
        for index, item in enumerate(items):
            entry = {"latent": latents[index]}
            if flipped is not None:
                entry["latent_flipped"] = flipped[index]
            if masks[index] is not None:
                entry["mask"] = masks[index]
            self._store(item, entry)
        self.encoded += len(items)

    def _encode_checked(self, items: list[TrainItem], batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            latents = self.encode_fn(batch)
        if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or latents.shape[0] != len(items):
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise TypeError(f"encode_fn must return a [B,C,h,w] tensor with B={len(items)}, got {shape}")
        finite = torch.isfinite(latents.float()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = [str(it.image.path) for it, ok in zip(items, finite.tolist()) if not ok]
            raise TrainerError(msg("data.vae_nan", paths=", ".join(bad[:3])), msg("data.vae_nan.advice"))
        return latents

    def _load_pixels(self, items: list[TrainItem]) -> tuple[list[TrainItem], list[torch.Tensor],
                                                             list[torch.Tensor | None], dict[Path, str]]:
        """The items that loaded, their pictures and masks, and the reasons of those that did not (left to
        the caller to record: this runs in ``read_ahead``'s threads)."""
        ok, pixels, masks, failed = [], [], [], {}
        for item in items:
            try:
                if self.mode == "disk":
                    self._metadata(item)  # fingerprint the bytes before encoding them
                picture, mask = sample_for(item, PLAIN, self.masks)
                pixels.append(picture)
                masks.append(mask)
                ok.append(item)
            except ImageLoadError as exc:
                failed[item.image.path] = exc.reason
        return ok, pixels, masks, failed

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
        chunks = [group[start:start + step] for group in by_bucket.values() for start in range(0, len(group), step)]
        # the next chunks' pictures are decoded in threads while the VAE encodes this one (same order, same latents)
        for chunk, (ok, pixels, masks, failed) in zip(chunks, read_ahead(self._load_pixels, chunks)):
            self.failed.update(failed)
            if ok:
                self._encode(ok, pixels, masks)
            done += len(chunk)
            if progress is not None:
                progress(done, len(ordered))
        return [(p, r) for p, r in self.failed.items()]

    def get(self, item: TrainItem) -> torch.Tensor:
        """The latent [C,h,w] for ``item`` (encoded now if it was not prepared)."""
        return self.entry(item)["latent"]

    def entry(self, item: TrainItem) -> dict[str, torch.Tensor]:
        """``latent`` [C,h,w] for ``item``, with ``flip`` also ``latent_flipped``, with ``masks`` ``mask``
        [h,w] unless the item trains on its whole picture (encoded now if it was not prepared)."""
        if item.image.path in self.failed:
            raise ImageLoadError(item.image.path, self.failed[item.image.path])
        if not self._is_cached(item):
            ok, pixels, masks, failed = self._load_pixels([item])
            self.failed.update(failed)
            if not ok:
                raise ImageLoadError(item.image.path, self.failed[item.image.path])
            self._encode(ok, pixels, masks)
        if self.mode == "memory":
            return self._memory[self._key(item)]
        from safetensors.torch import load_file

        return load_file(str(self.cache_file(item)))
