"""The folders a run writes into: can they be written, and what a failed write means for the user.

A save that fails for lack of space must say so, with how much to free, instead of the writer's own error
(``SafetensorError: ... os error 28``, torch's ``unexpected pos``); any other failed write names the file and
the reason. Standard library only.
"""
from __future__ import annotations

import errno
import math
import os
import secrets
import shutil

from ..errors import DiskFull, OutputError
from ..text.messages import msg, register

register({
    "disk.full": "disk full while saving {name} in {folder}; {size}{free} MB are free",
    "disk.needs": "it needs about {needed} MB and ",
    "disk.full.advice": "free {short} MB or more, or choose another output folder (output_dir); files saved before "
                        "are kept, and a run with save_state resumes from its newest -state folder",
    "disk.denied": "permission denied",
    "disk.in_the_way": "a file is in the way of the folder",
    "disk.save_failed": "could not save {name} in {folder}: {reason}",
    "disk.save_failed.advice": "check that the output folder (output_dir) can be written and is not full, or choose "
                               "another one; files saved before are kept",
    "disk.folder_full": "{setting} {folder} is on a full disk ({free} MB free)",
    "disk.folder_full.advice": "free some space there, or choose another folder for {setting}",
    "disk.unwritable": "{setting} {folder} cannot be written: {reason}",
    "disk.unwritable.advice": "choose a folder you may write to for {setting}, or fix the folder's permissions",
})

MB = 2**20
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# how the writers that do not raise OSError report a full disk (safetensors: Rust's io::Error text)
_FULL_TEXTS = ("no space left on device", "os error 28", "storagefull", "disk quota exceeded", "os error 122",
               "not enough space on the disk", "os error 112")
# torch.save's report of a short write: the reason is not in the text, so the free space decides
_SHORT_WRITE_TEXTS = ("unexpected pos", "file write failed", "failed writing")


def free_bytes(path: str) -> int | None:
    """Free bytes on the file system of ``path`` (or of the closest folder above it that exists)."""
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    try:
        return shutil.disk_usage(current).free
    except OSError:
        return None


def _is_write_error(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return True
    text = str(err).lower()
    return type(err).__name__ == "SafetensorError" or any(t in text for t in _FULL_TEXTS + _SHORT_WRITE_TEXTS)


def _is_full(err: BaseException, path: str, needed: int) -> bool:
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    text = str(err).lower()
    if any(t in text for t in _FULL_TEXTS):
        return True
    free = free_bytes(path)
    return any(t in text for t in _SHORT_WRITE_TEXTS) and free is not None and free < needed


def write_error(err: BaseException, path: str, needed: int, what: str = "") -> OutputError | None:
    """The user's error for ``err`` raised while writing ``path`` (``needed`` bytes), or None when ``err`` is
    not a failed write (a bug, an interruption: the caller re-raises it)."""
    if not _is_write_error(err):
        return None
    name = what or os.path.basename(os.path.normpath(path))
    folder = os.path.dirname(os.path.abspath(path))
    if _is_full(err, path, needed):
        free = free_bytes(path) or 0
        size = msg("disk.needs", needed=math.ceil(needed / MB)) if needed > 0 else ""
        short = max(1, math.ceil((needed * 1.1 - free) / MB)) if needed > 0 else 100
        return DiskFull(msg("disk.full", name=name, folder=folder, size=size, free=free // MB),
                        msg("disk.full.advice", short=short))
    if isinstance(err, PermissionError):
        reason = msg("disk.denied")
    elif isinstance(err, OSError):
        reason = err.strerror or str(err)
    else:
        reason = str(err)
    return OutputError(msg("disk.save_failed", name=name, folder=folder, reason=reason), msg("disk.save_failed.advice"))


def check_writable(folder: str, setting: str) -> None:
    """Create ``folder`` if needed and write and remove a small file in it; ``OutputError`` naming ``setting``
    when that fails. Run before the expensive work (loading the model, caching latents)."""
    probe = os.path.join(folder, f".lora_trainer-write-test-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        if err.errno in _FULL_ERRNOS:
            raise DiskFull(msg("disk.folder_full", setting=setting, folder=folder, free=(free_bytes(folder) or 0) // MB),
                           msg("disk.folder_full.advice", setting=setting)) from None
        if isinstance(err, (NotADirectoryError, FileExistsError)):
            reason = msg("disk.in_the_way")
        elif isinstance(err, PermissionError):
            reason = msg("disk.denied")
        else:
            reason = err.strerror or str(err)
        raise OutputError(msg("disk.unwritable", setting=setting, folder=folder, reason=reason),
                          msg("disk.unwritable.advice", setting=setting)) from None
    finally:
        try:
            os.remove(probe)
        except OSError:
            pass
