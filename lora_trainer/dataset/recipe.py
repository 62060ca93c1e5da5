"""What a prepared picture records, and what is remembered about originals between runs.

A prepared PNG carries a text chunk with its original's file name and a recipe: a hash of the original's size
and modification time, the output size, the crop box and (for a picture with transparency) the background
colour. The same recipe means the output is up to date. Facts that need a decode (a picture with transparency:
is anything visible?) are cached in ``.workbench/prepare.json``, by file size and time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from PIL import Image

from ..data.images import ImageHeader
from ..io.atomic import atomic_write
from .crop import Box, Size, colour_hex, small_view
from .project import Project

RECIPE_VERSION = 1
MARK = "lora_trainer.prepared"       # the PNG text chunk's key
FACTS_FILE = "prepare.json"


class FactsCache:
    """Facts that need a decode (is anything visible?), kept by file size and time in ``.workbench``."""

    def __init__(self, project: Project) -> None:
        self.path = project.work_dir / FACTS_FILE
        self.changed = False
        try:
            self.entries: dict = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def get(self, key: str, stat: os.stat_result) -> dict | None:
        entry = self.entries.get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry
        return None

    def put(self, key: str, stat: os.stat_result, **facts) -> None:
        self.entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **facts}
        self.changed = True

    def save(self) -> None:
        """Best effort: a read-only project still previews, it only decodes again next time."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.path) as tmp:
                tmp.write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
            self.changed = False
        except OSError:
            pass


def fully_transparent(path: Path, header: ImageHeader, key: str, stat: os.stat_result, facts: FactsCache) -> bool:
    cached = facts.get(key, stat)
    if cached is not None and "transparent" in cached:
        return bool(cached["transparent"])
    transparent = small_view(path, header, 128).fully_transparent
    facts.put(key, stat, transparent=transparent)
    return transparent


def read_mark(path: str | os.PathLike) -> dict | None:
    """The source and recipe a prepared PNG carries, or None (not ours, unreadable, absent)."""
    try:
        with Image.open(path) as img:
            raw = img.info.get(MARK) if img.format == "PNG" else None
        mark = json.loads(raw) if raw else None
        return mark if isinstance(mark, dict) else None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def recipe_of(stat: os.stat_result, output: Size, box: Box, background: tuple[int, int, int] | None) -> str:
    """Changes when the original or anything that shapes the output changes (``background``: None for a
    picture without transparency, which the colour does not change)."""
    data = {"v": RECIPE_VERSION, "src": [stat.st_size, stat.st_mtime_ns], "out": list(output),
            "box": [round(v, 2) for v in box], "bg": colour_hex(background) if background else None}
    return hashlib.blake2b(json.dumps(data).encode(), digest_size=8).hexdigest()
