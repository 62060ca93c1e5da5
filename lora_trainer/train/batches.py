"""One step's batch from its items: cached latents (the mirrored one for a flipped sample) or the samples'
pictures encoded by the VAE (random crop, colour augmentation), loss masks, captions, SDXL size conditioning.

Random choices come from the run's caption RNG (saved with the training state) in a fixed order: each
item's view (flip, crop, colour), then the captions; a run without augmentation draws no more than before.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..data.augment import Augment, crop_top_left, draw_view
from ..data.captions import process_caption
from ..data.images import ImageLoadError
from ..errors import TrainerError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .step import Batch
from .transfer import to_device

DEVICE_LATENT_BUDGET = 256 << 20  # bytes of cached latents kept on the training device (~1,000 SDXL)


class BatchMaker:
    def __init__(self, run, on_skip: Optional[Callable[[ImageLoadError], None]] = None) -> None:
        self.run = run
        self.on_skip = on_skip   # told of an image that cannot be read any more (changed since the checks)
        self.cfg = run.cfg
        self.augment = Augment.from_config(run.cfg)
        self.device_entries: dict[tuple, dict[str, torch.Tensor]] = {}
        self.device_bytes = 0

    def cached(self, item) -> dict[str, torch.Tensor]:
        """The item's cached latent(s) and mask on the training device: copied there once while the copies
        fit in ``DEVICE_LATENT_BUDGET`` bytes, so that a step needs no host-to-device copy."""
        key = (item.image.path, tuple(item.bucket))
        entry = self.device_entries.get(key)
        if entry is not None:
            return entry
        entry = {name: to_device(t.float(), self.run.device) for name, t in self.run.latent_cache.entry(item).items()}
        size = sum(t.numel() * t.element_size() for t in entry.values())
        if self.device_bytes + size <= DEVICE_LATENT_BUDGET:
            self.device_entries[key] = entry
            self.device_bytes += size
        return entry

    def sample(self, item, view) -> tuple[torch.Tensor, Optional[torch.Tensor], bool]:
        """(latent or pixels, mask or None, whether the first is a latent already)."""
        run = self.run
        if run.latent_cache is not None:
            entry = self.cached(item)
            mask = entry.get("mask")
            if view.flip:
                return entry["latent_flipped"], (mask.flip(-1) if mask is not None else None), True
            return entry["latent"], mask, True
        from ..data.latent_cache import sample_for
        pixels, mask = sample_for(item, view, run.masks)
        return pixels, mask, False

    def make(self, items) -> Optional[Batch]:
        cfg, run = self.cfg, self.run
        kept, samples, masks, crops = [], [], [], []
        encoded = True
        for item in items:
            view = draw_view(item, self.augment, run.caption_rng)
            try:
                value, mask, encoded = self.sample(item, view)
            except ImageLoadError as err:   # changed since it was checked before training
                what = sentence("error.what_to_do", message=err.message, advice=err.advice) if err.advice \
                    else err.message   # str(err), in any language
                run.warnings.append(sentence("train.skipped_error", error=what))
                if self.on_skip is not None:
                    self.on_skip(err)
                continue
            kept.append(item)
            samples.append(value)
            masks.append(mask)
            crops.append(crop_top_left(item, view))
        if not kept:
            return None
        stacked = torch.stack(samples) if encoded else run.encode(to_device(torch.stack(samples), run.device))
        stacked = stacked.to(run.device, torch.float32)
        captions = [process_caption(it.image.caption, shuffle_caption=cfg.shuffle_caption,
                                    keep_tokens=cfg.keep_tokens, caption_dropout_rate=cfg.caption_dropout_rate,
                                    caption_tag_dropout_rate=cfg.caption_tag_dropout_rate, rng=run.caption_rng)
                    for it in kept]
        weights = to_device(torch.tensor([it.loss_weight for it in kept]), run.device)
        return Batch(latents=stacked, captions=captions, loss_weights=weights,
                     original_sizes=[it.original_size for it in kept], crops=crops,
                     target_sizes=[(it.bucket[1], it.bucket[0]) for it in kept],
                     masks=self.mask_batch(masks, stacked) if run.masks is not None else None)

    def mask_batch(self, masks: list[Optional[torch.Tensor]], latents: torch.Tensor) -> torch.Tensor:
        """[B, 1, h, w] on the device; an item without a mask trains everywhere (ones)."""
        size = latents.shape[-2:]
        full = [to_device(m, latents.device).float() if m is not None else latents.new_ones(size) for m in masks]
        if any(m.shape != size for m in full):
            raise TrainerError(msg("train.mask_latents", masks=[tuple(m.shape) for m in full], size=tuple(size)),
                               msg("train.mask_latents.advice"))
        return torch.stack(full)[:, None]
