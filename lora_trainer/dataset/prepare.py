"""``img/`` made from ``originals/``: each picture cropped and resized to its output size, saved as PNG under its
own name stem (so its caption file still belongs to it), atomically.

The originals are only read. Each prepared PNG carries its source's name and a recipe (the original's size and
time, the output size, the crop box, the background colour when it matters) in a text chunk, so running again
redoes only pictures whose original or settings changed, and removes prepared pictures whose original is gone.
A copy of the original that an import left in ``img/`` under the same stem (``a.jpg`` beside the new ``a.png``)
is removed once the PNG is written; anything else in ``img/`` that is not a prepared picture is never
overwritten without ``force``. A picture that fails is listed with the reason and the fix; the batch goes on.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image, PngImagePlugin

from ..data.images import IMAGE_EXTENSIONS, ImageLoadError
from ..errors import DatasetError
from ..io.atomic import atomic_write
from .crop import draw_crop, fit_size, render, small_view
from .plan import PlannedPicture, PreparePlan, PrepareSettings, plan_preparation
from .recipe import MARK, FactsCache, read_mark
from .project import Project
from .scan import file_digest

_ADVICE_WRITE = "check that the drive is not full or read-only and that you may write to the project folder"


@dataclass
class PrepareFailure:
    path: str
    reason: str
    advice: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" + (f"\n  What to do: {self.advice}" if self.advice else "")


@dataclass
class PrepareReport:
    plan: PreparePlan
    written: list[str] = field(default_factory=list)     # prepared now
    kept: list[str] = field(default_factory=list)        # already up to date
    removed: list[str] = field(default_factory=list)     # prepared pictures whose original is gone, import copies
    failed: list[PrepareFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)       # "<file>: enlarged ×1.60 …" for what was written
    stopped: bool = False

    @property
    def histogram(self) -> dict:
        return self.plan.histogram

    @property
    def warnings(self) -> list[str]:
        return self.plan.warnings

    def as_dict(self) -> dict:
        """JSON-ready (the HTTP API)."""
        return {"summary": self.summary(), "written": self.written, "kept": self.kept, "removed": self.removed,
                "failed": [asdict(f) for f in self.failed], "notes": self.notes, "warnings": self.warnings,
                "stopped": self.stopped, "histogram": self.plan.histogram_rows()}

    def summary(self) -> str:
        parts = [f"{len(self.kept)} already up to date"] if self.kept else []
        if self.removed:
            parts.append(f"{len(self.removed)} removed")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        text = f"Prepared {len(self.written)} picture(s) in {self.plan.project.img_dir}"
        text += f" ({', '.join(parts)})" if parts else ""
        return text + (". Stopped before the end: run it again to finish." if self.stopped else ".")


def _check_writable(folder: Path) -> None:
    """``DatasetError`` naming ``folder`` when a file cannot be created in it (before anything is written)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise DatasetError(f"cannot write to the folder {folder}: {err.strerror or err}",
                           "make the folder writable (its permissions, or a drive that is not read-only or full), "
                           "or put the project in another folder") from None


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
            raise DatasetError(f"{other} is another picture named '{target.stem}'; training would use it beside "
                               f"the prepared {target.name}",
                               "move it out of the folder, or rename it if it is a picture of its own")
        copies.append(other)
    if target.exists() and not force and read_mark(target) is None and not _same(target, source):
        raise DatasetError(f"{name} was not made by Prepare (put there or edited by hand); preparing would "
                           "overwrite it",
                           "move it out of the folder (edit the picture in originals/ instead), or prepare with "
                           "'overwrite' to replace it")
    image, decoded = render(source, picture.header, picture.box, picture.output, settings.background_rgb)
    if picture.header.has_alpha:
        facts.put(picture.key, source.stat(), transparent=decoded.fully_transparent)
        if decoded.fully_transparent:
            raise DatasetError("it is fully transparent: every pixel is invisible, it would train a blank picture",
                               "export it again with its alpha channel (or without transparency), or remove it")
    _write_png(image, target, picture)
    for copy in copies:
        copy.unlink()
        report.removed.append(str(copy))
    _copy_caption(picture, caption_extension)
    report.written.append(picture.target)
    report.notes += [f"{name}: {note}" for note in picture.notes]


def _failure(picture: PlannedPicture, err: BaseException) -> PrepareFailure:
    if isinstance(err, ImageLoadError):
        return PrepareFailure(picture.source, err.reason, err.advice)
    if isinstance(err, DatasetError):
        return PrepareFailure(picture.source, err.message, err.advice)
    if isinstance(err, OSError):
        advice = "free some space on the drive, then prepare again" if err.errno == errno.ENOSPC else _ADVICE_WRITE
        return PrepareFailure(picture.source, f"cannot write {picture.target}: {err.strerror or err}", advice)
    if isinstance(err, MemoryError):
        return PrepareFailure(picture.source, "there is not enough memory to prepare it",
                              "shrink it in an image editor, or close other programs and prepare again")
    return PrepareFailure(picture.source, f"unexpected error ({type(err).__name__}: {err})",
                          "prepare again; if it repeats, report it with this picture")


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
                report.failed.append(PrepareFailure(path, f"cannot remove it: {err.strerror or err}", _ADVICE_WRITE))
    facts.save()
    return report


# --- previews for the UI -----------------------------------------------------------------------------------
def _usable(plan: PreparePlan, picture: PlannedPicture | str) -> PlannedPicture:
    picture = plan.picture(picture) if isinstance(picture, str) else picture
    if not picture.ok:
        raise DatasetError(f"{picture.source}: {picture.error}", picture.advice)
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
