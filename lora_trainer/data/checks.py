"""What in a dataset does not fit the settings: images enlarged far past their own size, captions with fewer
tags than ``keep_tokens``. Warnings only (the run goes on); each names the files and the fix."""
from __future__ import annotations

import os
from collections.abc import Sequence

from .captions import split_tags
from .dataset import TrainItem

# Enlarged more than this (per side) a picture trains visibly blurred.
MAX_UPSCALE = 2.0
_SHOWN = 3


def _files(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


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
    return [f"{len(enlarged)} image(s) are enlarged more than {MAX_UPSCALE:g}× to their training size and train "
            f"blurred: {_files([text for _, text in enlarged])}. Use larger images, or a smaller resolution"]


def keep_tokens_warning(items: Sequence[TrainItem], keep_tokens: int) -> list[str]:
    if keep_tokens <= 0:
        return []
    short = {}
    for item in items:
        tags = len(split_tags(item.image.caption))
        if tags < keep_tokens and str(item.image.path) not in short:
            short[str(item.image.path)] = f"{os.path.basename(str(item.image.path))} ({tags} tag(s))"
    if not short:
        return []
    return [f"keep_tokens is {keep_tokens}, but {len(short)} caption(s) have fewer tags, so none of their tags is "
            f"ever shuffled or dropped: {_files(list(short.values()))}. Lower keep_tokens (the trigger word is "
            f"usually 1) or add tags to those captions"]


def settings_warnings(items: Sequence[TrainItem], keep_tokens: int = 0) -> list[str]:
    """``keep_tokens``: pass 0 where tags are neither shuffled nor dropped (it changes nothing then)."""
    return upscale_warning(items) + keep_tokens_warning(items, keep_tokens)
