"""Output names a user types, made safe as file names on every system, and the files a run would replace.

Torch- and gradio-free. Letters of any script (Chinese names included) are kept; only what a file
system refuses or reads as a folder is replaced.
"""
from __future__ import annotations

import os
import re
import unicodedata

from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)

DEFAULT_NAME = "lora"
MAX_LENGTH = 100
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}
_LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt")


def sanitize_output_name(text: str | None) -> tuple[str, list[str]]:
    """(a safe file name without extension, what was changed in plain words)."""
    raw = unicodedata.normalize("NFC", str(text or "")).strip()
    notes: list[str] = []
    name = raw
    for suffix in _LORA_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            notes.append(sentence("name.extension", suffix=suffix))
            break
    if "/" in name or "\\" in name:
        notes.append(sentence("name.folders"))
    cleaned = _FORBIDDEN.sub("_", name)
    if cleaned != name and not any("folders" in n for n in notes):
        notes.append(sentence("name.characters"))
    trimmed = cleaned.strip().lstrip(".").rstrip(". ")
    if trimmed != cleaned.strip():
        notes.append(sentence("name.dots"))
    cleaned = trimmed
    if cleaned.lower().split(".")[0] in _WINDOWS_RESERVED:
        cleaned = f"{cleaned}_"
        notes.append(sentence("name.reserved"))
    if len(cleaned) > MAX_LENGTH:
        cleaned = cleaned[:MAX_LENGTH].rstrip(". ")
        notes.append(sentence("name.shortened", length=MAX_LENGTH))
    if not cleaned.strip("_ "):
        notes = [sentence("name.empty", name=DEFAULT_NAME)]
        cleaned = DEFAULT_NAME
    return cleaned, notes


def _is_run_file(entry: str, name: str) -> bool:
    """The files a run named ``name`` writes into its output folder: name.safetensors, name-000001…,
    name-interrupted… (its training states go to a run folder of its own, so none is replaced)."""
    stem, ext = os.path.splitext(entry)
    if ext.lower() == ".safetensors":
        if stem == name or stem == f"{name}-interrupted":
            return True
        prefix = f"{name}-"
        return stem.startswith(prefix) and len(stem) == len(prefix) + 6 and stem[len(prefix):].isdigit()
    return False


def files_to_overwrite(output_dir: str, name: str) -> list[str]:
    """Existing LoRA files in ``output_dir`` that a run named ``name`` would replace."""
    try:
        entries = sorted(os.listdir(output_dir))
    except OSError:
        return []
    return [os.path.join(output_dir, e) for e in entries if _is_run_file(e, name)]
