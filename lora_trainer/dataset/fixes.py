"""The one-click fixes of the checks: files moved aside (never deleted), folders renamed, captions edited (undoable).

A fix of kind "setting" or "fold" is the caller's to apply (a form value; the fold preview). Moved files go
to ``<training folder>/.removed/`` with their folder structure and captions, where the user can fetch
them back; the training scan never reads hidden folders.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..config.allowed_folders import inside
from ..data.captions import caption_path
from ..data.folders import parse_concept_folder_name
from ..errors import DatasetError
from ..text.messages import Message, msg
from .caption_edit import Applied, EditHistory, plan_edit, read_captions, set_caption, trigger_first
from .checks import Fix
from .project import PROJECT_FILE, WORK_DIR

REMOVED_DIR = ".removed"


@dataclass
class FixResult:
    done: list[str] = field(default_factory=list)          # what was done, one line per file or folder
    problems: list[Message] = field(default_factory=list)
    setting: dict = field(default_factory=dict)             # for the caller to put into the form


def workbench_folder(train_dir: str | os.PathLike) -> Path:
    """Where the workbench keeps its cache and edit history for a training folder: the project's own folder
    when the training folder is a project's ``img/``, else a hidden folder inside it."""
    train_dir = Path(train_dir)
    if (train_dir.parent / PROJECT_FILE).is_file():
        return train_dir.parent / WORK_DIR
    return train_dir / ".lora_trainer_cache" / "workbench"


def history_for(train_dir: str | os.PathLike) -> EditHistory:
    return EditHistory(workbench_folder(train_dir) / "history")



def move_aside(train_dir: Path, paths: list[str], caption_extension: str, result: FixResult) -> None:
    for raw in paths:
        path = Path(raw)
        if not inside(path, train_dir) or not path.exists():
            result.problems.append(msg("fix.gone", path=str(path)))
            continue
        target = train_dir / REMOVED_DIR / path.resolve().relative_to(train_dir.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        for src, dst in ((path, target), (caption_path(path, caption_extension),
                                          caption_path(target, caption_extension))):
            if src.exists():
                shutil.move(str(src), str(dst))
        result.done.append(f"{path.name} → {REMOVED_DIR}/")


def rename_folders(paths: list[str], result: FixResult, repeats: int = 10) -> None:
    for raw in paths:
        folder = Path(raw)
        if parse_concept_folder_name(folder.name) is not None:
            continue
        target = folder.with_name(f"{repeats}_{folder.name}")
        if target.exists():
            result.problems.append(msg("fix.exists", target=target.name, folder=folder.name))
            continue
        os.replace(folder, target)
        result.done.append(f"{folder.name} → {target.name}")


def apply_fix(fix: Fix, train_dir: str | os.PathLike, trigger: str = "", caption_extension: str = ".txt") -> FixResult:
    """Carry out ``fix`` on ``train_dir``; what is not the library's to do comes back in ``setting``."""
    train_dir = Path(train_dir)
    result = FixResult()
    if fix.kind == "move_aside":
        move_aside(train_dir, fix.paths, caption_extension, result)
    elif fix.kind == "rename_folder":
        rename_folders(fix.paths, result)
    elif fix.kind in ("add_trigger", "fill_trigger"):
        if not trigger:
            raise DatasetError(msg("fix.no_trigger"), msg("fix.no_trigger.advice"))
        folders = {str(Path(p).parent) for p in fix.paths}
        captions = read_captions(folders, caption_extension)
        edit = trigger_first(trigger) if fix.kind == "add_trigger" else set_caption(trigger)
        applied: Applied = history_for(train_dir).apply(plan_edit(captions, edit, fix.paths), fix.label)
        result.done += [f"{Path(c.image).name}: {c.after}" for c in applied.written]
        result.problems += [msg("dataset.named", name=Path(p).name, text=why) for p, why in applied.conflicts]
    elif fix.kind == "setting":
        result.setting = dict(fix.setting)
    elif fix.kind == "fold":
        result.setting = {"fold": list(fix.paths)}
    else:
        raise DatasetError(msg("fix.unknown", kind=fix.kind), msg("fix.unknown.advice"))
    return result
