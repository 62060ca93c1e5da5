"""Caption editing over a dataset: one image or a batch, the tag frequency table, the tutorial's "fold traits
into the trigger word", every change previewed before it is written, and undone later.

A caption is one line of comma-separated tags beside its image. An edit is a function from a tag list to
a tag list; ``plan_edit`` applies it to the chosen captions without writing and returns the ``Change``s,
``EditHistory.apply`` writes them (each file atomically; a file changed elsewhere since it was read, in
another browser tab say, is left alone and reported) and records them under ``.workbench/history`` so an
undo survives a page reload. An edit's label may be a ``Message`` (kept by key, so it reads back in any
language); why a file was left alone is a ``Message`` or a caption error's English text.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..data.captions import caption_path, read_caption, read_caption_file, split_tags
from ..errors import DatasetError, TrainerError
from ..io.atomic import atomic_write, sync_folder
from ..text.messages import ENGLISH, Message, msg
from . import messages  # noqa: F401  (registers the sentences)
from .scan import picture_files

Edit = Callable[[list[str]], list[str]]
FOLD_SHARE = 0.6        # a tag on at least this share of the images is a candidate to fold into the trigger


@dataclass
class Caption:
    image: str
    path: str
    text: str = ""
    exists: bool = False
    error: str = ""          # why the file cannot be read (it is then never overwritten)

    @property
    def tags(self) -> list[str]:
        return split_tags(self.text)


@dataclass
class Change:
    image: str
    path: str
    before: str
    after: str


def join_tags(tags: Iterable[str]) -> str:
    return ", ".join(t for t in tags if t)


def read_captions(folders: Iterable[str | os.PathLike], caption_extension: str = ".txt") -> list[Caption]:
    """The caption of every picture in ``folders`` (missing ones empty; unreadable ones with the reason)."""
    out = []
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        images, _ = picture_files(folder)
        for image in images:
            path = caption_path(image, caption_extension)
            try:
                text = read_caption(image, caption_extension)
                out.append(Caption(str(image), str(path), text or "", text is not None))
            except TrainerError as err:
                out.append(Caption(str(image), str(path), "", True, err.message))
    return out


# --- edits (tag list → tag list) -----------------------------------------------------------------------

def _key(tag: str) -> str:
    return " ".join(tag.replace("_", " ").split()).lower()


def _clean(names: Iterable[str]) -> list[str]:
    return [t.strip() for t in names if t and t.strip()]


def add_tags(new: Iterable[str], front: bool = False) -> Edit:
    new = _clean(new)

    def edit(tags: list[str]) -> list[str]:
        have = {_key(t) for t in tags}
        extra = [t for t in new if _key(t) not in have]
        return extra + tags if front else tags + extra
    return edit


def remove_tags(gone: Iterable[str]) -> Edit:
    keys = {_key(t) for t in _clean(gone)}
    return lambda tags: [t for t in tags if _key(t) not in keys]


def replace_tag(old: str, new: str) -> Edit:
    old_key, new = _key(old), new.strip()

    def edit(tags: list[str]) -> list[str]:
        out, seen = [], set()
        for tag in tags:
            tag = new if _key(tag) == old_key else tag
            if tag and _key(tag) not in seen:
                out.append(tag)
                seen.add(_key(tag))
        return out
    return edit


def move_to_front(chosen: Iterable[str]) -> Edit:
    order = [_key(t) for t in _clean(chosen)]

    def edit(tags: list[str]) -> list[str]:
        front = sorted((t for t in tags if _key(t) in order), key=lambda t: order.index(_key(t)))
        return front + [t for t in tags if _key(t) not in order]
    return edit


def set_caption(text: str) -> Edit:
    tags = split_tags(text)
    return lambda _: list(tags)


def trigger_first(trigger: str) -> Edit:
    """The trigger word first in the caption (added when missing)."""
    return lambda tags: move_to_front([trigger])(add_tags([trigger], front=True)(tags))


def fold_traits(trigger: str, traits: Iterable[str]) -> Edit:
    """The tutorial's 整合概念标签: the trait tags leave every caption (the LoRA learns them as part of the
    trigger word) and the trigger word stands first."""
    trigger = trigger.strip()
    if not trigger:
        raise DatasetError(msg("edit.no_trigger"), msg("edit.no_trigger.advice"))
    drop = remove_tags([t for t in traits if _key(t) != _key(trigger)])
    return lambda tags: trigger_first(trigger)(drop(tags))


def edit_label(operation: str, tags: Sequence[str], replacement: str = "", trigger: str = "") -> Message:
    """What a batch edit does, in words (the history keeps it; the undo shows it): ``operation`` is add, remove,
    replace, move to front (or move_to_front) or fold."""
    text = ", ".join(tags)
    if operation == "remove":
        return msg("edit.remove", tags=text)
    if operation == "replace":
        return msg("edit.replace", old=text, new=replacement)
    if operation in ("move to front", "move_to_front"):
        return msg("edit.move", tags=text)
    if operation == "fold":
        return msg("edit.fold", traits=text, trigger=trigger)
    return msg("edit.add", tags=text)


# --- reading the captions --------------------------------------------------------------------------------

def frequency(captions: Sequence[Caption], selection: Iterable[str] | None = None) -> list[tuple[str, int]]:
    """(tag, number of captions holding it), most frequent first (ties: alphabetical)."""
    chosen = set(selection) if selection is not None else None
    counts: Counter = Counter()
    shown: dict[str, str] = {}
    for caption in captions:
        if chosen is not None and caption.image not in chosen:
            continue
        for key in {_key(t): t for t in caption.tags}.items():
            counts[key[0]] += 1
            shown.setdefault(key[0], key[1])
    return sorted(((shown[k], n) for k, n in counts.items()), key=lambda item: (-item[1], item[0].lower()))


def images_with(captions: Sequence[Caption], tag: str) -> list[str]:
    key = _key(tag)
    return [c.image for c in captions if any(_key(t) == key for t in c.tags)]


def fold_candidates(captions: Sequence[Caption], trigger: str, share: float = FOLD_SHARE) -> list[tuple[str, int]]:
    """Tags on at least ``share`` of the images (the trigger aside): what a trait fold would take in."""
    total = len([c for c in captions if not c.error])
    return [(tag, n) for tag, n in frequency(captions) if total and n / total >= share and _key(tag) != _key(trigger)]


def starts_with_trigger(captions: Sequence[Caption], trigger: str) -> bool:
    """True when every caption starts with the trigger word (then ``keep_tokens = 1`` keeps it first)."""
    return bool(captions) and all(c.tags[:1] and _key(c.tags[0]) == _key(trigger) for c in captions if not c.error)


def plan_edit(captions: Sequence[Caption], edit: Edit, selection: Iterable[str] | None = None) -> list[Change]:
    """What ``edit`` would change, caption by caption (unreadable captions are never touched)."""
    chosen = set(selection) if selection is not None else None
    changes = []
    for caption in captions:
        if caption.error or (chosen is not None and caption.image not in chosen):
            continue
        after = join_tags(edit(list(caption.tags)))
        if after != caption.text:
            changes.append(Change(caption.image, caption.path, caption.text, after))
    return changes


# --- writing, with an undo that survives a reload ----------------------------------------------------------

@dataclass
class Applied:
    written: list[Change] = field(default_factory=list)
    conflicts: list[tuple[str, Message | str]] = field(default_factory=list)   # (caption file, why left alone)
    entry: str = ""


def _current(path: str) -> str:
    return read_caption_file(path) if os.path.exists(path) else ""


def _write(changes: Sequence[Change], expect: Callable[[Change], str], value: Callable[[Change], str]) -> Applied:
    result = Applied()
    folders = set()
    for change in changes:
        try:
            if _current(change.path) != expect(change):
                result.conflicts.append((change.path, msg("caption.changed")))
                continue
            with atomic_write(change.path, durable=False) as tmp:
                tmp.write_text(value(change), encoding="utf-8")
        except TrainerError as err:
            result.conflicts.append((change.path, err.message))
            continue
        except OSError as err:
            result.conflicts.append((change.path, msg("caption.cannot_write", why=str(err.strerror or err))))
            continue
        folders.add(os.path.dirname(change.path))
        result.written.append(change)
    for folder in folders:
        sync_folder(folder)
    return result


def _keyed(label: Any) -> dict:
    """{"message": {key, params}} for a ``Message`` label (a value that is a sentence itself kept as its
    English text), else nothing."""
    if not isinstance(label, Message):
        return {}
    params = {k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in label.params.items()}
    return {"message": {"key": label.key, "params": params}}


class EditHistory:
    """Applied edits as numbered JSON files in ``folder``; ``undo`` puts back the newest one not yet undone."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def entries(self) -> list[Path]:
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []

    def apply(self, changes: Sequence[Change], label: Message | str) -> Applied:
        result = _write(changes, lambda c: c.before, lambda c: c.after)
        result.entry = self.record(result.written, label)
        return result

    def record(self, changes: Sequence[Change], label: Message | str) -> str:
        """Keep changes a caller has written itself (the auto-tagger's) as the newest entry; its path, or ""
        when there were none. A ``Message`` label is kept by key beside its English text."""
        if not changes:
            return ""
        self.folder.mkdir(parents=True, exist_ok=True)
        number = int(self.entries()[-1].stem.split("-")[0]) + 1 if self.entries() else 1
        path = self.folder / f"{number:06d}-{int(time.time())}.json"
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps({"label": str(label), **_keyed(label), "changes": [asdict(c) for c in changes]},
                                      ensure_ascii=False), encoding="utf-8")
        return str(path)

    def last_label(self, language: str = "en") -> str:
        """The newest entry's label in ``language`` (an entry kept without a key: its text as written)."""
        entries = self.entries()
        if not entries:
            return ""
        try:
            data = json.loads(entries[-1].read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        keyed = data.get("message")
        if isinstance(keyed, dict) and keyed.get("key") in ENGLISH and isinstance(keyed.get("params"), dict):
            try:
                return Message(keyed["key"], keyed["params"]).format(language)
            except (KeyError, ValueError, IndexError):   # a template that no longer fits the values kept
                pass
        return str(data.get("label", ""))

    def undo(self) -> Applied:
        entries = self.entries()
        if not entries:
            raise DatasetError(msg("edit.nothing_to_undo"), msg("edit.nothing_to_undo.advice"))
        try:
            data = json.loads(entries[-1].read_text(encoding="utf-8"))
            changes = [Change(**c) for c in data["changes"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetError(msg("edit.bad_history", path=entries[-1], error=str(err)),
                               msg("edit.bad_history.advice")) from None
        result = _write(changes, lambda c: c.after, lambda c: c.before)
        result.entry = str(entries[-1])
        if not result.conflicts:
            entries[-1].unlink()
        return result
