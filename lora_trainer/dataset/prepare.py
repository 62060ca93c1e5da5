"""``img/`` made from ``originals/``: each picture cropped and resized to its output size, saved as PNG under its
own name stem (so its caption file still belongs to it), atomically.

The originals are only read. Each prepared PNG carries its source's name and a recipe (the original's size and
time, the output size, the crop box, the background colour when it matters) in a text chunk, so running again
redoes only pictures whose original or settings changed, and removes prepared pictures whose original is gone.
A copy of the original that an import left in ``img/`` under the same stem (``a.jpg`` beside the new ``a.png``)
is removed once the PNG is written; anything else in ``img/`` that is not a prepared picture is never
overwritten without ``force``. A picture that fails is listed with the reason and the fix; the batch goes on.
Reasons, advice, notes and the summary are ``Message``s or come in a chosen language (English by default).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image, PngImagePlugin

from ..data.images import IMAGE_EXTENSIONS, ImageLoadError
from ..errors import DatasetError
from ..io.atomic import atomic_write
from ..text.messages import Message, msg
from .crop import draw_crop, fit_size, render, small_view
from .messages import joined, said, sentences
from .plan import PlannedPicture, PreparePlan, PrepareSettings, plan_preparation
from .recipe import MARK, FactsCache, read_mark
from .project import Project
from .scan import file_digest


class _Refused(Exception):
    """One picture's problem found while preparing it, in words for the report."""

    def __init__(self, reason: Message, advice: Message) -> None:
        super().__init__(str(reason))
        self.reason, self.advice = reason, advice


@dataclass
class PrepareFailure:
    path: str
    reason: Message | str
    advice: Message | str

    def __str__(self) -> str:
        return self.in_language("en")

    def in_language(self, language: str | None) -> str:
        what = msg("dataset.named", name=self.path, text=self.reason)
        return (msg("error.what_to_do", message=what, advice=self.advice) if self.advice else what).format(language)


@dataclass
class PrepareReport:
    plan: PreparePlan
    written: list[str] = field(default_factory=list)     # prepared now
    kept: list[str] = field(default_factory=list)        # already up to date
    removed: list[str] = field(default_factory=list)     # prepared pictures whose original is gone, import copies
    failed: list[PrepareFailure] = field(default_factory=list)
    notes: list[Message] = field(default_factory=list)   # "<file>: enlarged ×1.60 …" for what was written
    stopped: bool = False

    @property
    def histogram(self) -> dict:
        return self.plan.histogram

    @property
    def warnings(self) -> list[Message]:
        return self.plan.warnings

    def as_dict(self, language: str = "en") -> dict:
        """JSON-ready (the HTTP API), the sentences in ``language``."""
        return {"summary": self.summary(language), "written": self.written, "kept": self.kept,
                "removed": self.removed, "stopped": self.stopped, "histogram": self.plan.histogram_rows(),
                "failed": [{"path": f.path, "reason": said(f.reason, language), "advice": said(f.advice, language)}
                           for f in self.failed],
                "notes": [said(n, language) for n in self.notes],
                "warnings": [said(w, language) for w in self.warnings]}

    def summary(self, language: str = "en") -> str:
        parts = [msg("prepare.summary.kept", count=len(self.kept))] if self.kept else []
        if self.removed:
            parts.append(msg("prepare.summary.removed", count=len(self.removed)))
        if self.failed:
            parts.append(msg("prepare.summary.failed", count=len(self.failed)))
        count, folder = len(self.written), str(self.plan.project.img_dir)
        head = msg("prepare.summary.details", count=count, folder=folder, details=joined(parts)) if parts else \
            msg("prepare.summary", count=count, folder=folder)
        return sentences([head, msg("prepare.summary.stopped") if self.stopped else ""], language)


def _check_writable(folder: Path) -> None:
    """``DatasetError`` naming ``folder`` when a file cannot be created in it (before anything is written)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise DatasetError(msg("prepare.cannot_write_folder", folder=folder, why=str(err.strerror or err)),
                           msg("prepare.cannot_write_folder.advice")) from None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and file_digest(a) == file_digest(b)
    except OSError:
        return False


def _stems(folder: Path) -> dict[str, list[Path]]:
    """Image files of ``folder`` by name stem."""
    out: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
                out.setdefault(path.stem, []).append(path)
    return out


def _write_png(image: Image.Image, target: Path, picture: PlannedPicture) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(MARK, json.dumps({"source": os.path.basename(picture.source), "recipe": picture.recipe}))
    with atomic_write(target) as tmp:
        image.save(tmp, "PNG", pnginfo=info, compress_level=6)


def _copy_caption(picture: PlannedPicture, caption_extension: str) -> None:
    """The caption beside the original, copied when ``img/`` has none for this stem yet."""
    source = Path(picture.source)
    found = source.with_name(source.stem + caption_extension)
    target = Path(picture.target).with_name(Path(picture.target).stem + caption_extension)
    if found.is_file() and not target.exists():
        with atomic_write(target) as tmp:
            shutil.copyfile(found, tmp)


def _prepare_one(picture: PlannedPicture, settings: PrepareSettings, others: list[Path], force: bool,
                 caption_extension: str, facts: FactsCache, report: PrepareReport) -> None:
    source, target = Path(picture.source), Path(picture.target)
    name = target.parent.name + "/" + target.name
    copies = []
    for other in others:
        if other == target:
            continue
        if not _same(other, source):
            raise _Refused(msg("prepare.other_picture", other=str(other), stem=target.stem, name=target.name),
                           msg("prepare.other_picture.advice"))
        copies.append(other)
    if target.exists() and not force and read_mark(target) is None and not _same(target, source):
        raise _Refused(msg("prepare.not_ours", name=name), msg("prepare.not_ours.advice"))
    image, decoded = render(source, picture.header, picture.box, picture.output, settings.background_rgb)
    if picture.header.has_alpha:
        facts.put(picture.key, source.stat(), transparent=decoded.fully_transparent)
        if decoded.fully_transparent:
            raise _Refused(msg("plan.transparent"), msg("plan.transparent.advice"))
    _write_png(image, target, picture)
    for copy in copies:
        copy.unlink()
        report.removed.append(str(copy))
    _copy_caption(picture, caption_extension)
    report.written.append(picture.target)
    report.notes += [msg("dataset.named", name=name, text=note) for note in picture.notes]


def _failure(picture: PlannedPicture, err: BaseException) -> PrepareFailure:
    if isinstance(err, _Refused):
        return PrepareFailure(picture.source, err.reason, err.advice)
    if isinstance(err, ImageLoadError):
        return PrepareFailure(picture.source, err.reason, err.advice)
    if isinstance(err, DatasetError):
        return PrepareFailure(picture.source, err.message, err.advice)
    if isinstance(err, OSError):
        advice = msg("prepare.disk_full.advice" if err.errno == errno.ENOSPC else "prepare.write.advice")
        return PrepareFailure(picture.source, msg("prepare.cannot_write", target=picture.target,
                                                  why=str(err.strerror or err)), advice)
    if isinstance(err, MemoryError):
        return PrepareFailure(picture.source, msg("prepare.no_memory"), msg("prepare.no_memory.advice"))
    return PrepareFailure(picture.source, msg("prepare.unexpected", error=f"{type(err).__name__}: {err}"),
                          msg("prepare.unexpected.advice"))


def prepare_project(project: Project, settings: PrepareSettings | None = None, concepts: list[str] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None, force: bool = False,
                    caption_extension: str = ".txt") -> PrepareReport:
    """Crop and resize the project's originals into ``img/``; see the module text. ``force`` redoes every
    picture and overwrites files in ``img/`` that Prepare did not make. ``DatasetError`` only for settings or a
    folder that cannot be written; each picture's own problem goes into the report."""
    plan = plan_preparation(project, settings, concepts, check_transparency=False)
    settings = plan.settings
    chosen = [project.concept(t) for t in concepts] if concepts else list(project.concepts)
    for concept in chosen:
        _check_writable(project.concept_dir(concept))
    report = PrepareReport(plan)
    facts = FactsCache(project)
    stems = {c.trigger: _stems(project.concept_dir(c)) for c in chosen}
    total = len(plan.pictures)
    for index, picture in enumerate(plan.pictures):
        if should_stop is not None and should_stop():
            report.stopped = True
            break
        if not picture.ok:
            report.failed.append(PrepareFailure(picture.source, picture.error, picture.advice))
        elif picture.up_to_date and not force:
            report.kept.append(picture.target)
        else:
            try:
                others = stems[picture.trigger].get(Path(picture.target).stem, [])
                _prepare_one(picture, settings, others, force, caption_extension, facts, report)
            except Exception as err:   # one picture's problem never ends the batch
                report.failed.append(_failure(picture, err))
        if progress is not None:
            progress(index + 1, total)
    if not report.stopped:
        for path in plan.stale:
            try:
                os.remove(path)
                report.removed.append(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                report.failed.append(PrepareFailure(path, msg("prepare.cannot_remove", why=str(err.strerror or err)),
                                                    msg("prepare.write.advice")))
    facts.save()
    return report


# --- previews for the UI -----------------------------------------------------------------------------------
def _usable(plan: PreparePlan, picture: PlannedPicture | str) -> PlannedPicture:
    picture = plan.picture(picture) if isinstance(picture, str) else picture
    if not picture.ok:
        raise DatasetError(msg("dataset.named", name=picture.source, text=picture.error), picture.advice)
    return picture


def preview_image(plan: PreparePlan, picture: PlannedPicture | str, max_side: int = 256) -> Image.Image:
    """What the picture becomes, at most ``max_side`` px a side (made the same way, only smaller)."""
    picture = _usable(plan, picture)
    size = fit_size(picture.output, max_side)
    return render(picture.source, picture.header, picture.box, size, plan.settings.background_rgb)[0]


def crop_view(plan: PreparePlan, picture: PlannedPicture | str, max_side: int = 384) -> Image.Image:
    """The whole original, at most ``max_side`` px a side, the part cut off dimmed, the crop box outlined and
    the focal point marked. A click at (x, y) on it is the focal point (x / width, y / height)."""
    picture = _usable(plan, picture)
    view = small_view(picture.source, picture.header, max_side, plan.settings.background_rgb)
    return draw_crop(view.image, picture.box, view.reduction, picture.focal)
