"""Auto-tagging as the Dataset tab, the CLI and the HTTP API use it: which taggers there are, one picture
tagged for a preview, and a whole folder tagged into its captions.

A folder run goes picture by picture: a picture that cannot be read, or that the tagger fails on, is listed
in the report with the reason and the run goes on; a stop request ends it between two pictures. Each
caption is written atomically, UTF-8 without BOM, one line: an interrupted run leaves every caption either
as it was or complete, and a caption that cannot be read, or that another tab saves meanwhile, is left
alone. In a project's concept folder (``<project>/img/<N>_<trigger>/``) the concept's trigger word is the
caption's first tag. Given the caption editor's ``EditHistory``, a run becomes one entry its undo reverts.
The report's reasons are ``Message``s (or an error's English text) and its summary comes in a chosen language.
"""
from __future__ import annotations

import codecs
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image

from ..data.captions import caption_path, split_tags
from ..data.folders import parse_concept_folder_name
from ..data.images import IMAGE_EXTENSIONS, ImageLoadError, load_image
from ..errors import DatasetError, TrainerError
from ..io.atomic import atomic_write
from ..text.messages import Message, msg, sentence
from . import messages_tagging  # noqa: F401  (registers the sentences)
from .caption_edit import Change, EditHistory
from .messages import joined, said, sentences
from .project import PROJECT_FILE, Project
from .scan import picture_files
from .tagging import TagOptions, Tagger, TagScores, clean_tags, merge_caption
from .wd14 import INSTALL_ADVICE, WD14Tagger, onnxruntime_available
from .wd14_models import find_models

Progress = Callable[[int, int, str], None]       # (pictures done, pictures in all, the picture now)
_WD14_CACHE: dict[str, WD14Tagger] = {}
_CACHE_LOCK = threading.Lock()


# --- which taggers ---------------------------------------------------------------------------------
def wd14_tagger(folder) -> WD14Tagger:
    """The tagger of a WD14 model folder, one per folder for the process (its session is loaded once)."""
    key = os.path.normcase(os.path.realpath(folder))
    with _CACHE_LOCK:
        tagger = _WD14_CACHE.get(key)
        if tagger is None:
            tagger = _WD14_CACHE[key] = WD14Tagger(folder)
        return tagger


def release_taggers() -> None:
    """Free the loaded WD14 sessions (memory for training); they load again when used."""
    with _CACHE_LOCK:
        for tagger in _WD14_CACHE.values():
            tagger.close()


def available_taggers(host: Iterable[Tagger] = (), model_folders: Iterable = ()) -> list[Tagger]:
    """The host's taggers as given (``tagging.host_taggers(host.interrogators(), host.interrogate)``), then
    one WD14 tagger per model folder found in ``model_folders`` when onnxruntime is installed."""
    taggers = list(host)
    if onnxruntime_available():
        taggers += [wd14_tagger(folder) for folder in find_models(*model_folders)]
    return taggers


def wd14_status(model_folders: Iterable = ()) -> str:
    """Why the WD14 tagger cannot be used now, in a sentence ("" when it can)."""
    if not onnxruntime_available():
        return sentence("tag.no_runtime", advice=INSTALL_ADVICE)
    folders = [str(f) for f in model_folders if f]
    if not find_models(*folders):
        return sentence("tag.no_model", where=joined(folders, "list.or") or msg("tag.models_folder"))
    return ""


def find_tagger(name: str, taggers: Iterable[Tagger]) -> Tagger:
    """The tagger called ``name`` (its name or label, any case), or a WD14 model folder's path."""
    taggers = list(taggers)
    wanted = str(name or "").strip()
    for tagger in taggers:
        if wanted.lower() in (tagger.name.lower(), tagger.label.lower()):
            return tagger
    if wanted and Path(wanted).is_dir():
        return wd14_tagger(wanted)
    raise DatasetError(msg("tag.no_tagger", name=wanted),
                       msg("dataset.choose_one", names=joined([t.label for t in taggers]) or msg("tag.no_tagger.none")))


# --- captions --------------------------------------------------------------------------------------
def read_caption_text(path: Path) -> str | None:
    """A caption file's whole text, or None when there is none. UTF-8 (with or without BOM) and BOM-marked
    UTF-16 are read; other bytes give a ``DatasetError`` (such a file is never overwritten)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DatasetError(msg("tag.caption_unreadable", path=path, why=str(err.strerror or err)),
                           msg("tag.caption_unreadable.advice")) from None
    encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise DatasetError(msg("tag.caption_not_utf8", path=path, position=err.start),
                           msg("tag.caption_not_utf8.advice")) from None


def caption_tags_text(text: str | None) -> str | None:
    """The tags of a caption file's text as one line: every non-blank line, so appending loses none."""
    if text is None:
        return None
    return ", ".join(tag for line in text.splitlines() for tag in split_tags(line))


def read_existing_caption(path: Path) -> str | None:
    """A caption file's tags as one line (see ``caption_tags_text``), or None when there is none."""
    return caption_tags_text(read_caption_text(path))


def write_caption(path: Path, caption: str) -> None:
    """One line, UTF-8 without BOM, atomically (the old caption or the new one, never half of one)."""
    line = " ".join(caption.split())
    with atomic_write(path) as tmp:
        tmp.write_bytes((line + "\n").encode("utf-8"))


def concept_trigger(folder) -> str:
    """The trigger word of a project's concept folder ``<project>/img/<N>_<trigger>/``; "" for any other."""
    folder = Path(folder)
    parsed = parse_concept_folder_name(folder.name)
    root = folder.parent.parent
    if parsed is None or folder.parent.name != "img" or not (root / PROJECT_FILE).is_file():
        return ""
    try:
        project = Project.open(root)
    except DatasetError:
        return parsed[1]
    for concept in project.concepts:
        if concept.folder_name == folder.name:
            return concept.trigger
    return parsed[1]


# --- one picture -----------------------------------------------------------------------------------
@dataclass
class TagPreview:
    tags: TagScores                  # caption tags with their confidence, as they would be added
    caption: str | None              # the caption that would be written; None: left as it is (skip)
    existing: str | None = None      # the caption now (None: no caption file)
    path: str = ""

    def as_dict(self) -> dict:
        return {"path": self.path, "tags": [list(t) for t in self.tags], "caption": self.caption,
                "existing": self.existing}


def tag_image(image, tagger: Tagger, options: TagOptions | None = None, *, existing: str | None = None) -> TagPreview:
    """Tag one picture without writing anything: a path (its caption file read, the trigger of its concept
    folder used) or a PIL image (``existing`` given by the caller)."""
    options = (options or TagOptions()).checked()
    load = getattr(tagger, "load", None)
    if callable(load):
        load()                                    # a tagger that cannot start says so once
    path = ""
    trigger = options.trigger or ""
    if not isinstance(image, Image.Image):
        path = str(image)
        if existing is None:
            existing = read_existing_caption(caption_path(path, options.caption_extension))
        if options.trigger is None:
            trigger = concept_trigger(Path(path).parent)
        image = _load(Path(path))
    tags = clean_tags(_run_tagger(tagger, image, options, path or msg("tag.the_picture")), options)
    caption = merge_caption(existing, [t for t, _ in tags], options.existing, trigger)
    return TagPreview(tags, caption, existing, path)


def _load(path: Path) -> Image.Image:
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(path, sentence("data.empty_file"))
    except OSError as err:
        raise ImageLoadError(path, sentence("tag.picture_unreadable", why=str(err.strerror or err))) from None
    try:
        return load_image(path)
    except ImageLoadError:
        raise
    except Exception as err:  # Pillow meets odd files with odd errors (struct.error, EOFError, MemoryError …)
        raise ImageLoadError(path, sentence("tag.picture_corrupt", error=f"{type(err).__name__}: {err}")) from None


def _run_tagger(tagger: Tagger, image: Image.Image, options: TagOptions, what: str | Message) -> TagScores:
    try:
        return list(tagger.tag(image, options))
    except TrainerError:
        raise
    except Exception as err:  # a tagger is outside code (a model, the WebUI): its error becomes ours
        raise DatasetError(msg("tag.tagger_failed", tagger=tagger.label, what=what,
                               error=f"{type(err).__name__}: {err}"), msg("tag.tagger_failed.advice")) from None


# --- a folder --------------------------------------------------------------------------------------
@dataclass
class TagFailure:
    path: str                     # the picture (or its caption file's picture)
    reason: Message | str         # what went wrong
    advice: Message | str = ""    # how to fix it


@dataclass
class TagReport:
    folder: str
    tagger: str
    total: int = 0                                                 # pictures in the folder
    written: list[str] = field(default_factory=list)               # captions written (picture paths)
    skipped: list[tuple[str, Message]] = field(default_factory=list)   # (picture, why its caption stayed)
    failed: list[TagFailure] = field(default_factory=list)
    not_read: list[str] = field(default_factory=list)              # files of formats training does not read
    changes: list[Change] = field(default_factory=list)            # each caption written: before and after
    history_entry: str = ""                                        # the undo entry of the run ("": none kept)
    stopped: bool = False
    trigger: str = ""

    @property
    def done(self) -> int:
        return len(self.written) + len(self.skipped) + len(self.failed)

    def summary(self, language: str = "en") -> str:
        parts = [msg("tag.summary.skipped", count=len(self.skipped))] if self.skipped else []
        parts += [msg("tag.summary.failed", count=len(self.failed))] if self.failed else []
        parts += [msg("tag.summary.stopped", count=self.done)] if self.stopped else []
        values = {"written": len(self.written), "total": self.total, "folder": self.folder, "tagger": self.tagger}
        head = msg("tag.summary.details", details=joined(parts, "list.semicolon"), **values) if parts else \
            msg("tag.summary", **values)
        not_read = msg("tag.summary.not_read", count=len(self.not_read)) if self.not_read else ""
        return "\n".join([sentences([head, not_read], language)]
                         + ["  " + msg("dataset.named", name=Path(f.path).name, text=f.reason).format(language)
                            for f in self.failed])

    def as_dict(self, language: str = "en") -> dict:
        """JSON-ready (the HTTP API), the sentences in ``language``."""
        data = asdict(self)
        data["skipped"] = [[path, said(why, language)] for path, why in self.skipped]
        data["failed"] = [{"path": f.path, "reason": said(f.reason, language), "advice": said(f.advice, language)}
                          for f in self.failed]
        del data["changes"]                     # before/after of every caption: for the undo, not for a reply
        return data


def _stop_requested(stop) -> bool:
    if stop is None:
        return False
    is_set = getattr(stop, "is_set", None)
    return bool(is_set() if callable(is_set) else stop())


def tag_folder(folder, tagger: Tagger, options: TagOptions | None = None, *, progress: Progress | None = None,
               stop=None, history: EditHistory | None = None) -> TagReport:
    """Tag every picture of ``folder`` (not its sub-folders) into its caption file.

    ``progress(done, total, current file)`` is called before each picture and once at the end;
    ``stop`` (a ``threading.Event`` or a callable) ends the run before the next picture. A tagger that
    cannot start (no onnxruntime, a broken model) raises before anything is written; a picture that fails
    is listed in ``report.failed`` and the run goes on. A caption that cannot be read, or that changes while
    its picture is tagged, is left as it is. With ``history`` (the caption editor's ``EditHistory``) the
    captions written become one entry that its undo puts back.
    """
    options = (options or TagOptions()).checked()
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(msg("dataset.not_folder", folder=folder), msg("tag.not_folder.advice"))
    images, unsupported = picture_files(folder)
    if not images:
        names = ", ".join(p.name for p in unsupported[:3])
        raise DatasetError(msg("tag.no_pictures.found", folder=folder, names=names) if unsupported else
                           msg("tag.no_pictures", folder=folder),
                           msg("tag.no_pictures.advice", extensions=", ".join(IMAGE_EXTENSIONS)))
    load = getattr(tagger, "load", None)
    if callable(load):
        load()                                    # a tagger that cannot start fails here, not once per picture
    trigger = concept_trigger(folder) if options.trigger is None else options.trigger
    report = TagReport(str(folder), tagger.label, total=len(images), trigger=trigger)
    report.not_read = [str(p) for p in unsupported]
    for index, path in enumerate(images):
        if _stop_requested(stop):
            report.stopped = True
            break
        if progress is not None:
            progress(index, len(images), str(path))
        _tag_one(path, tagger, options, trigger, report)
    if progress is not None:
        progress(len(images) if not report.stopped else index, len(images), "")
    if history is not None and report.changes:
        try:
            report.history_entry = history.record(report.changes, msg("edit.autotag", tagger=tagger.label))
        except OSError as err:   # the captions are written; only the undo is missing
            report.failed.append(TagFailure(str(folder), msg("tag.no_undo", why=str(err.strerror or err)),
                                            msg("tag.no_undo.advice")))
    return report


def _tag_one(path: Path, tagger: Tagger, options: TagOptions, trigger: str, report: TagReport) -> None:
    target = caption_path(path, options.caption_extension)
    try:
        text = read_caption_text(target)          # read in every mode: an unreadable caption is never overwritten
        existing = None if options.existing == "replace" else caption_tags_text(text)
        if options.existing == "skip" and existing:
            report.skipped.append((str(path), msg("tag.skip.has_caption")))
            return
        image = _load(path)
        tags = clean_tags(_run_tagger(tagger, image, options, path.name), options)
        caption = merge_caption(existing, [t for t, _ in tags], options.existing, trigger)
        if not caption:
            report.skipped.append((str(path), msg("tag.skip.no_tag")))
            return
        caption = " ".join(caption.split())
        if text is not None and caption == caption_tags_text(text) and len(text.strip().splitlines()) == 1:
            report.skipped.append((str(path), msg("tag.skip.complete")))
            return
        if read_caption_text(target) != text:
            report.failed.append(TagFailure(str(path), msg("tag.changed", path=str(target)),
                                            msg("tag.changed.advice")))
            return
        try:
            write_caption(target, caption)
        except OSError as err:
            report.failed.append(TagFailure(str(path), msg("tag.cannot_write", path=str(target),
                                                           why=str(err.strerror or err)),
                                            msg("tag.cannot_write.advice")))
            return
        report.written.append(str(path))
        report.changes.append(Change(str(path), str(target), text or "", caption))
    except ImageLoadError as err:
        report.failed.append(TagFailure(str(path), err.reason, err.advice))
    except TrainerError as err:
        report.failed.append(TagFailure(str(path), err.message, err.advice))
