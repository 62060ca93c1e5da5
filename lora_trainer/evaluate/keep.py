"""Keep the chosen epoch under a final name, ready to click in the WebUI's Lora tab.

``dreamgirl.safetensors`` is written atomically as a byte copy of the chosen epoch with the
metadata's ``ss_output_name`` (the hosts' alias) and title set to the new name, so the card
inserts ``<lora:dreamgirl:…>``. Beside it: ``dreamgirl.json`` (the hosts' user metadata:
activation text, preferred weight, notes with the training summary) and
``dreamgirl.preview.png``. An existing name is never replaced unless asked. The other files of
the run can then be deleted, in two steps (list, then delete with confirmation), and only
files that belong to the run.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TrainerError
from ..io.atomic import atomic_write
from ..io.safetensors_header import copy_with_metadata, read_header, read_metadata
from ..text.messages import sentence
from .messages import msg
from .prompt_tags import format_weight
from .runs import LORA_SUFFIX, RunFile, RunInfo
from .summary import summary_from_metadata

# ":" and ">" end a name inside <lora:NAME:W>, "=" makes the hosts read it as a parameter, "<" opens
# a tag; the rest cannot be in a Windows file name.
FORBIDDEN_CHARS = '<>:"/\\|?*='
PREVIEW_SUFFIX = ".preview.png"
SIDECAR_SUFFIXES = (".json", ".preview.png", ".png", ".jpg", ".jpeg", ".webp", ".txt", ".description.txt",
                    ".preview.jpg", ".preview.jpeg", ".preview.webp")
PREVIEW_MAX_SIDE = 768
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


@dataclass
class KeepResult:
    path: str                   # the kept .safetensors
    sidecar: str                # its user-metadata .json
    preview: str | None         # its preview image
    copied: bool                # False when the chosen file already had the final name
    prompt_tag: str             # what the Lora card inserts, e.g. "<lora:dreamgirl:0.6>"
    warnings: list[str] = field(default_factory=list)


def validate_name(name: str) -> str:
    """The final name as a file stem (``.safetensors`` dropped); raises on names a prompt cannot hold."""
    stem = (name or "").strip()
    if stem.lower().endswith(LORA_SUFFIX):
        stem = stem[: -len(LORA_SUFFIX)].rstrip()
    if not stem:
        raise TrainerError(msg("keep.empty_name"), msg("keep.empty_name.advice"))
    bad = sorted({c for c in stem if c in FORBIDDEN_CHARS or ord(c) < 32})
    if bad:
        raise TrainerError(msg("keep.bad_characters", name=repr(stem), characters=' '.join(repr(c) for c in bad)),
                           msg("keep.bad_characters.advice"))
    if stem.startswith(".") or stem.endswith(".") or stem.lower() in _RESERVED:
        raise TrainerError(msg("keep.reserved_name", name=repr(stem)), msg("keep.reserved_name.advice"))
    return stem


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _stem_elsewhere(root: str | None, stem: str, dest: str) -> list[str]:
    """Other files under ``root`` the hosts would also call ``stem`` (one of them shadows the other)."""
    if not root or not os.path.isdir(root):
        return []
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.lower().endswith((LORA_SUFFIX, ".pt", ".ckpt")) and os.path.splitext(name)[0] == stem:
                path = os.path.join(folder, name)
                if not _same_file(path, dest):
                    found.append(path)
    return found


def sidecar_data(*, activation_text: str, preferred_weight: float, notes: str, description: str = "",
                 sd_version: str = "Unknown", negative_text: str = "") -> dict[str, Any]:
    """The keys the hosts' card editor writes and their insert-into-prompt action reads."""
    return {"description": description, "sd version": sd_version, "activation text": activation_text,
            "preferred weight": float(preferred_weight), "negative text": negative_text, "notes": notes}


def _write_json(path: str, data: dict) -> None:
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=4, ensure_ascii=False)


def _write_preview(path: str, preview) -> None:
    from PIL import Image

    from ..data.images import load_image

    img = load_image(preview) if isinstance(preview, (str, os.PathLike)) else preview
    if not isinstance(img, Image.Image):
        raise TrainerError(msg("keep.bad_preview"), msg("keep.bad_preview.advice"))
    img = img.convert("RGB")
    img.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")


def _notes(source: RunFile, meta: dict[str, str], extra: str) -> str:
    summary = summary_from_metadata(meta)
    lines = [str(msg("keep.kept_from", stem=source.stem, label=source.label))] + summary.lines()
    if extra:
        lines += ["", extra.strip()]
    return "\n".join(lines)


def keep_epoch(source: RunFile | str, name: str, *, dest_dir: str | None = None, overwrite: bool = False,
               activation_text: str | None = None, preferred_weight: float = 0.6, notes: str = "",
               description: str = "", negative_text: str = "", preview=None,
               lora_root: str | None = None) -> KeepResult:
    """Copy ``source`` (a run file or a path) to ``<dest_dir>/<name>.safetensors`` with its sidecars.

    ``activation_text`` defaults to the trigger word guessed from the metadata; ``notes`` is added
    below the training summary; ``preview`` is a PIL image or an image path. ``lora_root`` (the
    hosts' Lora folder) is searched for other files of the same name, which the hosts would
    confuse with this one. Raises ``TrainerError`` when the name is taken and ``overwrite`` is
    not set."""
    if isinstance(source, (str, os.PathLike)):
        src_path = os.fspath(source)
        stem = Path(src_path).name[: -len(LORA_SUFFIX)] if src_path.lower().endswith(LORA_SUFFIX) \
            else Path(src_path).stem
        source = RunFile(src_path, stem, "final", None)
    stem = validate_name(name)
    if not os.path.isfile(source.path):
        raise TrainerError(msg("keep.source_gone", path=source.path), msg("keep.source_gone.advice"))
    dest_dir = dest_dir or os.path.dirname(os.path.abspath(source.path))
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, stem + LORA_SUFFIX)
    same = os.path.exists(dest) and _same_file(dest, source.path)
    warnings: list[str] = []
    meta = read_metadata(source.path)
    taken = [] if same else ([dest] if os.path.exists(dest) else [])
    taken += _stem_elsewhere(lora_root, stem, dest)
    if taken and not overwrite:
        raise TrainerError(msg("keep.name_taken", name=stem, paths=', '.join(taken)), msg("keep.name_taken.advice"))
    if taken:
        warnings.append(sentence("keep.replaced", paths=', '.join(taken)))
    if not same:
        updates = {"ss_output_name": stem, "modelspec.title": stem}
        with atomic_write(dest) as tmp:
            copy_with_metadata(source.path, tmp, updates)
            expected = len(read_header(source.path)[0])
            if len(read_header(tmp)[0]) != expected:
                raise TrainerError(msg("keep.copy_differs", path=source.path), msg("keep.copy_differs.advice"))
    summary = summary_from_metadata(meta)
    if activation_text is None:
        activation_text = ", ".join(summary.trigger_words())
    sidecar = os.path.join(dest_dir, stem + ".json")
    data: dict[str, Any] = {}
    if os.path.isfile(sidecar):  # keep what the user wrote in the card editor, replace our keys
        try:
            with open(sidecar, encoding="utf-8") as fh:
                loaded = json.load(fh)
            data = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            warnings.append(sentence("keep.sidecar_rewritten", path=sidecar))
    data.update(sidecar_data(activation_text=activation_text, preferred_weight=preferred_weight,
                             notes=_notes(source, meta, notes), description=description or data.get("description", ""),
                             sd_version=summary.sd_version, negative_text=negative_text))
    _write_json(sidecar, data)
    preview_path = None
    if preview is not None:
        preview_path = os.path.join(dest_dir, stem + PREVIEW_SUFFIX)
        _write_preview(preview_path, preview)
    tag = f"<lora:{stem}:{format_weight(preferred_weight)}>"
    return KeepResult(dest, sidecar, preview_path, not same,
                      (f"{activation_text} " if activation_text else "") + tag, warnings)


# --- deleting the other epochs ----------------------------------------------------------------------

def deletion_plan(run: RunInfo, keep: list[str], include_states: bool = False) -> list[str]:
    """The run's files (and their sidecars, and with ``include_states`` their ``-state`` folders) that
    deleting "the other epochs" would remove; nothing in ``keep`` (paths) is ever listed."""
    keep_paths = [os.path.abspath(k) for k in keep]

    def kept(path: str) -> bool:
        return any(_same_file(path, k) for k in keep_paths if os.path.exists(k))

    kept_stems = {Path(k).name[: -len(LORA_SUFFIX)] for k in keep_paths if k.lower().endswith(LORA_SUFFIX)}
    plan = []
    for f in run.files:
        if not os.path.isfile(f.path) or kept(f.path) or f.stem in kept_stems:
            continue
        plan.append(f.path)
        base = os.path.join(os.path.dirname(f.path), f.stem)
        plan += [base + s for s in SIDECAR_SUFFIXES if os.path.isfile(base + s)]
        if include_states:   # a kohya run keeps states beside its files, ours in the run's log folder
            for folder in {base, os.path.join(run.log_dir, f.stem)} if run.log_dir else {base}:
                if os.path.isdir(folder + "-state"):
                    plan.append(folder + "-state")
    return plan


def delete_files(run: RunInfo, paths: list[str], *, confirm: bool, keep: list[str] = (),
                 include_states: bool = False) -> list[str]:
    """Delete ``paths`` (as listed by ``deletion_plan``); refuses without ``confirm`` and refuses any
    path the plan does not list. Returns what was deleted."""
    if not confirm:
        raise TrainerError(msg("keep.delete_unconfirmed"), msg("keep.delete_unconfirmed.advice"))
    allowed = {os.path.normcase(os.path.abspath(p)) for p in deletion_plan(run, list(keep), include_states)}
    foreign = [p for p in paths if os.path.normcase(os.path.abspath(p)) not in allowed]
    if foreign:
        raise TrainerError(msg("keep.delete_foreign", run=run.name, paths=', '.join(foreign[:3])),
                           msg("keep.delete_foreign.advice"))
    deleted = []
    for path in paths:
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
            else:
                continue
        except OSError as err:
            raise TrainerError(msg("keep.delete_failed", path=path, reason=err.strerror or err),
                               msg("keep.delete_failed.advice", count=len(deleted))) from None
        deleted.append(path)
    run.files = [f for f in run.files if os.path.exists(f.path)]
    return deleted
