"""Optional packages installed when a user asks for them (the WD14 tagger's onnxruntime), through the gate.

As at a WebUI start (``run.py``): every installed distribution and the WebUI's pins go into a constraints
file, pip plans a dry run under it, and the plan is checked; only a plan that adds packages and changes
nothing the WebUI has is installed, at the dry run's exact versions. Anything else is refused with the
reason and the command to run by hand. Never raises for a pip problem; standard library only.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..text.messages import Joined, msg, sentence
from . import gate
from .host import detect_host
from .versions import canonical, installed_distributions

# name → (pip spec, import name, what it is for). onnxruntime 1.23 is the newest with wheels for Python 3.10
# (and 3.11–3.13); it runs with the WebUIs' numpy 1.26 and protobuf 3.20.
EXTRAS = {"onnxruntime": (">=1.17,<1.24", "onnxruntime", msg("install.feature.wd14"))}


@dataclass
class OnRequestResult:
    status: str                     # "present" | "installed" | "would install" | "refused" | "failed"
    message: str                    # one sentence for the user (keyed: ``localized`` gives it in Chinese)
    command: str = ""               # what to run by hand (refused, failed, would install)
    planned: dict[str, str] = field(default_factory=dict)   # name → version pip chose

    @property
    def ok(self) -> bool:
        return self.status in ("present", "installed")


def _importable(module: str) -> bool:
    importlib.invalidate_caches()
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _listing(plan: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in plan.items())


def install_on_request(name: str, *, dry_run: bool = False, extension_root=None, env=None) -> OnRequestResult:
    """Install the optional package ``name`` (a key of ``EXTRAS``) into this Python if the gate allows it.

    ``dry_run``: only say what would be installed. ``extension_root``: where to look for the WebUI (default:
    two folders above this extension); ``env``: the environment (``INDEX_URL``, ``LORA_TRAINER_PIP_ARGS``).
    """
    if name not in EXTRAS:
        raise ValueError(f"'{name}' is not an optional package (choose from {', '.join(EXTRAS)})")  # internal: our code names it
    spec, module, feature = EXTRAS[name]
    python = sys.executable
    env = os.environ if env is None else env
    specs = {name: spec}
    by_hand = gate.manual_command(python, specs)
    if _importable(module):
        return OnRequestResult("present", sentence("install.present", name=name, feature=feature))
    try:
        extra = gate.extra_pip_args(env)
    except gate.PipArgsError as err:
        return OnRequestResult("failed", sentence("install.not_installed", name=name, error=err.args[0]), by_hand)
    root = extension_root or Path(__file__).resolve().parents[2]
    host = detect_host(root, env=env)
    index_url = env.get("INDEX_URL") or None
    installed = installed_distributions()
    free = {canonical(name)}
    with tempfile.TemporaryDirectory(prefix="lora-trainer-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(gate.constraints_text(installed, host.pins, free, host.names), encoding="utf-8")
        dry = gate.dry_run(python, specs, constraints, extra, index_url)
        if dry.conflict:
            blockers = ", ".join(f"{installed[canonical(b)][0]} {installed[canonical(b)][1]}"
                                 if canonical(b) in installed else b for b in dry.blockers)
            why = (sentence("install.needs_changed", blockers=blockers) if blockers else
                   sentence("install.no_version_fits"))
            return _refused(name, feature, sentence("install.why_conflict", why=why, conflict=dry.conflict), by_hand)
        if dry.error:
            return OnRequestResult("failed", sentence("install.not_installed_by_hand", name=name, error=dry.error,
                                                      command=by_hand), by_hand)
        problems = gate.check_plan(dry.plan, installed, host.pins, free, dry.sources)
        if problems:
            return _refused(name, feature, Joined(problems, "; "), by_hand)
        planned = {n: v for n, v in dry.plan.values()}
        exact = {name: f"=={dry.plan[canonical(name)][1]}"} if canonical(name) in dry.plan else specs
        command = gate.manual_command(python, exact)
        if dry_run:
            return OnRequestResult("would install", sentence("install.would_install_for", feature=feature,
                                                             planned=_listing(planned) or msg("install.nothing"),
                                                             command=command), command, planned)
        deps = {n: v for key, (n, v) in dry.plan.items() if key not in free}
        constraints.write_text(gate.constraints_text(installed, host.pins, free, host.names, deps), encoding="utf-8")
        error = gate.install_with_subprocess(python, gate.install_args(exact, constraints, extra), index_url)
    after = installed_distributions()
    moved = [(n, v, after.get(key, ("", None))[1]) for key, (n, v) in installed.items()
             if key not in free and after.get(key, ("", None))[1] != v]
    if moved:   # cannot happen with everything frozen; said plainly if it ever does
        restore = f'"{python}" -m pip install ' + " ".join(f'"{n}=={v}"' for n, v, _ in moved)
        changes = Joined((Joined([f"{n} {v} → ", new or msg("install.removed")], "") for n, v, new in moved), ", ")
        return OnRequestResult("failed", sentence("install.changed_host", changes=changes, restore=restore),
                               restore, planned)
    if error:
        return OnRequestResult("failed", sentence("install.not_installed_by_hand", name=name, error=error,
                                                  command=command), command, planned)
    if not _importable(module):
        return OnRequestResult("failed", sentence("install.not_found_after", module=module, command=command),
                               command, planned)
    return OnRequestResult("installed", sentence("install.installed_for", planned=_listing(planned), feature=feature),
                           "", planned)


def _refused(name: str, feature, why: str, command: str) -> OnRequestResult:
    return OnRequestResult("refused", sentence("install.refused_for", name=name, feature=feature, why=why,
                                               command=command), command)
