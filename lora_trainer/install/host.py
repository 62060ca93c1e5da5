"""Which WebUI runs us, and what it pins: read from files, before the WebUI itself exists.

The WebUI runs ``install.py`` with its root as the working directory and first on PYTHONPATH.
Its pins are the ``name==version`` lines of its requirements file, parsed exactly as the
WebUI's own ``requirements_met()`` does at every start (it reinstalls the file when any differ).
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .versions import canonical, installed_versions, local_label

# The WebUI's own pattern (modules/launch_utils.py, A1111 1.10 and Forge alike).
REQUIREMENT_RE = re.compile(r"\s*([-_a-zA-Z0-9]+)\s*(?:==\s*([-+_.a-zA-Z0-9]+))?\s*")


@dataclass
class Host:
    root: Path | None = None                  # the WebUI folder, None outside a WebUI
    kind: str = "none"                        # "a1111", "forge" (Forge and its forks) or "none"
    requirements_file: Path | None = None
    pins: dict[str, str] = field(default_factory=dict)    # canonical name → pinned version
    names: dict[str, str] = field(default_factory=dict)   # canonical name → name as the file spells it
    bnb_managed: bool = False                 # the WebUI installs bitsandbytes itself (Forge)

    def pin(self, name: str) -> str | None:
        return self.pins.get(canonical(name))

    def as_dict(self) -> dict:
        return {"kind": self.kind, "root": str(self.root) if self.root else None,
                "requirements_file": str(self.requirements_file) if self.requirements_file else None,
                "pins": {self.names[key]: version for key, version in self.pins.items()},
                "bnb_managed": self.bnb_managed}


def parse_pins(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """``name==version`` lines → ({canonical name: version}, {canonical name: name as written}).

    Unpinned lines, comments, options and URLs carry no pin and are skipped; CR is stripped;
    local labels (``+cu121``) are kept; a later line for the same name wins.
    """
    pins: dict[str, str] = {}
    names: dict[str, str] = {}
    for line in text.replace("\r", "").split("\n"):
        if not line.strip():
            continue
        match = REQUIREMENT_RE.match(line)
        if not match:
            continue
        name, version = match.group(1).strip(), (match.group(2) or "").strip()
        if version and not name.startswith("-"):
            pins[canonical(name)] = version
            names[canonical(name)] = name
    return pins, names


def _is_webui_root(path: Path) -> bool:
    return (path / "launch.py").is_file() and (path / "modules").is_dir()


def find_webui_root(extension_root: str | os.PathLike | None = None, cwd: str | None = None,
                    pythonpath: str | None = None) -> Path | None:
    """The WebUI folder: first on PYTHONPATH, else the working directory, else two levels up."""
    candidates: list[Path] = []
    pythonpath = os.environ.get("PYTHONPATH", "") if pythonpath is None else pythonpath
    candidates += [Path(p) for p in pythonpath.split(os.pathsep) if p]
    candidates.append(Path(cwd or os.getcwd()))
    if extension_root:
        candidates.append(Path(extension_root).resolve().parent.parent)
    for candidate in candidates:
        try:
            if _is_webui_root(candidate):
                return candidate.resolve()
        except OSError:
            continue
    return None


def requirements_file(root: Path | None, cwd: str | None = None, env: dict | None = None) -> Path | None:
    """As the WebUI finds it: ``REQS_FILE`` or ``requirements_versions.txt``, relative to the working
    directory, then to the WebUI folder; forks that have only ``requirements.txt`` use that."""
    env = os.environ if env is None else env
    name = env.get("REQS_FILE") or "requirements_versions.txt"
    bases = [Path(cwd or os.getcwd())] + ([root] if root else [])
    for base in bases:
        path = base / name
        if path.is_file():
            return path
    if root and not env.get("REQS_FILE") and (root / "requirements.txt").is_file():
        return root / "requirements.txt"
    return None


def _manages_bitsandbytes(root: Path) -> bool:
    """Forge installs a fixed bitsandbytes at every start; Forge Neo installs its own from the launcher."""
    if (root / "modules_forge" / "bnb_installer.py").is_file():
        return True
    try:
        text = (root / "modules" / "launch_utils.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "bitsandbytes" in text


def detect_host(extension_root=None, cwd: str | None = None, env: dict | None = None) -> Host:
    env = os.environ if env is None else env
    root = find_webui_root(extension_root, cwd, env.get("PYTHONPATH", ""))
    host = Host(root=root)
    if root is None:
        return host
    host.kind = "forge" if (root / "modules_forge").is_dir() else "a1111"
    host.bnb_managed = _manages_bitsandbytes(root)
    host.requirements_file = requirements_file(root, cwd, env)
    if host.requirements_file:
        try:
            text = host.requirements_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        host.pins, host.names = parse_pins(text)
    return host


_TORCH_CUDA_RE = re.compile(r"^cuda\s*(?::[^=\n]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


def torch_cuda(torch_version: str | None) -> str | None:
    """The CUDA version torch was built for ('12.1'), or None (CPU, ROCm, XPU, no torch).

    Read without importing torch: from the local label of its version, else from
    ``torch/version.py``, else from the CUDA runtime wheels a plain PyPI torch depends on.
    """
    if not torch_version:
        return None
    label = local_label(torch_version)
    match = re.fullmatch(r"cu(\d+?)(\d)", label)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    if label:
        return None                            # cpu, rocm…, xpu
    try:
        spec = importlib.util.find_spec("torch")  # finds the folder; does not import torch
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found = _TORCH_CUDA_RE.search(text)
        return found.group(1) if found else None
    if sys.platform.startswith("linux"):
        runtimes = installed_versions(["nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11"])
        for version in runtimes.values():
            if version:
                return ".".join(version.split(".")[:2])
    return None
