"""The kohya folder layout: ``train_data_dir/<repeats>_<concept name>/`` holding images.

Scanning reads only image headers and caption files. Problems with single files become
warnings or ``skipped`` entries; only a folder set that cannot be used at all raises.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..text.messages import Joined, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .captions import normalize_extension, read_caption, split_tags, tag_frequency
from .images import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS, ImageLoadError, image_size, is_image_file

CACHE_DIR_NAME = ".lora_trainer_cache"  # latent cache folder; ignored by the scan like any hidden entry
_IGNORED_NAMES = {"__macosx", "thumbs.db", "desktop.ini", "@eadir", "$recycle.bin"}
_CONCEPT_RE = re.compile(r"^(\d+)_(.*)$", re.DOTALL)
_LIST_MAX = 5
_LAYOUT = msg("data.layout")


@dataclass(frozen=True)
class ImageEntry:
    path: Path
    caption: str
    caption_from_fallback: bool  # no (or empty) caption file: the concept name is used
    width: int  # as displayed (EXIF rotation applied)
    height: int


@dataclass(eq=False)  # identity equality/hash: items refer to their folder
class ConceptFolder:
    path: Path
    name: str
    repeats: int
    is_reg: bool
    images: list[ImageEntry] = field(default_factory=list)


@dataclass
class DatasetScan:
    concepts: list[ConceptFolder]
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    held_out: list[ImageEntry] = field(default_factory=list)  # training images kept for validation only

    @property
    def train_concepts(self) -> list[ConceptFolder]:
        return [c for c in self.concepts if not c.is_reg]

    @property
    def reg_concepts(self) -> list[ConceptFolder]:
        return [c for c in self.concepts if c.is_reg]

    @property
    def num_train_images(self) -> int:
        return sum(len(c.images) for c in self.train_concepts)

    @property
    def num_reg_images(self) -> int:
        return sum(len(c.images) for c in self.reg_concepts)

    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """kohya's ``ss_tag_frequency``: {"<N>_<concept>": {tag: count}} over training folders."""
        return {
            c.path.name: tag_frequency(img.caption for img in c.images) for c in self.train_concepts
        }


def parse_concept_folder_name(name: str) -> tuple[int, str] | None:
    """``"10_my char_v2"`` → ``(10, "my char_v2")``; None when the name does not fit."""
    match = _CONCEPT_RE.match(name)
    if not match:
        return None
    return int(match.group(1)), match.group(2)


def _is_ignored(path: Path) -> bool:
    name = path.name
    return name.startswith(".") or name.lower() in _IGNORED_NAMES or name == CACHE_DIR_NAME


def _names(paths: list[Path]) -> Any:
    shown = ", ".join(p.name for p in paths[:_LIST_MAX])
    return msg("data.names_more", shown=shown, count=len(paths) - _LIST_MAX) if len(paths) > _LIST_MAX else shown


def _list_dir(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DatasetError(msg("data.cannot_list", folder=folder, reason=exc.strerror or exc),
                           msg("data.cannot_list.advice")) from exc
    return sorted((p for p in entries if not _is_ignored(p)), key=lambda p: p.name)


def _safe_iter(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _is_unsupported_image(path: Path) -> bool:
    return path.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS


def _scan_concept(
    folder: Path, repeats: int, name: str, is_reg: bool, caption_extension: str,
    warnings: list[str], skipped: list[tuple[Path, str]],
) -> ConceptFolder | None:
    entries = _list_dir(folder)
    files = [p for p in entries if p.is_file()]
    image_paths = [p for p in files if is_image_file(p)]
    unsupported = [p for p in files if _is_unsupported_image(p)]
    nested = [p for p in entries if p.is_dir() and any(is_image_file(q) for q in _safe_iter(p))]

    if unsupported:
        warnings.append(sentence("data.unsupported", count=len(unsupported), folder=folder, names=_names(unsupported)))
    if nested:
        warnings.append(sentence("data.nested", folder=folder, names=_names(nested)))
    if not image_paths:
        warnings.append(sentence("data.no_images", folder=folder, extensions=", ".join(IMAGE_EXTENSIONS)))
        return None

    concept = ConceptFolder(path=folder, name=name, repeats=repeats, is_reg=is_reg)
    missing: list[Path] = []
    no_tags: list[Path] = []
    for path in image_paths:
        try:
            width, height = image_size(path)
        except ImageLoadError as exc:
            skipped.append((path, exc.reason))
            continue
        try:
            caption = read_caption(path, caption_extension)
        except DatasetError as exc:
            skipped.append((path, sentence("data.caption_skipped", message=exc.message, advice=exc.advice)))
            continue
        if caption and not split_tags(caption):   # only commas and spaces: no tag to train on
            no_tags.append(path)
            caption = ""
        fallback = not caption
        if fallback and path not in no_tags:
            missing.append(path)
        concept.images.append(ImageEntry(path, name if fallback else caption, fallback, width, height))

    if missing and not is_reg:  # class images without captions are the normal case for reg folders
        warnings.append(_missing_caption_warning(folder, name, missing, len(image_paths), caption_extension))
    if no_tags:
        warnings.append(sentence("data.only_commas", count=len(no_tags), folder=folder, names=_names(no_tags),
                                 name=name))
    return concept


def _missing_caption_warning(
    folder: Path, name: str, missing: list[Path], total: int, caption_extension: str
) -> str:
    ext = normalize_extension(caption_extension)
    others = sorted(
        {e for p in missing for e in (".txt", ".caption") if e != ext and p.with_name(p.stem + e).is_file()}
    )
    hint = msg("data.other_extension", others="/".join(others), first=others[0]) if others else ""
    return sentence("data.no_caption", count=len(missing), total=total, folder=folder, ext=ext,
                    names=_names(missing), name=name, hint=hint)


def _scan_root(
    root: Path, is_reg: bool, caption_extension: str,
    warnings: list[str], skipped: list[tuple[Path, str]],
) -> list[ConceptFolder]:
    setting = "reg_data_dir" if is_reg else "train_data_dir"
    example = root / ("1_person" if is_reg else "10_mychar")
    layout_advice = msg("data.layout.advice", setting=setting, layout=_LAYOUT, example=f"{example}{os.sep}")
    if not root.exists():
        raise DatasetError(msg("data.root_missing", setting=setting, root=root),
                           msg("data.check_path", advice=layout_advice))
    if not root.is_dir():
        raise DatasetError(msg("data.root_is_file", setting=setting, root=root), layout_advice)

    concepts: list[ConceptFolder] = []
    bad_names: list[Path] = []
    valid_folders = 0
    entries = _list_dir(root)
    for sub in (p for p in entries if p.is_dir()):
        parsed = parse_concept_folder_name(sub.name)
        if parsed is None or parsed[0] < 1 or not parsed[1].strip():
            bad_names.append(sub)
            why = msg("data.repeats_1") if parsed and parsed[0] < 1 else msg("data.expected", layout=_LAYOUT)
            warnings.append(sentence("data.bad_folder_name", folder=sub, why=why))
            continue
        valid_folders += 1
        concept = _scan_concept(sub, parsed[0], parsed[1], is_reg, caption_extension, warnings, skipped)
        if concept is not None:
            concepts.append(concept)

    loose = [p for p in entries if p.is_file() and is_image_file(p)]
    if valid_folders and loose:
        warnings.append(sentence("data.loose", count=len(loose), root=root, names=_names(loose),
                                 example=f"{example}{os.sep}"))
    if not valid_folders:
        _raise_no_concepts(root, setting, loose, bad_names, layout_advice)
    return concepts


def _raise_no_concepts(
    root: Path, setting: str, loose: list[Path], bad_names: list[Path], layout_advice: Any
) -> None:
    parsed = parse_concept_folder_name(root.name)
    if loose and parsed and parsed[0] >= 1:
        raise DatasetError(msg("data.is_concept", setting=setting, root=root),
                           msg("data.is_concept.advice", setting=setting, parent=root.parent, name=root.name))
    if loose:
        raise DatasetError(msg("data.images_in_root", setting=setting, root=root, count=len(loose), names=_names(loose)),
                           msg("data.images_in_root.advice", folder=f"{root / '10_mychar'}{os.sep}", setting=setting,
                               root=root))
    if bad_names:
        raise DatasetError(msg("data.no_concept_names", setting=setting, root=root, names=_names(bad_names),
                               layout=_LAYOUT),
                           msg("data.rename", name=bad_names[0].name))
    raise DatasetError(msg("data.no_concepts", setting=setting, root=root), layout_advice)


def _absolute(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def scan_dataset(
    train_data_dir: str | os.PathLike,
    reg_data_dir: str | os.PathLike | None = None,
    caption_extension: str = ".txt",
) -> DatasetScan:
    """Scan the training (and optional regularization) folders; sorted, deterministic."""
    warnings: list[str] = []
    skipped: list[tuple[Path, str]] = []
    train_root = _absolute(train_data_dir)
    concepts = _scan_root(train_root, False, caption_extension, warnings, skipped)
    reg_root = _absolute(reg_data_dir) if reg_data_dir not in (None, "") else None
    if reg_root is not None:
        concepts += _scan_root(reg_root, True, caption_extension, warnings, skipped)
    scan = DatasetScan(concepts, warnings, skipped)

    for root, count, setting in ((train_root, scan.num_train_images, "train_data_dir"),
                                 (reg_root, scan.num_reg_images, "reg_data_dir")):
        if root is not None and count == 0:
            unreadable = [(p, r) for p, r in skipped if root in p.parents]
            detail = Joined([msg("data.path_reason", path=p, reason=r) for p, r in unreadable[:3]], "; ")
            raise DatasetError(
                msg("data.no_usable_unreadable" if unreadable else "data.no_usable", setting=setting, root=root,
                    count=len(unreadable), detail=detail),
                msg("data.no_usable_reg.advice" if setting == "reg_data_dir" else "data.no_usable.advice",
                    extensions=", ".join(IMAGE_EXTENSIONS), folder=f"{root / '10_mychar'}{os.sep}"),
            )
    return scan
