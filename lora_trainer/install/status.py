"""The install status the WebUI tab reads: ``install_status.json`` next to ``install.py``.

Written by ``install.py`` at each WebUI start (atomically; only when something changed), read by the
tab with :func:`read_install_status`, which re-checks in-process, with the same rules, when the file
is missing, unreadable, written by another Python, or older than the installed packages. Torch-free.

Schema (``schema`` 1), all keys always present:

``status``
    ``ok`` (everything fits, nothing was done), ``installed`` (installed at this start),
    ``missing`` (something is missing and nothing was installed: a ``--dry-run``, or a re-check
    when ``install.py`` has not run yet), ``refused`` (installing would change the WebUI's own
    packages, or the WebUI itself is too old), ``failed`` (pip failed, e.g. no network),
    ``skipped`` (the WebUI runs with ``--skip-install``).
``ready``
    bool: training can run with what is installed (optional extras may still be missing).
``summary``
    one or two plain sentences for the tab: what is wrong, why, what to do (shown beside ``command``).
``problems``
    list of plain sentences, one per problem (empty when all is well).
``translations``
    ``{language: {"problems": [...], "advice": "..."}}``: the same in each other language (zh_CN), so that the
    tab shows the summary in the WebUI's language (``summarize(data, language)``).
``command``
    the exact command that installs what is missing, or ``""``.
``advice``
    what to do, in words, when no command of ours can fix it (e.g. "update the WebUI"), or ``""``.
``planned``
    ``{name: version}`` that pip installed or would install (empty when nothing).
``versions``
    ``{name: version or null}`` of the packages the decision reads.
``host``
    ``{kind: "a1111"|"forge"|"none", root, requirements_file, pins: {name: version}, bnb_managed}``.
``python``, ``executable``
    the Python version and interpreter the status was made for.
``checked_at``
    when (ISO 8601, UTC); ``source``: ``"install.py"`` or ``"recheck"``.
``message``
    the line ``install.py`` printed (``""`` when it printed nothing); ``fingerprint``: a hash of
    everything the decision depends on, so an unchanged refusal is not retried at every start.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..io.atomic import atomic_write
from ..text.messages import LANGUAGES, localized, msg, read_back, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .host import Host, detect_host, torch_cuda
from .policy import WATCHED, Decision, decide
from .versions import installed_versions

STATUS_FILE = "install_status.json"
SCHEMA = 1
STATUSES = ("ok", "installed", "missing", "refused", "failed", "skipped")
_VOLATILE = ("checked_at", "source")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fingerprint(versions: dict, host: Host, cuda: str | None) -> str:
    data = {"python": platform.python_version(), "executable": sys.executable, "versions": versions,
            "host": host.as_dict(), "cuda": cuda}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def summarize(data: dict, language: str = "en") -> str:
    """Plain words for the tab, in ``language``: what is wrong, why, what to do (the tab shows ``command`` beside
    it). The problems and advice are read in that language from the status's ``translations``."""
    status, command = data.get("status"), data.get("command") or ""
    problems, advice = said(data, "problems", language), said(data, "advice", language)
    planned = ", ".join(f"{n} {v}" for n, v in (data.get("planned") or {}).items())
    versions = data.get("versions") or {}
    if data.get("ready"):
        ready = msg("install.status.installed", planned=planned) if status == "installed" and planned else \
            msg("install.status.ready", diffusers=versions.get("diffusers"), peft=versions.get("peft"))
        if problems:
            return msg("install.status.extras", ready=ready, problems="; ".join(problems)).format(language)
        return ready.format(language)
    what = "; ".join(problems) or msg("install.status.no_fit").format(language)
    if status == "refused":
        found = msg("install.status.refused_fix", what=what, advice=advice) if advice else \
            msg("install.status.refused_by_hand" if command else "install.status.refused", what=what)
    else:
        key = {"failed": "install.status.failed", "skipped": "install.status.skipped"}.get(
            status, "install.status.missing")
        found = msg(key + ("_by_hand" if command else ""), what=what)
    return found.format(language)


def said(data: dict, name: str, language: str = "en"):
    """The status's ``problems`` (a list) or ``advice`` (a text) in ``language``, English where it has none."""
    others = {code: value.get(name) for code, value in (data.get("translations") or {}).items()
              if isinstance(value, dict)}
    if name == "problems":
        return [localized(text, language) for text in read_back(list(data.get(name) or []), others)]
    return localized(read_back([data.get(name) or ""], {code: [text] for code, text in others.items()})[0], language)


def make_status(status: str, *, ready: bool, problems, command: str, versions: dict, host: Host,
                planned: dict | None = None, advice: str = "", message: str = "", fp: str = "",
                source: str = "install.py") -> dict:
    assert status in STATUSES, status
    data = {"schema": SCHEMA, "status": status, "ready": ready, "summary": "", "problems": list(problems),
            "command": command, "advice": advice, "planned": dict(planned or {}), "versions": dict(versions),
            "host": host.as_dict(), "python": platform.python_version(), "executable": sys.executable,
            "checked_at": now_iso(), "source": source, "message": message, "fingerprint": fp}
    data["translations"] = {code: {"problems": [localized(p, code) for p in problems],
                                   "advice": localized(advice, code)} for code in LANGUAGES[1:]}
    data["summary"] = summarize(data)
    return data


def load_status(path: str | os.PathLike) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def write_status(path: str | os.PathLike, data: dict, force: bool = False) -> bool:
    """Write atomically; unless ``force``, not when only the time would change (the fast path at each
    start writes nothing). True if written."""
    old = None if force else load_status(path)
    if old is not None and {k: v for k, v in old.items() if k not in _VOLATILE} == \
            {k: v for k, v in data.items() if k not in _VOLATILE}:
        return False
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
    return True


def _newest_install(names) -> float:
    """Modification time of the newest dist-info folder among these packages (0 when unknown)."""
    newest = 0.0
    for name in names:
        try:
            folder = getattr(metadata.distribution(name), "_path", None)
            if folder is not None:
                newest = max(newest, os.stat(folder).st_mtime)
        except (metadata.PackageNotFoundError, OSError):
            continue
    return newest


def is_stale(data: dict | None, path: Path, versions: dict) -> bool:
    if data is None:
        return True
    if data.get("executable") != sys.executable or data.get("python") != platform.python_version():
        return True
    recorded = data.get("versions") or {}
    if any(recorded.get(name) != versions.get(name) for name in versions):
        return True
    try:
        return os.stat(path).st_mtime < _newest_install([n for n, v in versions.items() if v])
    except OSError:
        return True


def recheck(extension_root=None) -> dict:
    """The status from the same rules, in-process, without pip (so: ok, missing or refused)."""
    host = detect_host(extension_root)
    versions = installed_versions(WATCHED)
    cuda = torch_cuda(versions.get("torch"))
    decision = decide(versions, host.pins, cuda=cuda, bnb_managed=host.bnb_managed,
                      requirements_file=str(host.requirements_file) if host.requirements_file else None)
    return status_from_decision(decision, versions, host, fingerprint(versions, host, cuda), source="recheck")


def status_from_decision(decision: Decision, versions: dict, host: Host, fp: str, source: str) -> dict:
    from .gate import manual_command

    if decision.status == "ok":
        return make_status("ok", ready=True, problems=decision.problems, command="", versions=versions,
                           host=host, fp=fp, source=source)
    if decision.status == "refused":
        return make_status("refused", ready=False, problems=decision.problems, command="", versions=versions,
                           host=host, fp=fp, source=source, advice="; ".join(decision.advice))
    missing = [sentence("install.status.not_installed", name=n) for n in decision.optional if not versions.get(n)]
    return make_status("missing", ready=decision.ready, problems=decision.problems + missing,
                       command=manual_command(sys.executable, decision.specs()), versions=versions,
                       host=host, fp=fp, source=source)


def read_install_status(extension_root: str | os.PathLike) -> dict:
    """The install status for the tab (schema in this module's docstring); never raises for a bad file."""
    path = Path(extension_root) / STATUS_FILE
    data = load_status(path)
    try:
        versions = installed_versions(WATCHED)
        if is_stale(data, path, versions):
            return recheck(extension_root)
    except Exception as err:  # the tab must still open and say why
        return {"schema": SCHEMA, "status": "failed", "ready": False,
                "summary": msg("install.status.unchecked", kind=type(err).__name__, error=err).format("en"),
                "problems": [str(err)], "command": "", "advice": "", "planned": {}, "versions": {}, "host": {},
                "python": platform.python_version(), "executable": sys.executable, "checked_at": now_iso(),
                "source": "recheck", "message": "", "fingerprint": ""}
    data.setdefault("summary", summarize(data))
    return data
