"""Does this Python environment hold libraries the trainer can run on, without touching the host's?

Pure Python (no torch import): ``install.py`` runs it under the WebUI's Python at every start.
The rules are the library breakpoints measured against the WebUI hosts' pinned stacks: pip's
metadata accepts combinations that fail at import time (e.g. peft ≥ 0.15 with accelerate
0.21), so compatibility is decided here by capability, not by pip.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# What the trainer imports, with the floor below which it does not run at all.
FLOORS = {"torch": "2.0", "transformers": "4.30", "accelerate": "0.21", "safetensors": "0.3.1",
          "diffusers": "0.28", "peft": "0.9", "Pillow": "9.5", "numpy": "1.23"}
# (package, from version, needs, at least): versions of ours that pip accepts next to a host
# but that fail at import time below that host library version (measured).
IMPORT_BREAKPOINTS = (("diffusers", "0.32", "transformers", "4.37"),
                      ("peft", "0.15", "accelerate", "0.32.1"),
                      ("peft", "0.14", "transformers", "4.36"))
# Host-owned packages we never install or upgrade ourselves.
HOST_OWNED = ("torch", "transformers", "accelerate", "safetensors", "Pillow", "numpy")


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


def _at_least(version: str | None, floor: str) -> bool:
    return parse_version(version) >= parse_version(floor)


@dataclass
class EnvCheck:
    ok: bool
    problems: list[str] = field(default_factory=list)
    to_install: dict[str, str] = field(default_factory=dict)   # package → pip requirement spec
    blocked: bool = False   # the host itself is too old: installing our packages cannot help

    def pip_command(self) -> str:
        specs = " ".join(f'"{name}{spec}"' for name, spec in self.to_install.items())
        return f"python -m pip install {specs}" if specs else ""


def wanted_ranges(versions: dict[str, str | None]) -> dict[str, str]:
    """The diffusers/peft ranges that run next to this host's transformers and accelerate."""
    transformers, accelerate = versions.get("transformers"), versions.get("accelerate")
    if not _at_least(transformers, "4.37"):
        return {"diffusers": ">=0.28,<0.32", "peft": ">=0.9,<0.14"}
    if not _at_least(accelerate, "0.32.1"):
        return {"diffusers": ">=0.28,<0.38", "peft": ">=0.9,<0.15"}
    return {"diffusers": ">=0.28,<0.38", "peft": ">=0.9,<0.22"}


def check_environment(versions: dict[str, str | None]) -> EnvCheck:
    """Decide from installed versions (name → version or None) whether training can run."""
    problems: list[str] = []
    for name in HOST_OWNED:
        version = versions.get(name)
        if version is None:
            problems.append(f"{name} is not installed in this Python environment")
        elif not _at_least(version, FLOORS[name]):
            problems.append(f"{name} {version} is older than {FLOORS[name]}, the oldest the trainer runs on")
    if problems:
        return EnvCheck(False, problems, blocked=True)

    to_install: dict[str, str] = {}
    wanted = wanted_ranges(versions)
    for name in ("diffusers", "peft"):
        version = versions.get(name)
        if version is None or not _at_least(version, FLOORS[name]):
            problems.append(f"{name} is missing" if version is None else f"{name} {version} is too old")
            to_install[name] = wanted[name]
            continue
        for package, since, needs, at_least in IMPORT_BREAKPOINTS:
            if package == name and _at_least(version, since) and not _at_least(versions.get(needs), at_least):
                problems.append(f"{name} {version} needs {needs} ≥ {at_least}, this WebUI has {versions.get(needs)}")
                to_install[name] = wanted[name]
                break
    return EnvCheck(not problems, problems, to_install)


def installed_versions(names=tuple(FLOORS)) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
