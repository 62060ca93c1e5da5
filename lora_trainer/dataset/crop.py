"""One picture cut to its training size: the crop box (the centre, or a focal point as far as the picture
allows), a safe decode and the resize.

The decode is ``data/images.py``'s (EXIF rotation, CMYK / 16-bit / palette to RGB), with transparency put on
the chosen background colour. A large JPEG is decoded at 1/2, 1/4 or 1/8 scale when the result still has at
least twice the pixels the output needs (faster, and a huge photo never sits in memory at full size); an
animation gives its first frame. Boxes are in the picture's pixels as displayed (EXIF rotation applied).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

from PIL import Image, ImageColor, ImageDraw

from ..data.images import OPEN_ERRORS, ImageHeader, ImageLoadError, image_to_rgb, open_error_reason
from ..errors import DatasetError
from ..text.messages import Message, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

Box = tuple[float, float, float, float]      # left, top, right, bottom
Size = tuple[int, int]                       # width, height

MIN_SIDE = 64          # a picture with a shorter side is refused: nothing to train on
HUGE_SIDE = 8192       # a picture with a longer side is downscaled with a note (bigger exports only cost time)


def parse_colour(value, setting: str | Message | None = None) -> tuple[int, int, int]:
    """``"#fff"``, ``"#ffffff"``, ``"ffffff"``, ``"white"``, ``"rgb(255,255,255)"`` or (r, g, b) → (r, g, b);
    ``setting`` names it in a refusal (the background colour by default)."""
    if isinstance(value, (tuple, list)) and len(value) in (3, 4):
        try:
            rgb = tuple(int(v) for v in value[:3])
        except (TypeError, ValueError):
            rgb = (-1,)
        if len(rgb) == 3 and all(0 <= v <= 255 for v in rgb):
            return rgb  # type: ignore[return-value]
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if len(text) in (3, 6) and all(c in "0123456789abcdefABCDEF" for c in text):
            text = "#" + text
        try:
            return ImageColor.getrgb(text)[:3]
        except ValueError:
            pass
    raise DatasetError(msg("crop.not_colour", setting=setting or msg("crop.background"), value=repr(value)),
                       msg("crop.not_colour.advice"))


def colour_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def crop_box(width: int, height: int, out_size: Size, focal: tuple[float, float] | None = None) -> Box:
    """The largest box of ``out_size``'s shape inside a ``width`` × ``height`` picture, centred on ``focal``
    (x, y in 0…1) as far as the picture allows, else on the picture's centre (where training would crop)."""
    out_w, out_h = out_size
    scale = max(out_w / width, out_h / height)
    box_w, box_h = min(width, out_w / scale), min(height, out_h / scale)
    fx, fy = focal if focal is not None else (0.5, 0.5)
    left = min(max(fx * width - box_w / 2, 0.0), width - box_w)
    top = min(max(fy * height - box_h / 2, 0.0), height - box_h)
    return left, top, left + box_w, top + box_h


def box_scale(box: Box, out_size: Size) -> float:
    """Output pixels per picture pixel (above 1: the picture is enlarged)."""
    return out_size[0] / (box[2] - box[0])


def rounded_box(box: Box) -> tuple[int, int, int, int]:
    return tuple(int(round(v)) for v in box)  # type: ignore[return-value]


def _draft(img: Image.Image, scale: float) -> None:
    """Let a JPEG decode at a reduced scale that still leaves twice the pixels the output needs."""
    if img.format != "JPEG" or scale * 2 >= 1:
        return
    width, height = img.size
    img.draft(img.mode, (max(1, math.ceil(width * scale * 2)), max(1, math.ceil(height * scale * 2))))


@dataclass
class Decoded:
    image: Image.Image                 # RGB, transparency on the background
    alpha: Image.Image | None          # the alpha channel ("L") when the picture has one
    reduction: tuple[float, float]     # decoded size ÷ displayed size (a JPEG decoded at a reduced scale)

    @property
    def fully_transparent(self) -> bool:
        return self.alpha is not None and self.alpha.getextrema()[1] == 0


def decode(path: str | os.PathLike, header: ImageHeader, scale: float = 1.0,
           background: tuple[int, int, int] = (255, 255, 255)) -> Decoded:
    """The first frame of ``path`` as RGB on ``background``; ``scale`` (output ÷ picture pixels) lets a JPEG
    decode at a reduced size. ``ImageLoadError`` for a bad file or one too large to decode safely."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # checked below, after the draft
            with Image.open(path) as img:
                if header.frames > 1:
                    img.seek(0)
                _draft(img, scale)
                limit = Image.MAX_IMAGE_PIXELS
                if header.over_pixel_limit and limit and img.size[0] * img.size[1] > limit:
                    raise ImageLoadError(path, sentence("plan.too_large", size=f"{header.width}×{header.height}",
                                                        megapixels=limit / 1e6), msg("crop.too_large.advice"))
                rgb, alpha = image_to_rgb(img, background, keep_alpha=header.has_alpha)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError(path, sentence("crop.no_memory"), msg("crop.too_large.advice")) from exc
    except OPEN_ERRORS as exc:
        raise ImageLoadError(path, open_error_reason(exc)) from exc
    return Decoded(rgb, alpha, (rgb.width / header.width, rgb.height / header.height))


def _resample(scale: float):
    return Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC


def cut(decoded: Decoded, box: Box, out_size: Size) -> Image.Image:
    """The box of a decoded picture resized to exactly ``out_size`` (LANCZOS down, BICUBIC up, as training)."""
    rx, ry = decoded.reduction
    scaled = (box[0] * rx, box[1] * ry, box[2] * rx, box[3] * ry)
    scale = out_size[0] / max(1e-9, scaled[2] - scaled[0])
    if tuple(out_size) == decoded.image.size and scaled == (0, 0, *out_size):
        return decoded.image
    return decoded.image.resize(tuple(out_size), _resample(scale), box=scaled)


def render(path: str | os.PathLike, header: ImageHeader, box: Box, out_size: Size,
           background: tuple[int, int, int] = (255, 255, 255)) -> tuple[Image.Image, Decoded]:
    """(the output picture of exactly ``out_size``, the decode it came from)."""
    decoded = decode(path, header, box_scale(box, out_size), background)
    return cut(decoded, box, out_size), decoded


def fit_size(size: Size, max_side: int) -> Size:
    """``size`` shrunk to fit ``max_side`` (never enlarged), at least 1 px a side."""
    width, height = size
    factor = min(1.0, max_side / max(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def small_view(path: str | os.PathLike, header: ImageHeader, max_side: int,
               background: tuple[int, int, int] = (255, 255, 255)) -> Decoded:
    """The whole picture at most ``max_side`` px a side (alpha kept), for the detector and the click view."""
    size = fit_size((header.width, header.height), max_side)
    decoded = decode(path, header, size[0] / header.width, background)
    if decoded.image.size != size:
        decoded.image = decoded.image.resize(size, Image.Resampling.LANCZOS)
        if decoded.alpha is not None:
            decoded.alpha = decoded.alpha.resize(size, Image.Resampling.LANCZOS)
    decoded.reduction = (size[0] / header.width, size[1] / header.height)
    return decoded


def draw_crop(view: Image.Image, box: Box, reduction: tuple[float, float],
              focal: tuple[float, float] | None) -> Image.Image:
    """``view`` with the area outside the crop box dimmed, the box outlined and the focal point marked."""
    rx, ry = reduction
    left, top, right, bottom = box[0] * rx, box[1] * ry, box[2] * rx, box[3] * ry
    shade = Image.new("L", view.size, 110)
    ImageDraw.Draw(shade).rectangle([left, top, right - 1, bottom - 1], fill=255)
    out = Image.composite(view, Image.new("RGB", view.size, (0, 0, 0)), shade)
    draw = ImageDraw.Draw(out)
    draw.rectangle([left, top, right - 1, bottom - 1], outline=(255, 64, 64), width=2)
    if focal is not None:
        x, y, r = focal[0] * view.width, focal[1] * view.height, max(3, min(view.size) // 40)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255), width=2)
        draw.ellipse([x - r + 2, y - r + 2, x + r - 2, y + r - 2], outline=(255, 64, 64), width=1)
    return out
