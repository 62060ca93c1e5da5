"""What in a dataset does not fit the settings: images enlarged far past their own size, captions with fewer
tags than ``keep_tokens``. Warnings only (the run goes on); each names the files and the fix."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..text.messages import Joined, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .captions import split_tags
from .dataset import TrainItem

# Enlarged more than this (per side) a picture trains visibly blurred.
MAX_UPSCALE = 2.0
_SHOWN = 3


def _files(names: Sequence[Any]) -> Any:
    shown = Joined(names[:_SHOWN], ", ")
    return msg("data.more", shown=shown, count=len(names) - _SHOWN) if len(names) > _SHOWN else shown


def upscale_warning(items: Sequence[TrainItem]) -> list[str]:
    enlarged = []
    for item in items:
        width, height = item.image.width, item.image.height
        scale = max(item.bucket[0] / width, item.bucket[1] / height)
        if scale > MAX_UPSCALE:
            enlarged.append((scale, f"{item.image.path.name} ({width}×{height} → {item.bucket[0]}×{item.bucket[1]})"))
    if not enlarged:
        return []
    enlarged.sort(key=lambda e: -e[0])
    return [sentence("data.enlarged", count=len(enlarged), limit=f"{MAX_UPSCALE:g}",
                     names=_files([text for _, text in enlarged]))]


def keep_tokens_warning(items: Sequence[TrainItem], keep_tokens: int) -> list[str]:
    if keep_tokens <= 0:
        return []
    short = {}
    for item in items:
        tags = len(split_tags(item.image.caption))
        if tags < keep_tokens and str(item.image.path) not in short:
            short[str(item.image.path)] = msg("data.tags", name=os.path.basename(str(item.image.path)), count=tags)
    if not short:
        return []
    return [sentence("data.short_captions", keep_tokens=keep_tokens, count=len(short),
                     names=_files(list(short.values())))]


def settings_warnings(items: Sequence[TrainItem], keep_tokens: int = 0) -> list[str]:
    """``keep_tokens``: pass 0 where tags are neither shuffled nor dropped (it changes nothing then)."""
    return upscale_warning(items) + keep_tokens_warning(items, keep_tokens)
