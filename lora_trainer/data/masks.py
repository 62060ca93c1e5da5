"""Loss masks, read as kohya sd-scripts reads them: an image's transparency (``alpha_mask``) or a mask
picture from the mask folder (``masked_loss`` with ``conditioning_data_dir``).

Transparency: alpha 0–255 → 0–1; an image without it trains on the whole picture. Mask folder: a
picture with the training image's name (any image extension) and size, in
``<mask folder>/<concept folder>/`` or in the mask folder itself; its red channel 0–255 → 0–1 (white
trained, black not). Like kohya, every training image needs its mask and a mask of another size is
refused; regularization images train on their whole picture. Masks are resized, cut and mirrored with
their image (``augment``) and brought to the latents' size by averaging (``latent_cache``). Torch-free.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image

from ..errors import DatasetError
from ..text.messages import Joined, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .dataset import TrainItem
from .images import IMAGE_EXTENSIONS, OPEN_ERRORS, ImageLoadError, image_size, image_to_rgb, load_image, \
    open_error_reason, read_header

SHOWN = 8   # file names listed in a message


@dataclass
class MaskSet:
    """Where a run's masks come from."""
    kind: str                                             # "alpha" | "folder"
    files: dict[str, Path] = field(default_factory=dict)  # folder: training image path → its mask picture
    notes: list[str] = field(default_factory=list)        # what the run says about them before training

    def file_for(self, item: TrainItem) -> Optional[Path]:
        return self.files.get(str(item.image.path))

    def key(self, item: TrainItem) -> str:
        """What an item's cached mask depends on besides the image itself (the latent cache checks it)."""
        if self.kind == "alpha":
            return "alpha"
        path = self.file_for(item)
        if path is None:
            return "none"
        try:
            stat = path.stat()
        except OSError:
            return f"file:{path}"
        return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _listing(names: list[str]) -> Joined:
    """The first names (sentences stay sentences, so the list reads in the user's language) and how many more."""
    return Joined([Joined(names[:SHOWN], ", "), f", … (+{len(names) - SHOWN})" if len(names) > SHOWN else ""], "")


def open_with_alpha(path) -> tuple[Image.Image, Optional[Image.Image]]:
    """The picture at ``path`` as RGB (transparency on white) and its alpha channel ("L"), None without one."""
    try:
        with Image.open(path) as img:
            return image_to_rgb(img, keep_alpha=True)
    except OPEN_ERRORS as exc:
        raise ImageLoadError(path, open_error_reason(exc)) from exc


def read_mask(path) -> Image.Image:
    """A mask picture's red channel ("L"), as kohya reads a conditioning image for the masked loss."""
    return load_image(path).getchannel("R")


def _pictures_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
            found.setdefault(entry.stem, entry)
    return found


def match_mask_folder(items: list[TrainItem], folder: str | os.PathLike) -> MaskSet:
    """Each training image's mask picture in ``folder``; ``DatasetError`` naming the images without one or
    with a mask of another size."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(msg("data.mask_folder_missing", root=root), msg("data.mask_folder_missing.advice"))
    flat = _pictures_by_stem(root)
    nested: dict[str, dict[str, Path]] = {}
    files: dict[str, Path] = {}
    missing, wrong = [], []
    for item in items:
        if item.is_reg or str(item.image.path) in files:
            continue
        concept = item.concept.path.name
        if concept not in nested:
            nested[concept] = _pictures_by_stem(root / concept)
        stem = item.image.path.stem
        mask = nested[concept].get(stem) or flat.get(stem)
        if mask is None:
            missing.append(f"{concept}/{item.image.path.name}")
            continue
        try:
            size = image_size(mask)
        except ImageLoadError as err:
            wrong.append(sentence("data.mask_bad", name=mask.name, reason=err.reason))
            continue
        if size != (item.image.width, item.image.height):
            wrong.append(sentence("data.mask_size", name=mask.name, width=size[0], height=size[1],
                                  image_width=item.image.width, image_height=item.image.height))
            continue
        files[str(item.image.path)] = mask
    if missing:
        raise DatasetError(msg("data.mask_missing", count=len(missing), root=root, names=_listing(missing)),
                           msg("data.mask_missing.advice", name=Path(missing[0]).stem,
                               folder=root / Path(missing[0]).parent, root=root))
    if wrong:
        raise DatasetError(msg("data.mask_wrong", count=len(wrong), root=root, names=_listing(wrong)),
                           msg("data.mask_wrong.advice"))
    used = {p.resolve() for p in files.values()}
    extra = sorted(p.name for group in [flat, *nested.values()] for p in group.values() if p.resolve() not in used)
    notes = [sentence("data.masked", count=len(files))]
    if extra:
        notes.append(sentence("data.mask_extra", count=len(extra), names=_listing(extra)))
    if any(it.is_reg for it in items):
        notes.append(sentence("data.mask_reg"))
    return MaskSet("folder", files, notes)


def alpha_masks(items: list[TrainItem]) -> MaskSet:
    """The transparency as the mask; the notes count the images without an alpha channel (headers only)."""
    opaque = []
    for item in {str(it.image.path): it for it in items}.values():
        try:
            has_alpha = read_header(item.image.path).has_alpha
        except ImageLoadError:
            continue  # reported where the picture is read
        if not has_alpha:
            opaque.append(item.image.path.name)
    total = len({str(it.image.path) for it in items})
    notes = []
    if opaque:
        notes.append(sentence("data.opaque", count=len(opaque), total=total, names=_listing(opaque)))
    return MaskSet("alpha", {}, notes)


def mask_set(cfg, items: list[TrainItem]) -> Optional[MaskSet]:
    """The masks ``cfg`` asks for (None: no masked loss)."""
    if cfg.conditioning_data_dir and cfg.masked_loss:
        return match_mask_folder(items, cfg.conditioning_data_dir)
    if cfg.alpha_mask:
        return alpha_masks(items)
    return None


def load_mask(masks: MaskSet, item: TrainItem, alpha: Optional[Image.Image]) -> Optional[Image.Image]:
    """The item's mask ("L", its picture's size) from ``masks``; ``alpha`` is the picture's own alpha channel.
    None: the item trains on its whole picture."""
    if masks.kind == "alpha":
        return alpha
    path = masks.file_for(item)
    return read_mask(path) if path is not None else None
