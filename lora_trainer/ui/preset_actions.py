"""What the Train tab's preset controls do, without gradio: the built-in presets and one of the user's own
applied to the form together (one list of what changed), a user preset saved from the form or deleted, and the
lists of them. Titles are fixed texts (the WebUI's localization translates them); sentences with names come
in the host's language. The presets' folder is the host's own (``presets_dir``): the page sends names only.
"""
from __future__ import annotations

from typing import Any

from ..config.presets import PRESETS, Preset, apply_preset, preset_changes, preset_names
from ..config.schema import TrainConfig
from ..config.user_presets import (NO_PRESET, PresetError, UserPreset, changed_from_defaults, delete_preset,
                                   find_preset, list_presets, presets_dir, save_preset)
from ..text.messages import msg
from .status import message_html

BY_TITLE = {p.title: p.name for p in PRESETS.values()}


def language(host: Any) -> str:
    try:
        return host.language()
    except Exception:
        return "en"


def builtin_choices(kind: str) -> list[str]:
    """A built-in list (what is trained, or the graphics card): "none", then the presets' titles."""
    return [NO_PRESET] + [PRESETS[n].title for n in preset_names(kind)]


def chosen(*choices: Any) -> bool:
    return any(c and c != NO_PRESET for c in choices)


def error_box(title: str, err: PresetError, lang: str) -> str:
    return message_html("error", title, [err.reason.format(lang)], err.fix.format(lang) if err.fix else "")


def listing(host: Any) -> tuple[list[str], str]:
    """(the user's presets as choices, "none" first; a box naming the files that cannot be read)."""
    presets = list_presets(presets_dir(host))
    return [NO_PRESET] + [p.name for p in presets], broken_html(presets, language(host))


def broken_html(presets: list[UserPreset], lang: str) -> str:
    lines = [f"{p.error.reason.format(lang)} — {p.error.fix.format(lang)}" if p.error.fix else
             p.error.reason.format(lang) for p in presets if p.error is not None]
    return message_html("warning", "Presets that cannot be read", lines,
                        "Choose one in 'Your presets' and delete it, or correct its file.") if lines else ""


def apply(cfg: TrainConfig, subject_title: str, vram_title: str, mine: str, host: Any) -> tuple[str, Any]:
    """(the message, ``cfg`` with the chosen presets: the user's own first, then the built-in ones on top, so
    that "my settings" + "12 GB" fits the card); None instead of the config when nothing applies."""
    lang = language(host)
    presets: list[Preset] = []
    notes = []
    if chosen(mine):
        try:
            found = find_preset(mine, presets_dir(host))
            presets.append(found.as_preset())
            notes = [n.format(lang) for n in found.notes]
        except PresetError as err:
            return error_box("The preset could not be applied", err, lang), None
    presets += [PRESETS[BY_TITLE[t]] for t in (subject_title, vram_title) if t in BY_TITLE]
    if not presets:
        return message_html("info", "Choose a preset first"), None
    lines = []
    for preset in presets:
        lines += [f"{field}: {old} → {new}" for field, old, new in preset_changes(cfg, preset)]
        cfg = apply_preset(cfg, preset)
    titles = " + ".join(p.title for p in presets)
    box = message_html("ok", "Preset applied", [titles] + [p.description for p in presets] + notes
                       + (lines or ["Nothing needed to change."]))
    return box, cfg


def save(cfg: TrainConfig, name: str, host: Any) -> tuple[str, list[str] | None, str, str]:
    """(the message, the new choices or None when nothing was saved, the preset now chosen, the broken-files
    box)."""
    lang = language(host)
    try:
        preset, replaced = save_preset(cfg, name, presets_dir(host))
    except PresetError as err:
        return error_box("The preset could not be saved", err, lang), None, "", ""
    said = msg("preset.replaced" if replaced else "preset.saved", name=preset.name,
               count=changed_from_defaults(preset.values))
    choices, broken = listing(host)
    return message_html("ok", "Preset saved", [said.format(lang), msg("preset.kept_out").format(lang)]), \
        choices, preset.name, broken


def delete(name: str, host: Any) -> tuple[str, list[str] | None, str]:
    """(the message, the new choices or None when nothing was deleted, the broken-files box)."""
    if not chosen(name):
        return message_html("info", "Choose one of your presets first"), None, ""
    lang = language(host)
    try:
        deleted = delete_preset(name, presets_dir(host))
    except PresetError as err:
        return error_box("The preset could not be deleted", err, lang), None, ""
    choices, broken = listing(host)
    return message_html("ok", "Preset deleted", [msg("preset.deleted", name=deleted).format(lang)]), choices, broken
