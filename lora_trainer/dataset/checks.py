"""Checks of a training folder before training, each with its numbers and a one-click fix or a plain instruction.

They run in the Dataset workbench and again when the Train tab starts (only ``blocking`` ones stop it):
the folder layout (``<N>_<name>`` concept folders, nothing nested), the image count for the goal, small
and unreadable pictures, duplicates, missing or empty captions, captions without the trigger word or
longer than the text encoder reads, tags on every image (traits to fold into the trigger word), mixed
aspect ratios with buckets off, a smallest bucket above the resolution. Pictures are read through the
scan cache, so a second check decodes nothing.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..data.folders import parse_concept_folder_name
from ..text.messages import Message, msg
from . import messages  # noqa: F401  (registers the sentences)
from .caption_edit import Caption, fold_candidates, read_captions
from .scan import ScanCache, find_duplicates, picture_files, scan_pictures

MIN_IMAGES = {"character": 15, "style": 30, "concept": 10}
MAX_IMAGES = {"character": 80, "style": 1000, "concept": 100}
TOKEN_LIMIT = 75
SHOWN = 12          # paths listed per finding


@dataclass
class Fix:
    kind: str                     # move_aside | rename_folder | add_trigger | fill_trigger | setting | fold
    label: Message                # the button's text
    paths: list[str] = field(default_factory=list)
    setting: dict = field(default_factory=dict)     # kind "setting": {field: value}


@dataclass
class Finding:
    key: str
    level: str                    # error | warning | info
    message: Message              # what, with the numbers
    advice: Message               # what to do
    paths: list[str] = field(default_factory=list)
    fix: Fix | None = None
    blocking: bool = False        # training would fail

    def text(self, language: str = "en") -> str:
        prefix = msg("check.blocking").format(language) if self.blocking else ""
        return prefix + self.message.format(language)


def finding(key: str, level: str, *, paths=(), fix: Fix | None = None, blocking: bool = False, **params) -> Finding:
    return Finding(key, level, msg(f"check.{key}", **params), msg(f"check.{key}.advice", **params), list(paths),
                   fix, blocking)


def goal_word(goal: str) -> Message:
    return msg(f"goal.{goal}") if goal in MIN_IMAGES else msg("goal.character")


def names(items, limit: int = 0) -> str:
    items = list(items)
    shown = items[: limit or SHOWN]
    return ", ".join(str(i) for i in shown) + (f", … (+{len(items) - len(shown)})" if len(items) > len(shown) else "")


@dataclass
class CheckSettings:
    resolution: int = 512
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    caption_extension: str = ".txt"
    goal: str = "character"
    trigger: str = ""
    token_limit: int = TOKEN_LIMIT


def estimate_tokens(text: str) -> int:
    """About the CLIP tokens of ``text`` (words split into pieces of ~5 letters, each punctuation mark one);
    pass the real tokenizer's count where it is at hand."""
    return sum(max(1, math.ceil(len(w) / 5)) if w[0].isalnum() else 1 for w in re.findall(r"\w+|[^\w\s]", text))


def _concept_folders(root: Path) -> tuple[list[Path], list[Finding]]:
    findings, concepts = [], []
    if not root.is_dir():
        return [], [finding("no_folder", "error", blocking=True, folder=str(root))]
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose, _ = picture_files(root)
    unnamed = [p for p in subfolders if parse_concept_folder_name(p.name) is None]
    concepts = [p for p in subfolders if parse_concept_folder_name(p.name) is not None]
    if unnamed:
        findings.append(finding("folder_prefix", "error" if not concepts else "warning", paths=map(str, unnamed),
                                fix=Fix("rename_folder", msg("fix.rename_folder"), [str(p) for p in unnamed]),
                                blocking=not concepts, count=len(unnamed), names=names(p.name for p in unnamed),
                                example=unnamed[0].name))
    if loose:
        findings.append(finding("loose_images", "warning", paths=map(str, loose), count=len(loose)))
    nested = [q for c in concepts for q in sorted(c.iterdir()) if q.is_dir() and not q.name.startswith(".")]
    if nested:
        findings.append(finding("nested", "warning", paths=map(str, nested), count=len(nested),
                                names=names(f"{q.parent.name}/{q.name}" for q in nested)))
    if not concepts and not unnamed:
        findings.append(finding("no_concepts", "error", blocking=True, folder=str(root)))
    return concepts, findings


def check_dataset(train_dir: str | os.PathLike, settings: CheckSettings | None = None,
                  cache_dir: str | os.PathLike | None = None, count_tokens: Callable[[str], int] | None = None,
                  progress: Callable[[int, int], None] | None = None, quick: bool = False) -> list[Finding]:
    """Every finding for the training folder ``train_dir`` (most serious first). ``quick`` decodes no picture
    (headers and byte hashes only; near duplicates and animation are not looked for): for Start."""
    s = settings or CheckSettings()
    root = Path(train_dir)
    concepts, findings = _concept_folders(root)
    if not concepts:
        return findings
    cache = ScanCache(cache_dir or root / ".lora_trainer_cache" / "scan")
    paths, unsupported = [], []
    for folder in concepts:
        images, odd = picture_files(folder)
        paths += images
        unsupported += odd
    pictures = scan_pictures(paths, cache, progress, decode=not quick)
    good = [p for p in pictures if p.ok]
    bad = [p for p in pictures if not p.ok]
    captions = read_captions(concepts, s.caption_extension)
    findings += _picture_findings(s, good, bad, unsupported)
    findings += _caption_findings(s, captions, count_tokens or estimate_tokens)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: (order[f.level], not f.blocking))


def _picture_findings(s: CheckSettings, good, bad, unsupported) -> list[Finding]:
    out = []
    low, high = MIN_IMAGES.get(s.goal, 15), MAX_IMAGES.get(s.goal, 100)
    if not good:
        out.append(finding("no_images", "error", blocking=True))
    elif len(good) < low:
        out.append(finding("few_images", "warning", count=len(good), goal=goal_word(s.goal), low=low))
    elif len(good) > high:
        out.append(finding("many_images", "info", count=len(good), goal=goal_word(s.goal), high=high))
    if bad:
        paths = [p.path for p in bad]
        out.append(finding("unreadable", "warning", paths=paths,
                           fix=Fix("move_aside", msg("fix.move_unreadable"), paths), count=len(bad), names=names(f"{Path(p.path).name} ({p.error})" for p in bad)))
    if unsupported:
        out.append(finding("unsupported", "warning", paths=map(str, unsupported), count=len(unsupported),
                           names=names(p.name for p in unsupported)))
    small = [p for p in good if p.width * p.height < s.resolution * s.resolution / 2]
    if small:
        out.append(finding("small", "warning", paths=[p.path for p in small], count=len(small), size=s.resolution,
                           names=names(f"{Path(p.path).name} {p.width}×{p.height}" for p in small)))
    animated = [p for p in good if p.animated]
    if animated:
        out.append(finding("animated", "info", paths=[p.path for p in animated], count=len(animated)))
    groups = find_duplicates(good)
    if groups:
        extra = [path for g in groups for path in g.paths[1:]]
        out.append(finding("duplicates", "warning", paths=extra,
                           fix=Fix("move_aside", msg("fix.move_duplicates"), extra), count=len(groups), names=names(" = ".join(Path(x).name for x in g.paths) for g in groups)))
    ratios = {round(p.width / p.height, 1) for p in good}
    if not s.enable_bucket and len(ratios) > 1:
        out.append(finding("mixed_ratios", "warning", count=len(ratios),
                           fix=Fix("setting", msg("fix.buckets_on"), setting={"enable_bucket": True})))
    if s.enable_bucket and s.min_bucket_reso > s.resolution:
        fixed = min(256, s.resolution)
        out.append(finding("min_bucket", "error", blocking=True, value=s.min_bucket_reso, size=s.resolution,
                           fixed=fixed, fix=Fix("setting", msg("fix.min_bucket", value=fixed),
                                                setting={"min_bucket_reso": fixed})))
    return out


def _caption_findings(s: CheckSettings, captions: list[Caption], count_tokens) -> list[Finding]:
    out = []
    unreadable = [c for c in captions if c.error]
    if unreadable:
        out.append(finding("caption_unreadable", "warning", paths=[c.path for c in unreadable], count=len(unreadable),
                           names=names(f"{Path(c.path).name} ({c.error})" for c in unreadable)))
    usable = [c for c in captions if not c.error]
    missing = [c for c in usable if not c.tags]
    if missing:
        paths = [c.image for c in missing]
        fix = Fix("fill_trigger", msg("fix.fill_trigger", trigger=s.trigger), paths) if s.trigger else None
        out.append(finding("no_caption", "warning", paths=paths, fix=fix, count=len(missing)))
    if s.trigger:
        without = [c.image for c in usable if c.tags and s.trigger.lower() not in (t.lower() for t in c.tags)]
        if without:
            out.append(finding("no_trigger", "warning", paths=without, count=len(without), trigger=s.trigger,
                               fix=Fix("add_trigger", msg("fix.add_trigger", trigger=s.trigger), without)))
    long = [(c, count_tokens(c.text)) for c in usable if c.text]
    long = [(c, n) for c, n in long if n > s.token_limit]
    if long:
        out.append(finding("long_captions", "warning", paths=[c.image for c, _ in long], count=len(long),
                           limit=s.token_limit, names=names(f"{Path(c.image).name} ({n})" for c, n in long)))
    tagged = [c for c in usable if c.tags]
    if len(tagged) >= 3:
        everywhere = [t for t, n in fold_candidates(tagged, s.trigger, 1.0)]
        if everywhere:
            out.append(finding("everywhere", "info", count=len(everywhere), names=names(everywhere),
                               fix=Fix("fold", msg("fix.fold"), everywhere)))
    return out
