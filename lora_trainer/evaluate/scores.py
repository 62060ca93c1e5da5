"""Numbers for each image of an epoch × weight grid, so the choice is not only the eye's.

* broken-image score: black/NaN, one flat colour, extreme contrast, noise;
* over-fit similarity: SSIM and PSNR against the nearest training image (a LoRA that
  reproduces its training images cannot be steered);
* effect size: how much the image differs from the same prompt and seed at weight 0.

Images are compared as small thumbnails (the question is "is this the same picture", not
fine detail), which also keeps a 100-cell grid fast. numpy and Pillow only.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np
from PIL import Image

THUMB = 64                 # side of the thumbnails compared for similarity and effect
STATS_SIDE = 128           # side the broken-image statistics are taken at
OVERFIT_SSIM = 0.75        # this close to a training image: a copy
OVERFIT_PSNR = 25.0
BROKEN_AT = 0.5            # broken score from which an image counts as broken

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]


def to_array(image: ImageLike) -> np.ndarray:
    """float64 RGB array in [0, 1]; arrays may be uint8 (0–255) or float (0–1, NaN kept)."""
    if isinstance(image, (str, os.PathLike)):
        from ..data.images import load_image
        image = load_image(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an RGB image, got an array of shape {arr.shape}")  # internal: code passes arrays
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a [0, 1] array (NaN-free) with Pillow's box filter (an average, no ringing)."""
    img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float64) / 255.0


def _crop_to_aspect(arr: np.ndarray, aspect: float) -> np.ndarray:
    h, w = arr.shape[:2]
    if w / h > aspect:
        nw = max(1, round(h * aspect))
        left = (w - nw) // 2
        return arr[:, left:left + nw]
    nh = max(1, round(w / aspect))
    top = (h - nh) // 2
    return arr[top:top + nh]


def thumbnail(image: ImageLike, aspect: float | None = None, side: int = THUMB) -> np.ndarray:
    """``side``×``side`` thumbnail; with ``aspect`` (w/h) the image is first center-cropped to it,
    so that a training image and a generated cell of that shape are squeezed alike."""
    arr = to_array(image)
    arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    if aspect:
        arr = _crop_to_aspect(arr, aspect)
    return _resize(arr, (side, side))


def _gray(arr: np.ndarray) -> np.ndarray:
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


# --- broken images ------------------------------------------------------------------------------------

@dataclass
class BrokenScore:
    score: float                                    # 0 fine … 1 broken
    reasons: list[str] = field(default_factory=list)  # message keys score.broken.*
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def broken(self) -> bool:
        return self.score >= BROKEN_AT


def _ramp(value: float, bad: float, good: float) -> float:
    """1 at ``bad``, 0 at ``good``, linear between (either direction)."""
    if bad == good:
        return float(value <= bad)
    return float(min(1.0, max(0.0, (value - good) / (bad - good))))


def broken_score(image: ImageLike) -> BrokenScore:
    """How broken an image looks: black/NaN, near-uniform, extreme contrast, or noise-like."""
    arr = to_array(image)
    if not np.isfinite(arr).all():
        return BrokenScore(1.0, ["score.broken.black"], {"nonfinite": float((~np.isfinite(arr)).mean())})
    small = _resize(np.clip(arr, 0, 1), (STATS_SIDE, STATS_SIDE)) if max(arr.shape[:2]) > STATS_SIDE else arr
    gray = _gray(small)
    mean, std = float(gray.mean()), float(gray.std())
    blacks, whites = float((gray < 0.02).mean()), float((gray > 0.98).mean())
    saturated = blacks + whites
    corr = []
    for a, b in ((gray[:, :-1], gray[:, 1:]), (gray[:-1], gray[1:])):
        a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
        denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
        corr.append(float((a * b).sum() / denom) if denom > 1e-12 else 1.0)
    neighbour = min(corr)
    parts = {
        "score.broken.black": 1.0 if mean < 0.03 and std < 0.03 else 0.0,
        "score.broken.uniform": _ramp(std, 0.02, 0.05),
        # both ends at once: a white background alone (common in character art) is not broken
        "score.broken.contrast": _ramp(saturated, 0.6, 0.35) if min(blacks, whites) >= 0.15 else 0.0,
        "score.broken.noise": _ramp(neighbour, 0.2, 0.5) if std >= 0.02 else 0.0,
    }
    score = max(parts.values())
    reasons = [k for k, v in parts.items() if v >= BROKEN_AT]
    if "score.broken.black" in reasons:
        reasons = ["score.broken.black"]
    return BrokenScore(score, reasons, {"mean": mean, "std": std, "saturated": saturated,
                                        "neighbour_correlation": neighbour})


# --- similarity ---------------------------------------------------------------------------------------

def _box(values: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k×k window (valid positions only), via an integral image."""
    c = np.pad(values, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean structural similarity of two same-size [0, 1] images (grey, k×k uniform windows)."""
    x, y = _gray(a), _gray(b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _box(x, window), _box(y, window)
    sxx = _box(x * x, window) - mx * mx
    syy = _box(y * y, window) - my * my
    sxy = _box(x * y, window) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two same-size [0, 1] images (capped at 100 for equal ones)."""
    mse = float(((a - b) ** 2).mean())
    return 100.0 if mse <= 1e-10 else min(100.0, 10 * math.log10(1.0 / mse))


@dataclass
class Similarity:
    index: int            # of the nearest training image
    name: str
    ssim: float
    psnr: float

    @property
    def overfit(self) -> bool:
        return self.ssim >= OVERFIT_SSIM or self.psnr >= OVERFIT_PSNR


class References:
    """The training images, kept as the originals (thumbnails are made per cell shape, cached)."""

    def __init__(self, images: Sequence[ImageLike], names: Sequence[str] | None = None) -> None:
        if not images:
            raise ValueError("no training images to compare with")  # internal: evaluate_grid passes some
        self.arrays = [np.nan_to_num(to_array(i)) for i in images]
        self.names = list(names) if names is not None else [
            os.path.basename(str(i)) if isinstance(i, (str, os.PathLike)) else f"image {n + 1}"
            for n, i in enumerate(images)]
        self._thumbs: dict[float, list[np.ndarray]] = {}

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike], max_side: int = 256) -> "References":
        """Training images from files, shrunk to ``max_side`` on load (only thumbnails are compared)."""
        from ..data.images import load_image

        images = []
        for path in paths:
            img = load_image(path)
            img.thumbnail((max_side, max_side))
            images.append(img)
        return cls(images, [os.path.basename(str(p)) for p in paths])

    def thumbs(self, aspect: float) -> list[np.ndarray]:
        key = round(aspect, 3)
        if key not in self._thumbs:
            self._thumbs[key] = [thumbnail(a, aspect) for a in self.arrays]
        return self._thumbs[key]

    def nearest(self, image: ImageLike) -> Similarity:
        arr = np.nan_to_num(to_array(image))
        aspect = arr.shape[1] / arr.shape[0]
        cell = thumbnail(arr)
        best: Similarity | None = None
        for index, ref in enumerate(self.thumbs(aspect)):
            value = ssim(cell, ref)
            if best is None or value > best.ssim:
                best = Similarity(index, self.names[index], value, psnr(cell, ref))
        return best


def effect_size(image: ImageLike, baseline: ImageLike) -> float:
    """How much ``image`` differs from ``baseline`` (same prompt and seed at weight 0): 0 = identical,
    1 = unrelated. Half structure (1 − SSIM), half colour (mean absolute difference × 4, capped)."""
    a, b = thumbnail(image), thumbnail(baseline)
    structure = max(0.0, 1.0 - ssim(a, b))
    colour = min(1.0, 4.0 * float(np.abs(a - b).mean()))
    return float(min(1.0, 0.5 * structure + 0.5 * colour))


# --- a grid --------------------------------------------------------------------------------------------

@dataclass
class GridCell:
    """One rendered image of the grid."""

    image: ImageLike
    weight: float
    epoch: int | None = None       # the epoch number (None for final / interrupted)
    stem: str | None = None        # the file it was rendered with; identifies the epoch column
    prompt: int = 0                # which prompt (and seed) of the grid

    @property
    def key(self) -> str:
        return self.stem or (f"epoch {self.epoch}" if self.epoch is not None else "?")


@dataclass
class CellScore:
    cell: GridCell
    broken: BrokenScore
    similarity: Similarity | None = None
    effect: float | None = None     # None without a weight-0 image of the same prompt


def score_cells(cells: Sequence[GridCell], references: References | None = None,
                baselines: dict[int, ImageLike] | None = None) -> list[CellScore]:
    """Score every cell. Baselines per prompt come from ``baselines`` or from a weight-0 cell of
    that prompt (at weight 0 every epoch renders the same image)."""
    base = dict(baselines or {})
    for cell in cells:
        if cell.weight == 0 and cell.prompt not in base:
            base[cell.prompt] = cell.image
    out = []
    for cell in cells:
        arr = to_array(cell.image)
        score = CellScore(cell, broken_score(arr))
        if references is not None and np.isfinite(arr).all():
            score.similarity = references.nearest(arr)
        if cell.prompt in base and cell.weight != 0:
            score.effect = effect_size(arr, base[cell.prompt])
        out.append(score)
    return out
