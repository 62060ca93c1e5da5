"""The ``dataset`` commands' sentences by key (English; Chinese in ``text/zh_CN.json``), printed in the language of
the environment like the rest of the command line (``messages.py``)."""
from __future__ import annotations

from ..text.messages import register

register({
    "cli.level.error": "error",
    "cli.level.warning": "warning",
    "cli.level.info": "info",
    "cli.dataset.unreadable": "cannot be read, not imported: {path} ({why})",
    "cli.dataset.unsupported": "format not read, not imported: {path}",
    "cli.dataset.duplicates": "{kind}: {names} (the first is imported)",
    "cli.dataset.imported": "Imported {count} picture(s) and {captions} caption(s) into {folder} (repeats {repeats}).",
    "cli.dataset.caption_not_imported": "caption not imported: {path} ({why})",
    "cli.dataset.more": "… and {count} more",
    "cli.dataset.would_change": "{count} caption(s) would change; add --apply to write them.",
    "cli.dataset.left_alone": "left alone: {path} ({why})",
    "cli.dataset.written": "{count} caption(s) written; 'python -m lora_trainer dataset undo {folder}' undoes it.",
    "cli.dataset.undone": "Undone: {label} ({count} caption(s)).",
    "cli.dataset.no_edit": "say what to change",
    "cli.dataset.no_edit.advice": "use --add, --remove, --replace OLD=NEW or --move-to-front TAGS",
})
