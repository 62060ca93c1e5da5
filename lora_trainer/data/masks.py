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


def _listing(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f", … (+{len(names) - SHOWN})" if len(names) > SHOWN else "")


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
        raise DatasetError(f"the mask folder (conditioning_data_dir) {root} does not exist",
                           "choose the folder that holds the mask pictures, or leave it empty")
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
            wrong.append(f"{mask.name} ({err.reason})")
            continue
        if size != (item.image.width, item.image.height):
            wrong.append(f"{mask.name} is {size[0]}×{size[1]}, its image {item.image.width}×{item.image.height}")
            continue
        files[str(item.image.path)] = mask
    if missing:
        raise DatasetError(f"masked_loss: {len(missing)} training image(s) have no mask in {root}: {_listing(missing)}",
                           f"put a mask picture of the same name (e.g. {Path(missing[0]).stem}.png) in "
                           f"{root / Path(missing[0]).parent} or in {root}, white where the image is trained")
    if wrong:
        raise DatasetError(f"masked_loss: {len(wrong)} mask(s) in {root} do not fit their image: {_listing(wrong)}",
                           "save each mask at its image's size (the mask is resized and cut with the image)")
    used = {p.resolve() for p in files.values()}
    extra = sorted(p.name for group in [flat, *nested.values()] for p in group.values() if p.resolve() not in used)
    notes = [f"masked_loss: {len(files)} training image(s) train only where their mask is white"]
    if extra:
        notes.append(f"masked_loss: {len(extra)} picture(s) in the mask folder belong to no training image and are "
                     f"not used: {_listing(extra)}")
    if any(it.is_reg for it in items):
        notes.append("masked_loss: regularization images have no masks and train on their whole picture")
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
        notes.append(f"alpha_mask: {len(opaque)} of {total} image(s) have no transparency and train on their whole "
                     f"picture: {_listing(opaque)}")
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
