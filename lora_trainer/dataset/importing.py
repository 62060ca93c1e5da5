"""Pictures brought into a project: a folder or uploaded files, duplicates shown first, the user's files only read.

``plan_import`` scans the source (cached: a second look decodes nothing) and says what an import would
do: the pictures, the unreadable ones with their reason, formats we do not read, and duplicate groups
(same bytes, or the same picture resized or recompressed) with all but the first marked to leave out.
``import_pictures`` copies the chosen pictures into ``originals/<trigger>/`` (kept unchanged) and
``img/<N>_<trigger>/`` (the training copy the other steps rewrite), with their caption files.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..config.allowed_folders import inside
from ..data.captions import caption_path, read_caption
from ..errors import DatasetError, TrainerError
from ..io.atomic import atomic_write, sync_folder
from ..text.messages import Message, msg
from . import messages  # noqa: F401  (registers the sentences)
from .project import Project, suggest_repeats
from .scan import DuplicateGroup, Picture, ScanCache, file_digest, find_duplicates, picture_files, scan_pictures


@dataclass
class ImportPlan:
    pictures: list[Picture]                       # readable ones
    unreadable: list[Picture] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    leave_out: set[str] = field(default_factory=set)   # paths the plan leaves out (duplicates after the first)
    names: dict[str, str] = field(default_factory=dict)   # path → the name it arrives under (uploads)

    @property
    def to_import(self) -> list[Picture]:
        return [p for p in self.pictures if p.path not in self.leave_out]

    def suggested_repeats(self, goal: str = "character") -> int:
        return suggest_repeats(len(self.to_import), goal)


@dataclass
class ImportResult:
    imported: list[str] = field(default_factory=list)     # file names now in the concept
    skipped: list[tuple[str, Message]] = field(default_factory=list)   # (source path, why)
    captions: int = 0
    caption_problems: list[tuple[str, str]] = field(default_factory=list)   # (source path, why not imported)
    stopped: bool = False



def plan_import(project: Project, source: str | os.PathLike | None = None,
                files: Sequence[tuple[str, str]] = (), recursive: bool = False,
                progress: Callable[[int, int], None] | None = None) -> ImportPlan:
    """What importing ``source`` (a folder) and/or ``files`` ((path, original name) of uploads) would do."""
    paths: list[Path] = []
    unsupported: list[Path] = []
    names: dict[str, str] = {}
    if source:
        folder = Path(source)
        if not folder.is_dir():
            raise DatasetError(msg("import.no_source", folder=folder), msg("import.no_source.advice"))
        if inside(folder, project.root) or inside(project.root, folder):
            raise DatasetError(msg("import.overlap", folder=folder, project=project.root), msg("import.overlap.advice"))
        paths, unsupported = picture_files(folder, recursive=recursive)
    for path, name in files:
        names[str(path)] = os.path.basename(name or path)
        paths.append(Path(path))
    pictures = scan_pictures(paths, ScanCache(project.work_dir / "scan"), progress)
    good = [p for p in pictures if p.ok]
    duplicates = find_duplicates(good)
    leave_out = {path for group in duplicates for path in group.paths[1:]}
    return ImportPlan(good, [p for p in pictures if not p.ok], unsupported, duplicates, leave_out, names)


def _free_name(folder: Path, name: str) -> str:
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 2
    while (folder / candidate).exists():
        candidate = f"{stem} ({n}){suffix}"
        n += 1
    return candidate


def _copy(src: Path, dst: Path) -> None:
    with atomic_write(dst, durable=False) as tmp:
        shutil.copyfile(src, tmp)


def import_pictures(project: Project, plan: ImportPlan, trigger: str, repeats: int | None = None,
                    class_word: str = "", goal: str = "character", caption_extension: str = ".txt",
                    leave_out: Iterable[str] | None = None,
                    progress: Callable[[int, int, str], None] | None = None,
                    should_stop: Callable[[], bool] = lambda: False) -> ImportResult:
    """Copy the plan's pictures (minus ``leave_out``, by default the duplicates) into the concept ``trigger``.

    A picture already in the concept (same bytes) is skipped; another picture of the same name gets
    ``name (2).png``. Caption files beside a source picture come along, rewritten as UTF-8."""
    skip = set(plan.leave_out if leave_out is None else leave_out)
    chosen = [p for p in plan.pictures if p.path not in skip]
    concept = project.add_concept(trigger, repeats or suggest_repeats(len(chosen), goal), class_word, goal)
    project.save()
    originals, training = project.originals_dir(concept), project.concept_dir(concept)
    present = {file_digest(p) for p in originals.iterdir() if p.is_file()}
    result = ImportResult(skipped=[(p, msg("import.skip.duplicate"))
                                   for p in sorted(skip & {q.path for q in plan.pictures})])
    for index, picture in enumerate(chosen):
        if should_stop():
            result.stopped = True
            break
        src = Path(picture.path)
        if progress is not None:
            progress(index, len(chosen), src.name)
        if picture.digest in present:
            result.skipped.append((picture.path, msg("import.skip.present")))
            continue
        name = _free_name(originals, plan.names.get(picture.path, src.name))
        try:
            _copy(src, originals / name)
            _copy(src, training / name)
        except OSError as err:
            raise DatasetError(msg("import.cannot_copy", name=name, folder=training, why=str(err.strerror or err)),
                               msg("dataset.writable.advice")) from None
        try:
            caption = read_caption(src, caption_extension)
        except TrainerError as err:   # the picture came; its caption did not
            result.caption_problems.append((picture.path, err.message))
            caption = None
        if caption:
            with atomic_write(caption_path(training / name, caption_extension), durable=False) as tmp:
                tmp.write_text(caption, encoding="utf-8")
            result.captions += 1
        present.add(picture.digest)
        result.imported.append(name)
    sync_folder(originals)
    sync_folder(training)
    if progress is not None:
        progress(len(chosen), len(chosen), "")
    return result
