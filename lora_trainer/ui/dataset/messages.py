"""The workbench's own sentences with numbers or names in them (English templates by key; Chinese in
``text/zh_CN.json``), and how its message boxes put sentences into the user's language.

Fixed titles and lines stay literals: the WebUI's localization (``localizations/zh_CN.json``) replaces them.
"""
from __future__ import annotations

from typing import Any, Iterable

from ...dataset.messages import duplicate_kind, joined, said, sentences  # noqa: F401  (the UI modules take them here)
from ...text.messages import msg, register, sentence  # noqa: F401

TEMPLATES = {
    "bench.to_import": "{count} picture(s) to import",
    "bench.duplicates": "{kind}: {names} — only the first is imported",
    "bench.unreadable": "cannot be read: {name} ({why})",
    "bench.unsupported": "format not read: {name}",
    "bench.repeats": "Suggested repeats for a {goal}: {repeats} ({count} × {repeats} per epoch)",
    "bench.imported": "{count} picture(s) and {captions} caption(s) imported into {folder}",
    "bench.left_out": "left out: {name} ({why})",
    "bench.caption_not_imported": "caption not imported: {name} ({why})",
    "bench.shown": "{shown} of {total} picture(s)",
    "bench.shown_with": "{shown} of {total} picture(s) with '{tag}'",
    "bench.last_edit": "Last edit (Undo takes it back): {label}",
    "bench.would_change": "{count} caption(s) would change",
    "bench.and_more": "… and {count} more",
    "bench.written": "{count} caption(s) written: {label}",
    "bench.left_alone": "left alone: {name} ({why})",
    "bench.undone": "Undone: {label} ({count} caption(s))",
    "bench.not_done": "not done: {what}",
    "bench.reg_made": "{made} made, {kept} were already there",
    "bench.reg_failed": "picture {number}: {why}",
    "bench.reg_imported": "{count} picture(s) into {folder}",
    "bench.plan": "{count} picture(s): {to_write} to prepare, {up_to_date} up to date, {refused} refused",
    "bench.focal_found": "{stored} focal point(s) set, {kept} picture(s) keep the centre",
    "bench.tag_unchanged": "{name}: (unchanged)",
    "bench.tag_scores": "tags: {tags}",
    "bench.no_project": "no project is chosen",
    "bench.no_project.advice": "type a name for a new project, or pick one in the list",
    "bench.where.project": "the project folder",
    "bench.where.pictures": "the pictures' folder",
    "bench.where.reg": "the regularization pictures' folder",
}
register(TEMPLATES)


def lines_in(language: str, items: Iterable[Any]) -> list[str]:
    """Lines of a message box in ``language``: ``Message``s formatted, any other text as it is."""
    return [said(item, language) for item in items if item]
