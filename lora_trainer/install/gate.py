"""pip, fenced in: a constraints file that freezes what is installed, a dry run first, then the install.

Every installed distribution is written to the constraints file at its installed version (local
labels such as ``+cu121`` kept), and the host's ``==`` pins for what is not installed; only the
packages we install ourselves are left free. pip can then only add packages, never replace one.
The dry run's report is still checked, and the install uses the dry run's exact versions.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..text.messages import Joined, sentence
from .policy import NEVER_REQUESTED, is_protected
from .versions import canonical, is_pep440

# Options that would let pip replace what the host installed, or skip dependency checks.
FORBIDDEN_ARGS = ("-U", "--upgrade", "--force-reinstall", "-I", "--ignore-installed", "--no-deps",
                  "--upgrade-strategy")
PIP_ARGS_ENV = "LORA_TRAINER_PIP_ARGS"
BASE_ARGS = ("--only-binary=:all:",)                    # no build of anything at a WebUI start
QUIET_ARGS = ("--disable-pip-version-check", "--no-input")  # for our own pip runs (run_pip may be uv's)
TIMEOUT_S = 900


class PipArgsError(ValueError):
    pass


def extra_pip_args(env=None) -> list[str]:
    """Extra pip options from ``LORA_TRAINER_PIP_ARGS`` (e.g. ``--no-index --find-links DIR``)."""
    text = (os.environ if env is None else env).get(PIP_ARGS_ENV, "")
    args = shlex.split(text, posix=os.name != "nt")
    if os.name == "nt":   # Windows paths keep their backslashes; only the quotes go
        args = [a[1:-1] if len(a) > 1 and a[0] == a[-1] == '"' else a for a in args]
    bad = [a for a in args if a.split("=", 1)[0] in FORBIDDEN_ARGS]
    if bad:
        raise PipArgsError(sentence("install.pip_args", env=PIP_ARGS_ENV, args=" ".join(bad)))
    return args


def requested(specs: dict[str, str]) -> list[str]:
    """'name' + spec for each package; refuses outright to name a package the host owns."""
    owned = [n for n in specs if canonical(n) in {canonical(x) for x in NEVER_REQUESTED}]
    if owned:
        raise ValueError(f"refusing to request host-owned packages: {', '.join(owned)}")  # internal: our specs
    return [f"{name}{spec}" for name, spec in specs.items()]


def constraints_text(installed: dict[str, tuple[str, str]], pins: dict[str, str], free: set[str],
                     names: dict[str, str] | None = None, extra: dict[str, str] | None = None) -> str:
    """Freeze every installed distribution, then the host's pins for the ones not installed.

    ``installed``: canonical → (name, version); ``pins``: canonical → version; ``free``: canonical
    names left to pip (ours); ``extra``: name → version added last (a dry run's plan).
    """
    lines = ["# Written by the LoRA Trainer's install.py: everything installed stays as it is."]
    for key in sorted(installed):
        name, version = installed[key]
        if key in free:
            continue
        lines.append(f"{name}=={version}" if is_pep440(version) else f"# {name} {version}: not a PEP 440 version")
    for key in sorted(pins):
        if key not in installed and key not in free and is_pep440(pins[key]):
            lines.append(f"{(names or {}).get(key, key)}=={pins[key]}")
    for name, version in (extra or {}).items():
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


@dataclass
class DryRun:
    plan: dict[str, tuple[str, str]] = field(default_factory=dict)   # canonical → (name, version)
    sources: dict[str, str] = field(default_factory=dict)            # canonical → download URL
    error: str = ""        # pip failed or could not reach the package index
    conflict: str = ""     # no solution without changing a frozen package
    blockers: list[str] = field(default_factory=list)               # the frozen packages in the way
    used_report: bool = True

    @property
    def ok(self) -> bool:
        return not self.error and not self.conflict


def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, f"ERROR: pip did not finish within {int(timeout)} s"
    except OSError as err:
        return 127, f"ERROR: could not start {cmd[0]}: {err}"
    return done.returncode, (done.stdout or "") + "\n" + (done.stderr or "")


def index_args(index_url: str | None) -> list[str]:
    return ["--index-url", index_url] if index_url else []


def dry_run(python: str, specs: dict[str, str], constraints: Path, extra=(), index_url: str | None = None,
            timeout: float = TIMEOUT_S) -> DryRun:
    """``pip install --dry-run --report`` under the constraints; falls back to pip's "Would install" line."""
    tail = [*BASE_ARGS, *QUIET_ARGS, "-c", str(constraints), *index_args(index_url), *extra, *requested(specs)]
    with tempfile.TemporaryDirectory(prefix="lora-trainer-pip-") as tmp:
        report = Path(tmp) / "report.json"
        code, text = _run([python, "-m", "pip", "install", "--dry-run", "--report", str(report), *tail], timeout)
        if code != 0 and re.search(r"no such option: --report", text):
            code, text = _run([python, "-m", "pip", "install", "--dry-run", *tail], timeout)
            result = DryRun(used_report=False)
        else:
            result = DryRun()
        if code != 0:
            result.error, result.conflict, result.blockers = classify_failure(text)
            return result
        if result.used_report:
            try:
                result.plan, result.sources = parse_report(json.loads(report.read_text(encoding="utf-8")))
            except (OSError, ValueError) as err:
                result.error = sentence("install.report_unreadable", error=err)
        else:
            result.plan = parse_would_install(text)
    return result


def parse_report(data: dict) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    plan: dict[str, tuple[str, str]] = {}
    sources: dict[str, str] = {}
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        name, version = meta.get("name"), meta.get("version")
        if name and version:
            plan[canonical(name)] = (name, version)
            sources[canonical(name)] = (item.get("download_info") or {}).get("url", "")
    return plan, sources


def parse_would_install(text: str) -> dict[str, tuple[str, str]]:
    """pip's ``Would install a-1.0 b-c-2.0`` line (names may hold dashes, versions never do)."""
    plan: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("Would install "):
            for token in line[len("Would install "):].split():
                name, _, version = token.rpartition("-")
                if name and version:
                    plan[canonical(name)] = (name, version)
    return plan


_NETWORK_SIGNS = ("NewConnectionError", "Max retries exceeded", "Could not fetch URL", "Temporary failure in name",
                  "Name or service not known", "ConnectTimeoutError", "ReadTimeoutError", "(from versions: none)",
                  "ProxyError", "SSLError")


def classify_failure(text: str) -> tuple[str, str, list[str]]:
    """pip's output → (error, conflict, blockers). A conflict means: it would need a frozen package changed."""
    if re.search(r"No module named pip\b", text):
        return sentence("install.no_pip"), "", []
    if re.search(r"no such option: --dry-run", text):
        return sentence("install.old_pip"), "", []
    if "conflict is caused by" in text or "ResolutionImpossible" in text or "conflicting dependencies" in text:
        section = text.split("The conflict is caused by:", 1)[-1].split("\n\n", 1)[0]
        blockers = re.findall(r"\(constraint\)\s*([A-Za-z0-9_.\-]+)\s*==", section)
        return "", _first_per_package(section) or sentence("install.no_combination"), list(dict.fromkeys(blockers))
    errors = [line[len("ERROR:"):].strip() for line in text.splitlines() if line.startswith("ERROR:")]
    last = errors[-1] if errors else next((l.strip() for l in reversed(text.splitlines()) if l.strip()), "")
    if any(sign in text for sign in _NETWORK_SIGNS):
        return sentence("install.unreachable", last=last), "", []
    return sentence("install.pip_said", last=last) if last else sentence("install.pip_silent"), "", []


def _first_per_package(section: str) -> str:
    """pip names every version it tried; the newest per package says it: '… (and 10 older versions)'."""
    first: dict[str, str] = {}
    more: dict[str, int] = {}
    for line in section.splitlines():
        if " depends on " in line:
            text = " ".join(line.split())
            package = text.split(" ", 1)[0]
            if package in first:
                more[package] = more.get(package, 0) + 1
            else:
                first[package] = text
    return Joined((Joined([text, sentence("install.older_versions" if more[p] > 1 else "install.older_version",
                                          count=more[p]) if more.get(p) else ""], "")
                   for p, text in first.items()), "; ") if first else ""


def check_plan(plan: dict[str, tuple[str, str]], installed: dict[str, tuple[str, str]], pins: dict[str, str],
               free: set[str], sources: dict[str, str] | None = None) -> list[str]:
    """What in the plan would touch the host: a changed installed package, a pinned or protected one."""
    problems = []
    for key, (name, version) in sorted(plan.items()):
        url = (sources or {}).get(key, "")
        if url and not url.split("#", 1)[0].endswith(".whl"):
            problems.append(sentence("install.from_source", name=name, version=version))
        if key in free:
            continue
        if key in installed:
            problems.append(sentence("install.would_change", name=installed[key][0], old=installed[key][1],
                                     version=version))
        elif key in pins:
            problems.append(sentence("install.would_pinned", name=name, version=version, pin=pins[key]))
        elif is_protected(name):
            problems.append(sentence("install.would_protected", name=name, version=version))
    return problems


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else '"' + arg.replace('"', '\\"') + '"'


def install_args(specs: dict[str, str], constraints: Path, extra=()) -> list[str]:
    return ["install", *BASE_ARGS, "-c", str(constraints), *extra, *requested(specs)]


def install_with_subprocess(python: str, args: list[str], index_url: str | None = None,
                            timeout: float = TIMEOUT_S) -> str:
    """Run pip; '' on success, else the reason in one line."""
    code, text = _run([python, "-m", "pip", *args, *QUIET_ARGS, *index_args(index_url)], timeout)
    return "" if code == 0 else _failure_line(text)


def install_with_launch(launch, args: list[str], desc: str) -> str:
    """Through the WebUI's ``launch.run_pip``: it adds ``--prefer-binary`` and INDEX_URL, as for its own installs."""
    try:
        launch.run_pip(" ".join(_quote(a) for a in args), desc)
    except Exception as err:  # run_pip raises RuntimeError with pip's whole output
        return _failure_line(str(err)) or f"{type(err).__name__}: {err}"
    return ""


def _failure_line(text: str) -> str:
    error, conflict, _ = classify_failure(text)
    return error or (sentence("install.no_versions_fit", conflict=conflict) if conflict else "")


def manual_command(python: str, specs: dict[str, str]) -> str:
    return f'"{python}" -m pip install ' + " ".join(f'"{s}"' for s in requested(specs)) if specs else ""
