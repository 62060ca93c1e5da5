"""Checks of single settings that need more than a number range: paths, the output name, the resolution.

Each returns problems as sentences that start with the setting's name (the tab puts its label there) and
say how to fix it. Nothing here creates or writes a file: ``io/disk.py`` probes the output folder for real
just before a run starts.
"""
from __future__ import annotations

import math
import os
from typing import Any

from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

# The training size per side: the VAE halves it three times (multiples of 64 keep the UNet's levels whole);
# beyond 4096 a single latent does not fit any GPU's memory.
MIN_RESOLUTION = 64
MAX_RESOLUTION = 4096
RESOLUTION_STEP = 64
# A file name holds 255 bytes on the common file systems; the trainer adds up to ~60 characters to the name
# (-000001-w0.75-15.png and a temporary .tmp-<pid>-<random> suffix while writing).
MAX_OUTPUT_NAME_BYTES = 180

def round_to(value: int, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def resolution_problems(sides: tuple[int, int]) -> list[str]:
    """One sentence per wrong side (a square's two sides are one)."""
    problems = []
    for side in dict.fromkeys(sides):
        if side < MIN_RESOLUTION:
            problems.append(sentence("config.resolution_small", side=side, limit=MIN_RESOLUTION))
        elif side > MAX_RESOLUTION:
            problems.append(sentence("config.resolution_large", side=side, limit=MAX_RESOLUTION))
        elif side % RESOLUTION_STEP:
            problems.append(sentence("config.resolution_step", side=side, step=RESOLUTION_STEP,
                                     fixed=round_to(side, RESOLUTION_STEP)))
    return problems


def output_name_problems(name: str) -> list[str]:
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        return [sentence("config.name_folders", name=name)]
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return [sentence("config.name_control", name=repr(name))]
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size > MAX_OUTPUT_NAME_BYTES:
        return [sentence("config.name_long", size=size, limit=MAX_OUTPUT_NAME_BYTES, chinese=MAX_OUTPUT_NAME_BYTES // 3)]
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
    """A folder the run reads: missing, or a file in its place (``what``, ``advice``: ``config.what.*`` and
    ``config.advice.*`` keys)."""
    if os.path.isdir(path):
        return []
    tail = msg("config.tail", advice=msg(advice)) if advice else ""
    key = "config.folder_is_file" if os.path.lexists(path) else "config.folder_missing"
    return [sentence(key, name=name, path=path, what=msg(what), tail=tail)]


def output_folder_problems(name: str, path: str) -> list[str]:
    """A folder the run writes into: it, or the folder it will be created in, must be a writable folder."""
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        if os.path.abspath(path) == existing:
            return [sentence("config.output_is_file", name=name, path=path)]
        return [sentence("config.output_in_file", name=name, path=path, existing=existing)]
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == os.path.abspath(path) else msg("config.output_where", existing=existing)
        return [sentence("config.output_denied", name=name, path=path, where=where)]
    return []


def file_problems(name: str, path: str, what: str) -> list[str]:
    """A file or folder that must exist (the base model: a checkpoint file or a diffusers folder)."""
    if os.path.exists(path):
        return []
    return [sentence("config.file_missing", name=name, path=path, what=msg(what))]


_KIND = {bool: "config.kind.bool", int: "config.kind.int", float: "config.kind.float", str: "config.kind.str",
         list: "config.kind.list"}


def type_problem(name: str, base: type, optional: bool, value: Any) -> str | None:
    """A setting's value of the wrong type (set in code or a form rather than read by ``files.coerce``)."""
    if value is None:
        return None if optional else sentence("config.needs_value", name=name)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return None
    if base is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif base is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, base) and not isinstance(value, bool)
    if not ok:
        kind = msg(_KIND[base]) if base in _KIND else base.__name__
        return sentence("config.wrong_type", name=name, value=repr(value), kind=kind)
    if base is float and not math.isfinite(value):
        return sentence("config.not_finite", name=name, value=value)
    return None


def path_problems(cfg) -> list[str]:
    """The paths of a run: what it reads exists, where it writes can be written."""
    problems: list[str] = []
    if not cfg.pretrained_model_name_or_path:
        problems.append(sentence("config.no_base_model"))
    else:
        problems += file_problems("pretrained_model_name_or_path", cfg.pretrained_model_name_or_path,
                                  "config.what.base_model")
    if not cfg.train_data_dir:
        problems.append(sentence("config.no_train_dir"))
    else:
        problems += folder_problems("train_data_dir", cfg.train_data_dir, "config.what.training",
                                    "config.advice.concepts")
    if cfg.reg_data_dir:
        problems += folder_problems("reg_data_dir", cfg.reg_data_dir, "config.what.regularization",
                                    "config.advice.or_empty")
    if not cfg.output_dir:
        problems.append(sentence("config.no_output_dir"))
    else:
        problems += output_folder_problems("output_dir", cfg.output_dir)
    if cfg.logging_dir:
        problems += output_folder_problems("logging_dir", cfg.logging_dir)
    if cfg.validation_data_dir:
        problems += folder_problems("validation_data_dir", cfg.validation_data_dir, "config.what.validation",
                                    "config.advice.or_empty")
    if cfg.resume:
        problems += folder_problems("resume", cfg.resume, "config.what.state", "config.advice.state")
    return problems
