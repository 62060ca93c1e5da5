"""The workbench's caption editor, without gradio: the gallery with each picture's caption, the tag frequency
table, one caption edited, batch edits and the trait fold shown before they are written, and undo.

Edits go through the project's edit history (``.workbench/history``), so an undo survives a page reload and
two browser tabs never overwrite each other's edits silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from ...dataset import caption_edit as ce
from ...dataset.project import Project
from ...dataset.scan import ScanCache, scan_pictures
from ..status import message_html
from .messages import lines_in, msg, said
from .project_actions import error_box, language, open_project

ALL = "all concepts"
OPERATIONS = ("add", "remove", "replace", "move to front")
SHOWN = 12


@dataclass
class CaptionView:
    message: str = ""
    gallery: list = field(default_factory=list)      # (thumbnail path, caption)
    images: list = field(default_factory=list)       # image paths, in the gallery's order
    frequency: list = field(default_factory=list)    # [tag, images]
    fold_choices: list = field(default_factory=list)  # "tag (n/N)" of fold candidates
    concepts: list = field(default_factory=list)


def _folders(project: Project, concept: str | None) -> list[Path]:
    chosen = [c for c in project.concepts if concept in (None, "", ALL) or c.trigger == concept]
    return [project.concept_dir(c) for c in chosen]


def history(project: Project) -> ce.EditHistory:
    return ce.EditHistory(project.work_dir / "history")


def captions_of(project: Project, concept: str | None) -> list[ce.Caption]:
    return ce.read_captions(_folders(project, concept))


def caption_view(choice: str | None, concept: str | None, tag_filter: str, host: Any) -> CaptionView:
    try:
        project = open_project(choice, host, create=False)
        captions = captions_of(project, concept)
    except Exception as err:
        return CaptionView(error_box("The captions could not be read", err))
    shown = captions
    if tag_filter.strip():
        chosen = set(ce.images_with(captions, tag_filter.strip()))
        shown = [c for c in captions if c.image in chosen]
    pictures = {p.path: p for p in scan_pictures([Path(c.image) for c in shown], ScanCache(project.work_dir / "scan"))}
    gallery = [(pictures[c.image].thumb or c.image, c.text or "(no caption)") for c in shown
               if pictures.get(c.image) and pictures[c.image].ok]
    trigger = concept if concept and concept != ALL else (project.concepts[0].trigger if project.concepts else "")
    total = len([c for c in captions if not c.error])
    folds = [f"{tag} ({n}/{total})" for tag, n in ce.fold_candidates(captions, trigger)]
    lang = language(host)
    lines = [msg("bench.shown_with", shown=len(shown), total=len(captions), tag=tag_filter.strip())
             if tag_filter.strip() else msg("bench.shown", shown=len(shown), total=len(captions))]
    bad = [c for c in captions if c.error]
    lines += [msg("bench.unreadable", name=Path(c.path).name, why=c.error) for c in bad[:SHOWN]]
    last = history(project).last_label(lang)
    if last:
        lines.append(msg("bench.last_edit", label=last))
    return CaptionView(message_html("warning" if bad else "info", "Captions", lines_in(lang, lines)),
                       gallery, [c.image for c in shown if pictures.get(c.image) and pictures[c.image].ok],
                       [[tag, n] for tag, n in ce.frequency(captions)], folds,
                       [ALL] + [c.trigger for c in project.concepts])


def fold_tag(choice_text: str) -> str:
    """"blue hair (12/14)" → "blue hair"."""
    return choice_text.rsplit(" (", 1)[0] if choice_text.endswith(")") else choice_text


def _tags(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def batch_edit(operation: str, tags: str, replacement: str):
    """(the edit, its label: a ``Message`` the history keeps)."""
    if operation == "add":
        return ce.add_tags(_tags(tags)), ce.edit_label("add", _tags(tags))
    if operation == "remove":
        return ce.remove_tags(_tags(tags)), ce.edit_label("remove", _tags(tags))
    if operation == "replace":
        return ce.replace_tag(tags.strip(), replacement.strip()), ce.edit_label("replace", [tags.strip()],
                                                                                 replacement.strip())
    return ce.move_to_front(_tags(tags)), ce.edit_label("move to front", _tags(tags))


def diff_html(changes: list[ce.Change], label, lang: str = "en") -> str:
    if not changes:
        return message_html("info", "Nothing would change", [said(label, lang)])
    rows = "".join(f"<tr><td>{escape(Path(c.image).name)}</td><td>{escape(c.before)}</td><td>{escape(c.after)}</td></tr>"
                   for c in changes[:SHOWN])
    more = f"<p>{escape(msg('bench.and_more', count=len(changes) - SHOWN).format(lang))}</p>" \
        if len(changes) > SHOWN else ""
    return (message_html("info", msg("bench.would_change", count=len(changes)).format(lang), [said(label, lang)],
                         "Press Apply to write them; Undo takes them back.")
            + f'<table class="lt-diff"><thead><tr><th>Picture</th><th>Now</th><th>After</th></tr></thead>'
              f"<tbody>{rows}</tbody></table>{more}")


@dataclass
class Pending:
    """Changes shown in a preview, waiting for Apply."""
    changes: list
    label: Any                # a Message (or text)


def preview_batch(choice, concept, operation, tags, replacement, only_filtered, tag_filter, host) -> tuple[str, Pending | None]:
    try:
        project = open_project(choice, host, create=False)
        if not _tags(tags):
            return message_html("info", "Type the tags first", advice="Several tags: separate them with commas."), None
        captions = captions_of(project, concept)
        selection = ce.images_with(captions, tag_filter.strip()) if only_filtered and tag_filter.strip() else None
        edit, label = batch_edit(operation, tags, replacement)
        changes = ce.plan_edit(captions, edit, selection)
    except Exception as err:
        return error_box("The edit cannot be shown", err), None
    return diff_html(changes, label, language(host)), Pending(changes, label)


def preview_fold(choice, concept, chosen: list[str], host) -> tuple[str, Pending | None]:
    try:
        project = open_project(choice, host, create=False)
        trigger = concept if concept and concept != ALL else (project.concepts[0].trigger if project.concepts else "")
        traits = [fold_tag(c) for c in chosen or []]
        if not traits:
            return message_html("info", "Tick the traits to fold first",
                                advice="Usually the hair, eye and body tags present on most pictures."), None
        label = ce.edit_label("fold", traits, trigger=trigger)
        changes = ce.plan_edit(captions_of(project, concept), ce.fold_traits(trigger, traits))
    except Exception as err:
        return error_box("The fold cannot be shown", err), None
    return diff_html(changes, label, language(host)), Pending(changes, label)


def apply_pending(choice, pending: Pending | None, host) -> str:
    if pending is None or not pending.changes:
        return message_html("info", "Show the changes first", advice="Press Preview, check them, then Apply.")
    try:
        result = history(open_project(choice, host, create=False)).apply(pending.changes, pending.label)
    except Exception as err:
        return error_box("Nothing was written", err)
    lines = [msg("bench.written", count=len(result.written), label=pending.label)]
    lines += [msg("bench.left_alone", name=Path(p).name, why=why) for p, why in result.conflicts[:SHOWN]]
    return message_html("warning" if result.conflicts else "ok", "Applied", lines_in(language(host), lines))


def save_one(choice, image: str, text: str, host) -> str:
    if not image:
        return message_html("info", "Click a picture first")
    try:
        project = open_project(choice, host, create=False)
        captions = [c for c in ce.read_captions([Path(image).parent]) if c.image == image]
        changes = ce.plan_edit(captions, ce.set_caption(text))
        if not changes:
            return message_html("info", "The caption is unchanged")
        result = history(project).apply(changes, msg("edit.one", name=Path(image).name))
    except Exception as err:
        return error_box("The caption was not saved", err)
    if result.conflicts:
        return message_html("warning", "Not saved", lines_in(language(host), [why for _, why in result.conflicts]))
    return message_html("ok", "Caption saved", [f"{Path(image).name}: {changes[0].after}"])


def undo(choice, host) -> str:
    try:
        h = history(open_project(choice, host, create=False))
        lang = language(host)
        label = h.last_label(lang)
        result = h.undo()
    except Exception as err:
        return error_box("Nothing was undone", err)
    lines = [msg("bench.undone", label=label, count=len(result.written))]
    lines += [msg("bench.left_alone", name=Path(p).name, why=why) for p, why in result.conflicts[:SHOWN]]
    return message_html("warning" if result.conflicts else "ok", "Undone", lines_in(lang, lines))
