"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A crash or kill while writing leaves the previous file untouched and, at worst, a
``.<name>.tmp-<pid>-<random>`` file (or folder, for a training state) next to it that
``cleanup_stale_temps`` removes. Files get the user's usual permissions (the umask), not the
owner-only mode of a temp file, so a WebUI running as another user can read them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<rand>[0-9a-f]+)$")
STALE_AFTER_S = 3600.0


def temp_path_for(path: str | os.PathLike) -> Path:
    """A fresh temp-file path next to ``path``: ``.<name>.tmp-<pid>-<random>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path) -> None:
    """The mode a plain ``open(path, "w")`` would have given (mkstemp-style writers give 0600)."""
    if os.name == "posix":
        os.chmod(path, (stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH)
                 & ~_umask())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows needs write access to flush
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open folders; NTFS journals the rename itself
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some network/FUSE filesystems refuse fsync on folders
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _replace(src: Path, dst: Path) -> None:
    for attempt in range(10):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            # Windows: the target may be open for a moment (an antivirus scan, a viewer).
            if sys.platform != "win32" or attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``path``, on error it is removed.

    The caller creates the file at the yielded path (with any writer). ``path``'s folder
    must exist. Either the complete new file or the previous file is at ``path`` afterwards.
    ``durable=False`` skips the fsyncs: still whole after a crash of the program, not after a
    power cut (for many small files written together; call ``sync_folder`` once after them).
    """
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written to the temporary file for {path}")  # internal: writer bug
        _usual_mode(tmp)
        if durable:
            _fsync_file(tmp)
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def sync_folder(folder: str | os.PathLike) -> None:
    """Make the renames of files written with ``durable=False`` in ``folder`` survive a power cut."""
    _fsync_dir(Path(folder))


def save_safetensors_atomic(tensors: Mapping[str, "object"], path: str | os.PathLike,
                            metadata: Mapping[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` to ``path`` atomically; metadata values must be strings."""
    from safetensors.torch import save_file

    if metadata is not None:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"safetensors metadata must map strings to strings; not: {', '.join(map(str, bad))}")
        metadata = dict(metadata)
    with atomic_write(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=metadata)


def _pid_running(pid: int) -> bool | None:
    """True/False on POSIX; None where it cannot be checked safely (Windows os.kill terminates)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def cleanup_stale_temps(directory: str | os.PathLike, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temp files of ``atomic_write`` (and temp state folders) whose writer is gone; return them.

    A temp file is stale when its process is no longer running (POSIX) or when it has not
    changed for ``stale_after_s`` seconds (any OS; e.g. a process id reused since the crash).
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    now = time.time()
    for entry in directory.iterdir():
        match = _TEMP_RE.match(entry.name)
        if not match:
            continue
        try:
            folder = entry.is_dir() and not entry.is_symlink()
            if not folder and not entry.is_file():
                continue
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        pid = int(match["pid"])
        running = _pid_running(pid)
        if running is False or age > stale_after_s:
            try:
                shutil.rmtree(entry) if folder else entry.unlink()
            except FileNotFoundError:
                continue
            except OSError:
                continue  # e.g. still open on Windows: try again next time
            removed.append(entry)
    return removed
