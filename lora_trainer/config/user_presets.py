"""Presets a user saves from the form: one TOML file per preset, settings only, in the host's own folder.

A WebUI keeps them in ``<data>/lora_trainer/presets`` (each install its own, as its job records); the
standalone server and the command line in ``standalone/presets`` of the trainer's cache folder;
``$LORA_TRAINER_PRESETS_DIR`` overrides both. A caller names a preset, never a path, so a shared WebUI
stores them in its own folder. Paths and names (base model, folders, output name, the files a run continues
from) are never stored: applying a preset keeps them, as the built-in presets do. Built-in names are
reserved; a file that cannot be read is listed with the reason. Torch-free.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..text.messages import Message, msg, register
from .files import HANDLED_KOHYA_KEYS, LEGACY_KEYS, config_from_dict, flatten_kohya, read_toml, save_config
from .presets import PRESETS, USER, Preset
from .schema import TrainConfig

TEMPLATES = {
    "preset.name_empty": "The preset has no name.",
    "preset.name_empty.advice": "Type a name for it, e.g. my-character-sdxl.",
    "preset.name_long": "The preset name has {length} characters; {limit} at most.",
    "preset.name_chars": "A preset name cannot hold line breaks, control characters or any of {chars}.",
    "preset.name_dots": "A preset name cannot start or end with a dot or a space.",
    "preset.name_device": "'{name}' is a device name on Windows and cannot name a file.",
    "preset.name.advice": "Choose a plain name: letters, digits, spaces, - and _.",
    "preset.name_builtin": "'{name}' is the name of a built-in preset, which cannot be changed.",
    "preset.name_builtin.advice": "Choose another name for your preset.",
    "preset.not_found": "There is no preset called '{name}'.",
    "preset.not_found.advice": "Choose one of: {names}.",
    "preset.unreadable": "{name} cannot be read: {why}",
    "preset.unreadable.advice": "Delete the preset and save it again, or correct the file: {file}",
    "preset.rename.advice": "Rename the file, or delete the preset: {file}",
    "preset.paths_ignored": "{name}: {fields} not used (a preset keeps no paths or names)",
    "preset.unknown": "{name}: settings this trainer does not use: {fields}",
    "preset.saved": "Saved as '{name}': {count} setting(s) differ from the defaults.",
    "preset.replaced": "'{name}' replaced: {count} setting(s) differ from the defaults.",
    "preset.kept_out": "Not in the preset (each run sets them): the base model, the folders, the output name and "
                       "a file to continue from.",
    "preset.deleted": "'{name}' deleted.",
    "preset.not_written": "The preset could not be written to {folder}: {why}",
    "preset.not_written.advice": "Check that the folder can be written (free space, permissions).",
    "preset.not_deleted": "{name} could not be deleted: {why}",
    "preset.none": "none saved yet",
}
register(TEMPLATES)

EXTENSION = ".toml"
MAX_NAME = 64
NOT_IN_NAMES = '/\\:*?"<>|'                       # path separators and what Windows file names cannot hold
WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
NO_PRESET = "—"                                   # the preset lists' "none" entry
HEADER = "# LoRA Trainer preset: settings only (no paths or names; every run sets those)"
# what belongs to one run, not to a way of training: every path, the names, what depends on a file
RUN_FIELDS = tuple(f.name for f in TrainConfig.fields() if f.metadata.get("path")) + \
    ("output_name", "training_comment", "dim_from_weights")
SETTINGS = tuple(f.name for f in TrainConfig.fields() if f.name not in RUN_FIELDS)


class PresetError(ConfigError):
    """A preset cannot be named, found, read, written or deleted; ``reason`` and ``fix`` in any language."""

    def __init__(self, reason: Message, fix: Message | None = None) -> None:
        super().__init__(str(reason), str(fix) if fix is not None else "")
        self.reason, self.fix = reason, fix


@dataclass
class UserPreset:
    name: str
    path: str
    values: dict[str, Any] = field(default_factory=dict)
    error: PresetError | None = None                 # the file cannot be used: why, and what to do
    notes: list[Message] = field(default_factory=list)   # what in the file was not used

    def as_preset(self) -> Preset:
        """The preset as the built-in ones are applied (``presets.apply_preset``, ``preset_changes``)."""
        if self.error is not None:
            raise self.error
        return Preset(self.name, self.name, "", dict(self.values), kind=USER)


def presets_dir(host: Any = None) -> str:
    """``$LORA_TRAINER_PRESETS_DIR``; else the host's own folder (a WebUI: ``<data>/lora_trainer/presets``);
    else ``standalone/presets`` in the trainer's cache folder."""
    if os.environ.get("LORA_TRAINER_PRESETS_DIR"):
        return os.environ["LORA_TRAINER_PRESETS_DIR"]
    try:
        own = host.presets_dir() if host is not None and hasattr(host, "presets_dir") else ""
    except Exception:   # a host that cannot say (still starting up)
        own = ""
    if own:
        return own
    base = os.environ.get("LORA_TRAINER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lora_trainer")
    return os.path.join(base, "standalone", "presets")


def is_builtin(name: str) -> bool:
    """A built-in preset's name or title (any case), or the lists' "none" entry."""
    taken = {n.casefold() for n in PRESETS} | {p.title.casefold() for p in PRESETS.values()} | {NO_PRESET}
    return name.strip().casefold() in taken


def check_name(name: Any) -> str:
    """The name, trimmed, if it can name a user preset; else a ``PresetError`` that says why."""
    name = str(name or "").strip()
    if not name:
        raise PresetError(msg("preset.name_empty"), msg("preset.name_empty.advice"))
    if len(name) > MAX_NAME:
        raise PresetError(msg("preset.name_long", length=len(name), limit=MAX_NAME), msg("preset.name.advice"))
    if any(c in NOT_IN_NAMES or unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise PresetError(msg("preset.name_chars", chars=" ".join(NOT_IN_NAMES)), msg("preset.name.advice"))
    if name[0] == "." or name[-1] in ". ":
        raise PresetError(msg("preset.name_dots"), msg("preset.name.advice"))
    if name.split(".")[0].strip().casefold() in WINDOWS_DEVICES:
        raise PresetError(msg("preset.name_device", name=name), msg("preset.name.advice"))
    if is_builtin(name):
        raise PresetError(msg("preset.name_builtin", name=name), msg("preset.name_builtin.advice"))
    return name


def settings_of(cfg: TrainConfig) -> dict[str, Any]:
    """What a preset keeps of ``cfg``: every setting but the paths and names."""
    return {name: getattr(cfg, name) for name in SETTINGS}


def changed_from_defaults(values: dict[str, Any]) -> int:
    defaults = TrainConfig()
    return sum(1 for name, value in values.items() if getattr(defaults, name) != value)


def read_preset(path: str) -> UserPreset:
    """One preset file; what makes it unusable goes into ``error`` (never raised), what was left out into
    ``notes``. Settings the file does not name are the defaults (the file leaves out empty ones)."""
    name = os.path.basename(path)[: -len(EXTENSION)]
    preset = UserPreset(name, path)
    try:
        check_name(name)
        flat = flatten_kohya(read_toml(path))
        names = TrainConfig.field_names()
        ignored = sorted(k for k in flat if k in RUN_FIELDS)
        unknown = sorted(k for k in flat if k not in names and k not in LEGACY_KEYS and k not in HANDLED_KOHYA_KEYS)
        cfg, _ = config_from_dict({k: v for k, v in flat.items() if k not in RUN_FIELDS}, base=TrainConfig(),
                                  source=os.path.basename(path))
    except PresetError as err:   # a file named by hand
        preset.error = PresetError(err.reason, msg("preset.rename.advice", file=path))
        return preset
    except Exception as err:   # a broken file (TOML, values, encoding, permissions) never breaks the list
        why = err.message if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
        preset.error = PresetError(msg("preset.unreadable", name=name, why=why),
                                   msg("preset.unreadable.advice", file=path))
        return preset
    preset.values = settings_of(cfg)
    if ignored:
        preset.notes.append(msg("preset.paths_ignored", name=name, fields=", ".join(ignored)))
    if unknown:
        preset.notes.append(msg("preset.unknown", name=name, fields=", ".join(unknown)))
    return preset


def list_presets(folder: str) -> list[UserPreset]:
    """Every preset file in ``folder`` by name (any case), the unreadable ones with their error."""
    try:
        files = [f for f in os.listdir(folder) if f.lower().endswith(EXTENSION) and not f.startswith(".")]
    except OSError:   # no folder yet (nothing saved), or one that cannot be listed
        return []
    return [read_preset(os.path.join(folder, f)) for f in sorted(files, key=lambda f: (f.casefold(), f))]


def _existing(name: str, folder: str) -> UserPreset | None:
    key = name.strip().casefold()
    return next((p for p in list_presets(folder) if p.name.casefold() == key), None)


def find_preset(name: str, folder: str) -> UserPreset:
    """The user preset called ``name`` (any case); a ``PresetError`` when there is none or it cannot be read."""
    found = _existing(name, folder)
    if found is None:
        usable = [p.name for p in list_presets(folder) if p.error is None]
        raise PresetError(msg("preset.not_found", name=name),
                          msg("preset.not_found.advice", names=", ".join(list(PRESETS) + usable)))
    if found.error is not None:
        raise found.error
    return found


def resolve_preset(name: str, folder: str) -> Preset:
    """A built-in preset by name, else the user preset of that name (the command line's ``--preset``)."""
    return PRESETS[name] if name in PRESETS else find_preset(name, folder).as_preset()


def save_preset(cfg: TrainConfig, name: str, folder: str) -> tuple[UserPreset, bool]:
    """``cfg``'s settings as the preset ``name`` (written atomically); (the preset, whether it replaced one of
    that name, in any case)."""
    name = check_name(name)
    old = _existing(name, folder)
    path = os.path.join(folder, name + EXTENSION)
    try:
        os.makedirs(folder, exist_ok=True)
        save_config(cfg, path, SETTINGS, HEADER)
        if old is not None and old.path != path and not os.path.samefile(old.path, path):
            os.remove(old.path)   # "Mine" saved over "mine": one preset, the new spelling
    except OSError as err:
        raise PresetError(msg("preset.not_written", folder=folder, why=err.strerror or str(err)),
                          msg("preset.not_written.advice")) from None
    return UserPreset(name, path, settings_of(cfg)), old is not None


def delete_preset(name: str, folder: str) -> str:
    """Delete the user preset ``name`` (any case; an unreadable one too): a file in ``folder``, so never a
    built-in one. Returns its name as it was stored."""
    found = _existing(str(name or ""), folder)
    if found is None:
        raise PresetError(msg("preset.not_found", name=name),
                          msg("preset.not_found.advice", names=", ".join(p.name for p in list_presets(folder))
                              or msg("preset.none")))
    try:
        os.remove(found.path)
    except OSError as err:
        raise PresetError(msg("preset.not_deleted", name=found.name, why=err.strerror or str(err)),
                          msg("preset.not_written.advice")) from None
    return found.name
