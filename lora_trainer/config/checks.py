"""Checks of single settings that need more than a number range: paths, the output name, the resolution.

Each returns problems as sentences that start with the setting's name (the tab puts its label there) and
say how to fix it. Nothing here creates or writes a file: ``io/disk.py`` probes the output folder for real
just before a run starts.
"""
from __future__ import annotations

import math
import os
from typing import Any

# The training size per side: the VAE halves it three times (multiples of 64 keep the UNet's levels whole);
# beyond 4096 a single latent does not fit any GPU's memory.
MIN_RESOLUTION = 64
MAX_RESOLUTION = 4096
RESOLUTION_STEP = 64
# A file name holds 255 bytes on the common file systems; the trainer adds up to ~60 characters to the name
# (-000001-w0.75-15.png and a temporary .tmp-<pid>-<random> suffix while writing).
MAX_OUTPUT_NAME_BYTES = 180

_RESOLUTION_HINT = "512 for SD1.5, 768 for SD2, 1024 for SDXL"


def round_to(value: int, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def resolution_problems(sides: tuple[int, int]) -> list[str]:
    """One sentence per wrong side (a square's two sides are one)."""
    problems = []
    for side in dict.fromkeys(sides):
        if side < MIN_RESOLUTION:
            problems.append(f"resolution {side} is too small; use at least {MIN_RESOLUTION} ({_RESOLUTION_HINT})")
        elif side > MAX_RESOLUTION:
            problems.append(f"resolution {side} is too large; use at most {MAX_RESOLUTION} ({_RESOLUTION_HINT})")
        elif side % RESOLUTION_STEP:
            problems.append(f"resolution {side} is not a multiple of {RESOLUTION_STEP}; "
                            f"use {round_to(side, RESOLUTION_STEP)}")
    return problems


def output_name_problems(name: str) -> list[str]:
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        return [f"output_name '{name}' must be a plain file name without folders"]
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return [f"output_name {name!r} holds control characters (such as a NUL byte or a line break), which "
                f"file names cannot hold; use letters, digits, spaces, - and _"]
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size > MAX_OUTPUT_NAME_BYTES:
        return [f"output_name is {size} bytes long (UTF-8); the files of a run add to it and a file name holds "
                f"at most 255 bytes: use a name of at most {MAX_OUTPUT_NAME_BYTES} bytes (about "
                f"{MAX_OUTPUT_NAME_BYTES // 3} Chinese characters or {MAX_OUTPUT_NAME_BYTES} Latin letters)"]
    return []


def _nearest_existing(path: str) -> str:
    """``path`` or the closest folder above it that exists (what creating it would start from)."""
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def folder_problems(name: str, path: str, what: str, advice: str = "") -> list[str]:
    """A folder the run reads: missing, or a file in its place."""
    if os.path.isdir(path):
        return []
    tail = f" ({advice})" if advice else ""
    if os.path.lexists(path):
        return [f"{name} {path} is a file, not a folder; choose the {what} folder{tail}"]
    return [f"{name}: the {what} folder {path} was not found; check the path{tail}"]


def output_folder_problems(name: str, path: str) -> list[str]:
    """A folder the run writes into: it, or the folder it will be created in, must be a writable folder."""
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        if os.path.abspath(path) == existing:
            return [f"{name} {path} is a file, not a folder; choose a folder, or remove or rename the file"]
        return [f"{name} {path} cannot be created: {existing} is a file, not a folder; choose another folder"]
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == os.path.abspath(path) else f" (it would be created in {existing})"
        return [f"{name} {path} cannot be written{where}: permission denied; choose a folder you may write to, "
                f"or change the folder's permissions"]
    return []


def file_problems(name: str, path: str, what: str) -> list[str]:
    """A file or folder that must exist (the base model: a checkpoint file or a diffusers folder)."""
    if os.path.exists(path):
        return []
    return [f"{name}: the {what} {path} was not found; check the path"]


_KIND = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list"}


def type_problem(name: str, base: type, optional: bool, value: Any) -> str | None:
    """A setting's value of the wrong type (set in code or a form rather than read by ``files.coerce``)."""
    if value is None:
        return None if optional else f"{name} needs a value"
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return None
    if base is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif base is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, base) and not isinstance(value, bool)
    if not ok:
        return f"{name} = {value!r} is not {_KIND.get(base, base.__name__)}"
    if base is float and not math.isfinite(value):
        return f"{name} is {value}; it must be a finite number"
    return None


def path_problems(cfg) -> list[str]:
    """The paths of a run: what it reads exists, where it writes can be written."""
    problems: list[str] = []
    if not cfg.pretrained_model_name_or_path:
        problems.append("pretrained_model_name_or_path is empty: choose the base model checkpoint")
    else:
        problems += file_problems("pretrained_model_name_or_path", cfg.pretrained_model_name_or_path,
                                  "base model")
    if not cfg.train_data_dir:
        problems.append("train_data_dir is empty: choose the folder with your training images")
    else:
        problems += folder_problems("train_data_dir", cfg.train_data_dir, "training images",
                                    "the folder that holds the <repeats>_<name> folders")
    if cfg.reg_data_dir:
        problems += folder_problems("reg_data_dir", cfg.reg_data_dir, "regularization", "or leave it empty")
    if not cfg.output_dir:
        problems.append("output_dir is empty: choose where the LoRA files go")
    else:
        problems += output_folder_problems("output_dir", cfg.output_dir)
    if cfg.logging_dir:
        problems += output_folder_problems("logging_dir", cfg.logging_dir)
    if cfg.validation_data_dir:
        problems += folder_problems("validation_data_dir", cfg.validation_data_dir, "validation images",
                                    "or leave it empty")
    if cfg.resume:
        problems += folder_problems("resume", cfg.resume, "training state", "pick a '-state' folder of a run")
    return problems
