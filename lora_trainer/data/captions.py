"""Caption files and kohya's caption processing (shuffle, keep_tokens, dropout)."""
from __future__ import annotations

import codecs
import os
import random
from collections.abc import Iterable
from pathlib import Path

from ..errors import DatasetError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)


def normalize_extension(caption_extension: str) -> str:
    """".txt" for "txt" or ".txt"; kohya configs use both."""
    ext = (caption_extension or ".txt").strip()
    return ext if ext.startswith(".") else "." + ext


def caption_path(image_path: str | os.PathLike, caption_extension: str = ".txt") -> Path:
    """``<stem><ext>`` beside the image (``a.b.png`` → ``a.b.txt``)."""
    path = Path(image_path)
    return path.with_name(path.stem + normalize_extension(caption_extension))


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DatasetError(msg("data.caption_not_utf8", path=path, position=exc.start),
                           msg("data.caption_not_utf8.advice")) from exc


def read_caption(image_path: str | os.PathLike, caption_extension: str = ".txt") -> str | None:
    """The caption for ``image_path``, or None when there is no caption file.

    Like kohya, only the first line counts (the first non-blank one here); an empty file gives "".
    """
    path = caption_path(image_path, caption_extension)
    if not path.is_file():
        return None
    return read_caption_file(path)


def read_caption_file(path: str | os.PathLike) -> str:
    """The first non-blank line of a caption file (UTF-8 with or without BOM, or UTF-16); "" when empty."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(msg("data.caption_unreadable", path=path, reason=exc.strerror or exc),
                           msg("data.caption_unreadable.advice")) from exc
    for line in _decode(raw, path).splitlines():
        if line.strip():
            return line.strip()
    return ""


def split_tags(caption: str, separator: str = ",") -> list[str]:
    """Tags of a caption, stripped, empty ones dropped."""
    return [t.strip() for t in caption.split(separator) if t.strip()]


def process_caption(
    caption: str,
    *,
    shuffle_caption: bool,
    keep_tokens: int,
    caption_dropout_rate: float,
    caption_tag_dropout_rate: float = 0.0,
    keep_tokens_separator: str = "",
    rng: random.Random,
) -> str:
    """The caption one training step sees (kohya ``process_caption`` semantics).

    With ``keep_tokens_separator`` present in the caption ("a, b ||| c, d ||| e") the part
    before it stays fixed, the middle is shuffled/dropped, an optional part after a second
    separator stays fixed at the end; ``keep_tokens`` is then ignored. Otherwise the first
    ``keep_tokens`` tags stay fixed. Only non-fixed tags are shuffled or dropped; the
    separator itself never reaches the text encoder.
    """
    if caption_dropout_rate > 0 and rng.random() < caption_dropout_rate:
        return ""
    has_separator = bool(keep_tokens_separator) and keep_tokens_separator in caption
    if not (shuffle_caption or caption_tag_dropout_rate > 0 or has_separator):
        return caption

    suffix: list[str] = []
    if has_separator:
        fixed_part, flex_part = caption.split(keep_tokens_separator, 1)
        if keep_tokens_separator in flex_part:
            flex_part, suffix_part = flex_part.split(keep_tokens_separator, 1)
            suffix = split_tags(suffix_part)
        fixed, flex = split_tags(fixed_part), split_tags(flex_part)
    else:
        tags = split_tags(caption)
        keep = max(0, keep_tokens)
        fixed, flex = tags[:keep], tags[keep:]

    if shuffle_caption:
        rng.shuffle(flex)
    if caption_tag_dropout_rate > 0:
        flex = [t for t in flex if rng.random() >= caption_tag_dropout_rate]
    return ", ".join(fixed + flex + suffix)


def tag_frequency(captions: Iterable[str]) -> dict[str, int]:
    """How often each tag occurs over ``captions`` (kohya ``ss_tag_frequency`` counting)."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in split_tags(caption or ""):
            counts[tag] = counts.get(tag, 0) + 1
    return counts
