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
from .caption_edit import Caption, fold_candidates, read_captions
from .scan import ScanCache, find_duplicates, picture_files, scan_pictures

MIN_IMAGES = {"character": 15, "style": 30, "concept": 10}
MAX_IMAGES = {"character": 80, "style": 1000, "concept": 100}
TOKEN_LIMIT = 75
SHOWN = 12          # paths listed per finding


@dataclass
class Fix:
    kind: str                     # move_aside | rename_folder | add_trigger | fill_trigger | setting | fold
    label: str                    # the button's text
    paths: list[str] = field(default_factory=list)
    setting: dict = field(default_factory=dict)     # kind "setting": {field: value}


@dataclass
class Finding:
    key: str
    level: str                    # error | warning | info
    message: str                  # what, with the numbers
    advice: str                   # what to do
    paths: list[str] = field(default_factory=list)
    fix: Fix | None = None
    blocking: bool = False        # training would fail


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
        return [], [Finding("no_folder", "error", f"the training folder {root} does not exist",
                            "choose the folder that holds the <repeats>_<name> concept folders", blocking=True)]
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose, _ = picture_files(root)
    unnamed = [p for p in subfolders if parse_concept_folder_name(p.name) is None]
    concepts = [p for p in subfolders if parse_concept_folder_name(p.name) is not None]
    if unnamed:
        findings.append(Finding(
            "folder_prefix", "error" if not concepts else "warning",
            f"{len(unnamed)} folder(s) lack the repeats prefix and are not trained: "
            + ", ".join(p.name for p in unnamed[:SHOWN]),
            "name each concept folder <repeats>_<name>, e.g. 10_" + unnamed[0].name,
            [str(p) for p in unnamed], Fix("rename_folder", "Name them 10_<name>", [str(p) for p in unnamed]),
            blocking=not concepts))
    if loose:
        findings.append(Finding(
            "loose_images", "warning", f"{len(loose)} picture(s) lie directly in the training folder and are not "
            "trained", "move them into a <repeats>_<name> folder", [str(p) for p in loose]))
    nested = [q for c in concepts for q in sorted(c.iterdir()) if q.is_dir() and not q.name.startswith(".")]
    if nested:
        findings.append(Finding(
            "nested", "warning", f"{len(nested)} folder(s) inside concept folders are not read: "
            + ", ".join(f"{q.parent.name}/{q.name}" for q in nested[:SHOWN]),
            "move their pictures up into the concept folder, or make them concept folders of their own",
            [str(q) for q in nested]))
    if not concepts and not unnamed:
        findings.append(Finding("no_concepts", "error", f"{root} holds no concept folder",
                                "put the pictures into a folder named <repeats>_<name>, e.g. 10_mychar",
                                blocking=True))
    return concepts, findings


def check_dataset(train_dir: str | os.PathLike, settings: CheckSettings | None = None,
                  cache_dir: str | os.PathLike | None = None, count_tokens: Callable[[str], int] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[Finding]:
    """Every finding for the training folder ``train_dir`` (most serious first)."""
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
    pictures = scan_pictures(paths, cache, progress)
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
        out.append(Finding("no_images", "error", "the concept folders hold no usable picture",
                           "add PNG, JPEG, WebP or BMP pictures", blocking=True))
    elif len(good) < low:
        out.append(Finding("few_images", "warning", f"{len(good)} pictures for a {s.goal}; the tutorials use at "
                           f"least {low}", "add pictures (different angles, expressions, light), or train fewer epochs"))
    elif len(good) > high:
        out.append(Finding("many_images", "info", f"{len(good)} pictures for a {s.goal}; more than {high} often "
                           "over-fit or dilute it", "keep the best pictures, or lower the repeats"))
    if bad:
        out.append(Finding("unreadable", "warning", f"{len(bad)} picture(s) cannot be read and are skipped: "
                           + "; ".join(f"{Path(p.path).name} ({p.error})" for p in bad[:SHOWN]),
                           "save them again as PNG or JPEG, or remove them", [p.path for p in bad],
                           Fix("move_aside", "Move them out of the dataset", [p.path for p in bad])))
    if unsupported:
        out.append(Finding("unsupported", "warning", f"{len(unsupported)} file(s) in a format that is not read: "
                           + ", ".join(p.name for p in unsupported[:SHOWN]), "save them as PNG or JPEG",
                           [str(p) for p in unsupported]))
    small = [p for p in good if p.width * p.height < s.resolution * s.resolution / 2]
    if small:
        out.append(Finding("small", "warning", f"{len(small)} picture(s) are much smaller than {s.resolution}×"
                           f"{s.resolution} and get enlarged (blurry): "
                           + ", ".join(f"{Path(p.path).name} {p.width}×{p.height}" for p in small[:SHOWN]),
                           "replace them with larger pictures, or train at a lower resolution",
                           [p.path for p in small]))
    animated = [p for p in good if p.animated]
    if animated:
        out.append(Finding("animated", "info", f"{len(animated)} animated picture(s): only the first frame is "
                           "trained", "save the frame you want as PNG", [p.path for p in animated]))
    groups = find_duplicates(good)
    if groups:
        extra = [path for g in groups for path in g.paths[1:]]
        out.append(Finding("duplicates", "warning", f"{len(groups)} group(s) of duplicates ("
                           + ", ".join(" = ".join(Path(x).name for x in g.paths) for g in groups[:SHOWN]) + ")",
                           "keep one picture of each group: duplicates weigh that picture more",
                           extra, Fix("move_aside", "Move the duplicates out", extra)))
    ratios = {round(p.width / p.height, 1) for p in good}
    if not s.enable_bucket and len(ratios) > 1:
        out.append(Finding("mixed_ratios", "warning", f"pictures of {len(ratios)} aspect ratios are cropped to "
                           "squares because buckets are off", "turn aspect-ratio buckets on",
                           fix=Fix("setting", "Turn buckets on", setting={"enable_bucket": True})))
    if s.enable_bucket and s.min_bucket_reso > s.resolution:
        out.append(Finding("min_bucket", "error", f"min_bucket_reso {s.min_bucket_reso} is above the resolution "
                           f"{s.resolution}", f"set min_bucket_reso to {min(256, s.resolution)}",
                           fix=Fix("setting", f"Set it to {min(256, s.resolution)}",
                                   setting={"min_bucket_reso": min(256, s.resolution)}), blocking=True))
    return out


def _caption_findings(s: CheckSettings, captions: list[Caption], count_tokens) -> list[Finding]:
    out = []
    unreadable = [c for c in captions if c.error]
    if unreadable:
        out.append(Finding("caption_unreadable", "warning", f"{len(unreadable)} caption file(s) cannot be read: "
                           + "; ".join(f"{Path(c.path).name} ({c.error})" for c in unreadable[:SHOWN]),
                           "open them in a text editor and save them as UTF-8", [c.path for c in unreadable]))
    usable = [c for c in captions if not c.error]
    missing = [c for c in usable if not c.tags]
    if missing:
        fix = Fix("fill_trigger", f"Caption them '{s.trigger}'", [c.image for c in missing]) if s.trigger else None
        out.append(Finding("no_caption", "warning", f"{len(missing)} picture(s) have no caption or an empty one "
                           "(they train with the folder's name)", "tag them (Tagging), or give them the trigger word",
                           [c.image for c in missing], fix))
    if s.trigger:
        without = [c for c in usable if c.tags and s.trigger.lower() not in (t.lower() for t in c.tags)]
        if without:
            out.append(Finding("no_trigger", "warning", f"{len(without)} caption(s) lack the trigger word "
                               f"'{s.trigger}'", "put the trigger word first in every caption",
                               [c.image for c in without],
                               Fix("add_trigger", f"Put '{s.trigger}' first", [c.image for c in without])))
    long = [(c, count_tokens(c.text)) for c in usable if c.text]
    long = [(c, n) for c, n in long if n > s.token_limit]
    if long:
        out.append(Finding("long_captions", "warning", f"{len(long)} caption(s) are longer than the {s.token_limit} "
                           "tokens the text encoder reads; the rest is cut: "
                           + ", ".join(f"{Path(c.image).name} ({n})" for c, n in long[:SHOWN]),
                           "remove tags that say little, or fold traits into the trigger word",
                           [c.image for c, _ in long]))
    if len([c for c in usable if c.tags]) >= 3:
        everywhere = [t for t, n in fold_candidates([c for c in usable if c.tags], s.trigger, 1.0)]
        if everywhere:
            out.append(Finding("everywhere", "info", f"{len(everywhere)} tag(s) are on every picture: "
                               + ", ".join(everywhere[:SHOWN]), "fold the character's traits into the trigger word "
                               "(they are then learnt as part of it), or remove tags that describe nothing",
                               fix=Fix("fold", "Fold into the trigger word", everywhere)))
    return out
