"""Which files and folders a caller may name: everything on a local WebUI, only the owner's folders on a shared one.

A WebUI started with ``--listen`` (or ``--share``, ``--ngrok``, ``--server-name``) serves other people: a
setting they send (an output folder, a dataset, a state to resume, a run to evaluate) must stay inside
the folders the owner allowed. Paths are compared after resolving ``~``, ``..``, symbolic links and
relative paths, and case-insensitively where the file system is; a refused path says which setting named
it and which folders are allowed, and nothing about whether it exists. Local single-user use allows any
path, as the hosts do.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..text.messages import msg
from .schema import TrainConfig


def resolved(path: str | os.PathLike) -> str:
    """The absolute, symlink-free form of ``path`` (relative paths against the working folder)."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _key(path: str) -> str:
    return os.path.normcase(path)


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Is ``path`` ``folder`` itself or below it, both resolved?"""
    path, folder = _key(resolved(path)), _key(resolved(folder))
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:   # different drives (Windows)
        return False


def same_place(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Do two paths name the same file or folder (``out/./x`` and ``out/x``; ``OUT`` and ``out`` where the
    file system ignores case)?"""
    if _key(resolved(a)) == _key(resolved(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _ignores_case(folder: str) -> bool:
    """Does the file system holding ``folder`` ignore the case of names (Windows, macOS by default)?"""
    folder = resolved(folder)
    while folder and not os.path.exists(folder):
        folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
    name = os.path.basename(folder)
    if not name or name.upper() == name.lower():
        return sys.platform in ("win32", "darwin")
    other = os.path.join(os.path.dirname(folder), name.swapcase())
    try:
        return os.path.samefile(folder, other)
    except OSError:
        return False


def same_output(folder_a: str, name_a: str, folder_b: str, name_b: str) -> bool:
    """Would two runs write the same files (``out/./x`` and ``out/x``; ``X`` and ``x`` where case is ignored)?"""
    if not same_place(folder_a or ".", folder_b or "."):
        return False
    return name_a == name_b or (name_a.lower() == name_b.lower() and _ignores_case(folder_a or "."))


def path_fields() -> list[dataclasses.Field]:
    """The ``TrainConfig`` fields that name a file or folder (``opt(path=...)``)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("path")]


@dataclass(frozen=True)
class AllowedFolders:
    """``confined``: only paths inside ``roots``, or one of the ``files``, may be named; otherwise any path may."""
    roots: tuple[str, ...] = field(default_factory=tuple)
    confined: bool = False
    files: tuple[str, ...] = field(default_factory=tuple)   # single files allowed wherever they lie (resolved)

    @classmethod
    def anywhere(cls) -> "AllowedFolders":
        return cls((), False)

    @classmethod
    def only(cls, roots, files=()) -> "AllowedFolders":
        """Paths inside ``roots``, and the ``files`` themselves (the checkpoints a WebUI lists, which may be
        symbolic links to a folder elsewhere)."""
        unique: list[str] = []
        for root in roots:
            if root and resolved(root) not in unique:
                unique.append(resolved(root))
        return cls(tuple(unique), True, tuple(sorted({_key(resolved(f)) for f in files if f})))

    def allows(self, path: str | os.PathLike) -> bool:
        return (not self.confined or any(inside(path, root) for root in self.roots)
                or _key(resolved(path)) in self.files)

    def check(self, path: str | os.PathLike, setting: str) -> str:
        """``path`` resolved, or ``ConfigError`` when it lies outside the allowed folders."""
        if not self.confined:
            return os.fspath(path)
        if "\0" in os.fspath(path):
            raise ConfigError(msg("folders.nul", setting=setting), msg("folders.nul.advice"))
        if self.allows(path):
            return resolved(path)
        raise ConfigError(msg("folders.outside", setting=setting, path=path),
                          msg("folders.outside.advice", roots=", ".join(self.roots)))

    def check_config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with every path setting resolved; ``ConfigError`` naming each one outside the allowed folders."""
        if not self.confined:
            return cfg
        changes, problems = {}, []
        for f in path_fields():
            value = getattr(cfg, f.name)
            if not value:
                continue
            try:
                changes[f.name] = self.check(value, f.name)
            except ConfigError as err:
                problems += err.problems
        if problems:
            raise ConfigError(problems, msg("folders.outside.advice", roots=", ".join(self.roots)))
        return cfg.replace(**changes)
