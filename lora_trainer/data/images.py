"""Open training images safely as 8-bit RGB.

Artists' folders hold phone photos (EXIF rotation), transparent PNGs, CMYK JPEGs
from print work and 16-bit scans; each must reach the VAE as the picture they see.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DatasetError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# Formats people often drop into a dataset that we do not read (reported, not silently ignored).
UNSUPPORTED_IMAGE_EXTENSIONS = (".gif", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jxl", ".psd")

WHITE = (255, 255, 255)
# Formats with real animations; other multi-frame files (a phone's MPO JPEG) show their first frame as the picture.
_ANIMATED_FORMATS = ("PNG", "WEBP", "GIF")

_EXIF_ORIENTATION = 0x0112
_CONVERT_ADVICE = msg("data.convert")

_OPEN_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)
OPEN_ERRORS = _OPEN_ERRORS   # what opening or decoding a bad file raises (for callers that open pictures)


class ImageLoadError(DatasetError):
    """One image cannot be read; callers skip it and report ``path``."""

    def __init__(self, path: str | os.PathLike, reason: str, advice: Any = _CONVERT_ADVICE) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(msg("data.unreadable", path=self.path, reason=reason), advice)


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a supported image extension (any case)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def open_error_reason(exc: BaseException) -> str:
    """One of ``OPEN_ERRORS`` in plain words (corrupt, truncated, too large, …)."""
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Image.DecompressionBombError):
        return sentence("data.too_large")
    if isinstance(exc, UnidentifiedImageError):
        return sentence("data.not_image")
    if isinstance(exc, FileNotFoundError):
        return sentence("data.no_file")
    if isinstance(exc, PermissionError):
        return sentence("data.denied")
    if "truncated" in str(exc).lower():
        return sentence("data.truncated")
    return sentence("data.corrupt", error=exc)


def _orientation(img: Image.Image) -> int:
    """EXIF orientation without decoding pixels (PNG exif is read from the header only)."""
    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        return int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # broken EXIF: the pixels are still usable, just not rotated
        return 1


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as displayed (EXIF rotation applied), reading only the header."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = _orientation(img)
            frames = getattr(img, "n_frames", 1) if getattr(img, "is_animated", False) else 1
    except _OPEN_ERRORS as exc:
        raise ImageLoadError(path, _reason(exc)) from exc
    if frames > 1:   # an animated WebP or PNG would train as its first frame only
        raise ImageLoadError(path, sentence("data.animated", frames=frames), msg("data.animated.advice"))
    if width < 1 or height < 1:
        raise ImageLoadError(path, sentence("data.empty_size", width=width, height=height))
    # Orientations 5-8 swap width and height.
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


@dataclass(frozen=True)
class ImageHeader:
    """What a picture's header says, without decoding its pixels."""
    width: int                  # as displayed (EXIF rotation applied)
    height: int
    format: str                 # Pillow's name: "PNG", "JPEG", "WEBP", …
    mode: str                   # as stored: "RGB", "RGBA", "P", "CMYK", "I;16", …
    frames: int                 # more than 1: an animation (or a phone's multi-picture JPEG)
    has_alpha: bool             # an alpha channel or a transparent palette colour
    over_pixel_limit: bool      # above Pillow's decompression-bomb warning size (decoding it is not safe)

    @property
    def animated(self) -> bool:
        return self.frames > 1 and self.format in _ANIMATED_FORMATS


def read_header(path: str | os.PathLike) -> ImageHeader:
    """The header facts of ``path``; ``ImageLoadError`` for an empty, corrupt or bomb-sized file."""
    try:
        if os.path.getsize(path) == 0:
            raise ImageLoadError(path, sentence("data.empty_file"), msg("data.empty_file.advice"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                orientation = _orientation(img)
                frames = int(getattr(img, "n_frames", 1) or 1)
                mode, fmt = img.mode, img.format or ""
                has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    except _OPEN_ERRORS as exc:
        raise ImageLoadError(path, _reason(exc)) from exc
    if width < 1 or height < 1:
        raise ImageLoadError(path, sentence("data.empty_size", width=width, height=height))
    over = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageHeader(width, height, fmt, mode, frames, has_alpha, over)


def _high_bit_to_8bit(img: Image.Image, sixteen_bit: bool) -> Image.Image:
    """16/32-bit grayscale ("I;16*", "I", "F") to "L"; a plain convert would clip to white."""
    if img.mode == "F":
        _, high = img.getextrema()
        scale = 255.0 if high <= 1.0 else 1.0
        return img.point(lambda v: v * scale).convert("L")
    if img.mode != "I":
        img = img.convert("I")
    _, high = img.getextrema()
    if sixteen_bit or high > 255:
        return img.point(lambda v: v * (1 / 257) + 0.5).convert("L")
    return img.convert("L")


def _to_rgb(img: Image.Image, sixteen_bit: bool, background: tuple = WHITE, keep_alpha: bool = False,
            path=None) -> tuple[Image.Image, Image.Image | None]:
    """(RGB picture, its alpha channel "L" when ``keep_alpha`` and it had one). With ``path`` (a training
    image) a fully transparent picture, which would train as a blank one, raises ``ImageLoadError``."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _high_bit_to_8bit(img, sixteen_bit)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        rgba = img.convert("RGBA")
        if path is not None and rgba.getchannel("A").getextrema()[1] == 0:
            raise ImageLoadError(path, sentence("data.transparent"), msg("data.transparent.advice"))
        base = Image.new("RGBA", rgba.size, tuple(background)[:3] + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB"), rgba.getchannel("A") if keep_alpha else None
    if img.mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, grayscale "L" and "1"
    return img, None


def _exif_transpose(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # broken EXIF: keep the pixels unrotated rather than lose the image
        return img


def image_to_rgb(img: Image.Image, background: tuple = WHITE, keep_alpha: bool = False,
                 path=None) -> tuple[Image.Image, Image.Image | None]:
    """An opened picture (its current frame) as 8-bit RGB, EXIF rotation applied, transparency composited on
    ``background``; with ``keep_alpha`` also its alpha channel ("L", rotated alike) when it has one. With
    ``path`` a fully transparent picture raises ``ImageLoadError``.

    The result is never ``img`` itself, so it outlives the opened file.
    """
    img.load()
    # Pillow < 10 opens 16-bit grayscale PNG as "I" (newer: "I;16").
    sixteen_bit = img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG")
    rgb, alpha = _to_rgb(_exif_transpose(img), sixteen_bit, background, keep_alpha, path)
    return (rgb.copy() if rgb is img else rgb), alpha


def load_image(path: str | os.PathLike, background: tuple = WHITE, *, training: bool = False) -> Image.Image:
    """The image at ``path`` as RGB: EXIF rotation applied, transparency on ``background`` (white), 8 bits.
    ``training``: refuse a picture that would train as nothing (fully transparent) with ``ImageLoadError``."""
    try:
        with Image.open(path) as img:
            return image_to_rgb(img, background, path=path if training else None)[0]
    except _OPEN_ERRORS as exc:
        raise ImageLoadError(path, _reason(exc)) from exc
