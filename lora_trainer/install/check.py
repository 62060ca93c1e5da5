"""Does this Python environment hold libraries the trainer can run on, without touching the host's?

Kept as the short import path for these checks; the rules live in :mod:`lora_trainer.install.policy`
and the status the tab shows comes from :func:`read_install_status`. Torch-free, standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .policy import FLOORS, HOST_OWNED, IMPORT_BREAKPOINTS, decide, wanted_ranges  # noqa: F401
from .status import read_install_status  # noqa: F401
from .versions import installed_versions as _installed_versions
from .versions import parse_version  # noqa: F401


@dataclass
class EnvCheck:
    ok: bool
    problems: list[str] = field(default_factory=list)
    to_install: dict[str, str] = field(default_factory=dict)   # package → pip requirement spec
    blocked: bool = False   # the host itself is too old: installing our packages cannot help

    def pip_command(self) -> str:
        specs = " ".join(f'"{name}{spec}"' for name, spec in self.to_install.items())
        return f"python -m pip install {specs}" if specs else ""


def check_environment(versions: dict[str, str | None], pins: dict[str, str] | None = None) -> EnvCheck:
    """Can training run with these installed versions (name → version or None)? Optional extras aside."""
    decision = decide(versions, pins)
    return EnvCheck(decision.ready, list(decision.problems), dict(decision.required), bool(decision.blocked))


def installed_versions(names=tuple(FLOORS)) -> dict[str, str | None]:
    return _installed_versions(names)
