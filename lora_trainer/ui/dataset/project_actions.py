"""The workbench's project and import steps, without gradio: open or create a project, look at the pictures
to import (duplicates and unreadable files first), import them, and hand the project to the Train tab.

Every path is checked against the host's allowed folders (a shared WebUI); every failure comes back as a
message with advice, never as a traceback. Sentences with numbers or names come in the host's language.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ...config.presets import apply_preset
from ...config.schema import TrainConfig
from ...dataset.caption_edit import read_captions, starts_with_trigger
from ...dataset.checks import goal_word
from ...dataset.importing import ImportPlan, import_pictures, plan_import
from ...dataset.project import GOALS, PROJECT_FILE, Project
from ...errors import TrainerError
from ..actions import allowed_folders
from ..status import message_html
from .messages import duplicate_kind, lines_in, msg, sentence

SHOWN = 10


def error_box(title: str, err: BaseException) -> str:
    if isinstance(err, TrainerError):
        return message_html("error", title, [err.message], err.advice)
    return message_html("error", title, [f"{type(err).__name__}: {err}"],
                        "This was not expected; the rest of the WebUI is not affected.")


def language(host: Any) -> str:
    try:
        return host.language()
    except Exception:
        return "en"


def datasets_dir(host: Any) -> str:
    try:
        return host.datasets_dir()
    except Exception:
        return os.path.abspath("lora_trainer_datasets")


def project_choices(host: Any) -> list[str]:
    """The projects in the host's datasets folder, by name."""
    root = Path(datasets_dir(host))
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / PROJECT_FILE).is_file())


def project_path(choice: str | None, host: Any) -> str:
    """A project chosen by name (in the datasets folder) or typed as a folder; checked for a shared host."""
    choice = (choice or "").strip().strip('"')
    if not choice:
        raise TrainerError(msg("bench.no_project"), msg("bench.no_project.advice"))
    path = choice if (os.sep in choice or "/" in choice) else os.path.join(datasets_dir(host), choice)
    return allowed_folders(host).check(os.path.expanduser(path), sentence("bench.where.project"))


def open_project(choice: str | None, host: Any, create: bool = True) -> Project:
    path = project_path(choice, host)
    return Project.create(path) if create else Project.open(path)


def project_html(project: Project) -> str:
    if not project.concepts:
        return message_html("info", "The project is empty", [str(project.root)],
                            "Import pictures into it: pick a folder or upload files below.")
    rows = []
    for concept in project.concepts:
        folder = project.concept_dir(concept)
        images = len([p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp")]) \
            if folder.is_dir() else 0
        rows.append(f"<tr><td>{escape(concept.trigger)}</td><td>{escape(concept.class_word)}</td>"
                    f"<td>{escape(concept.goal)}</td><td>{images}</td><td>{concept.repeats}</td>"
                    f"<td>{escape(folder.name)}</td></tr>")
    return (f'<div class="lt-project"><code>{escape(str(project.root))}</code>'
            '<table class="lt-concepts"><thead><tr><th>Trigger word</th><th>Class</th><th>Goal</th><th>Images</th>'
            '<th>Repeats</th><th>Folder</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


@dataclass
class Look:
    """What "Look at the pictures" shows, and the plan "Import" carries out."""
    message: str
    plan: ImportPlan | None = None
    repeats: int | None = None


def look_at_pictures(choice: str | None, source: str | None, uploads: list[tuple[str, str]], goal: str,
                     host: Any) -> Look:
    try:
        project = open_project(choice, host)
        source = (source or "").strip().strip('"')
        if not source and not uploads:
            return Look(message_html("info", "Choose the pictures first",
                                     advice="Type the folder that holds them, or upload the files."))
        if source:
            source = allowed_folders(host).check(os.path.expanduser(source), sentence("bench.where.pictures"))
        plan = plan_import(project, source or None, uploads)
    except Exception as err:   # never a traceback into the page
        return Look(error_box("The pictures could not be read", err))
    lines = [msg("bench.to_import", count=len(plan.to_import))]
    lines += [msg("bench.duplicates", kind=duplicate_kind(group.kind),
                  names=" = ".join(Path(p).name for p in group.paths)) for group in plan.duplicates[:SHOWN]]
    lines += [msg("bench.unreadable", name=Path(picture.path).name, why=picture.error)
              for picture in plan.unreadable[:SHOWN]]
    lines += [msg("bench.unsupported", name=path.name) for path in plan.unsupported[:SHOWN]]
    goal = goal if goal in GOALS else "character"
    repeats = plan.suggested_repeats(goal)
    lines.append(msg("bench.repeats", goal=goal_word(goal), repeats=repeats, count=len(plan.to_import)))
    kind = "warning" if plan.duplicates or plan.unreadable or plan.unsupported else "ok"
    return Look(message_html(kind, "What the import will do", lines_in(language(host), lines)), plan, repeats)


def run_import(choice: str | None, plan: ImportPlan | None, trigger: str, class_word: str, goal: str,
               repeats: Any, keep_duplicates: bool, host: Any) -> str:
    if plan is None:
        return message_html("info", "Look at the pictures first", advice="Press 'Look at the pictures'.")
    try:
        project = open_project(choice, host)
        result = import_pictures(project, plan, trigger, int(repeats) if repeats else None, class_word or "",
                                 goal if goal in GOALS else "character",
                                 leave_out=set() if keep_duplicates else None)
    except Exception as err:
        return error_box("Nothing was imported", err)
    lines = [msg("bench.imported", count=len(result.imported), captions=result.captions,
                 folder=str(project.concept_dir(project.concept(trigger.strip()))))]
    lines += [msg("bench.left_out", name=Path(p).name, why=why) for p, why in result.skipped[:SHOWN]]
    lines += [msg("bench.caption_not_imported", name=Path(p).name, why=why)
              for p, why in result.caption_problems[:SHOWN]]
    return message_html("ok", "Imported", lines_in(language(host), lines),
                        "Next: crop and resize, then tag the pictures.")


def training_config(project: Project, cfg: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """``cfg`` with the project's folders, size and buckets, the goal's preset, and keep_tokens 1 when every
    caption starts with the trigger word; the lines say what changed."""
    values = project.training_settings()
    goal = values["goal"]
    new = apply_preset(cfg, goal) if goal in GOALS else cfg
    first = project.concepts[0] if project.concepts else None
    captions = read_captions([project.concept_dir(first)]) if first else []
    keep = 1 if first and starts_with_trigger(captions, first.trigger) else 0
    new = new.replace(train_data_dir=values["train_data_dir"], reg_data_dir=values["reg_data_dir"],
                      resolution=values["resolution"], enable_bucket=values["enable_bucket"], keep_tokens=keep,
                      min_bucket_reso=values["min_bucket_reso"], max_bucket_reso=values["max_bucket_reso"])
    changed = [f"{f.name}: {getattr(cfg, f.name)} → {getattr(new, f.name)}" for f in TrainConfig.fields()
               if getattr(cfg, f.name) != getattr(new, f.name)]
    return new, changed
