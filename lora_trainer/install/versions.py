"""Package names and versions, read without importing the packages (standard library only)."""
from __future__ import annotations

import re
from importlib import metadata

# PEP 440's version grammar (its appendix), for deciding which installed versions pip accepts in a
# constraints file: a legacy version string there would make pip reject the whole file.
_PEP440 = re.compile(
    r"^v?(?:(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?)"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$", re.IGNORECASE)


def canonical(name: str) -> str:
    """PEP 503 name: 'Pillow' → 'pillow', 'huggingface_hub' → 'huggingface-hub'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_pep440(version: str) -> bool:
    return bool(_PEP440.match(version.strip()))


def parse_version(text: str | None) -> tuple[int, ...]:
    """'2.1.2+cu121' → (2, 1, 2); pre-release tags are dropped, as the breakpoints are all releases."""
    if not text:
        return ()
    parts = []
    for piece in re.split(r"[.+-]", text):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def at_least(version: str | None, floor: str) -> bool:
    return parse_version(version) >= parse_version(floor)


def local_label(version: str | None) -> str:
    """'2.1.2+cu121' → 'cu121'; '' when there is none."""
    return version.split("+", 1)[1] if version and "+" in version else ""


def installed_versions(names) -> dict[str, str | None]:
    """name → installed version (None when absent), for the names given, as spelled."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def installed_distributions() -> dict[str, tuple[str, str]]:
    """canonical name → (name as installed, version) for every distribution on sys.path.

    The first one found wins, as for imports and for pip.
    """
    found: dict[str, tuple[str, str]] = {}
    for dist in metadata.distributions():
        try:
            name, version = dist.metadata["Name"], dist.version
        except Exception:  # a broken dist-info folder: skip it, as pip does
            continue
        if not name or not version:
            continue
        found.setdefault(canonical(name), (name, version))
    return found
