"""What ``install.py`` does at each WebUI start: decide, and only when needed dry-run, install, verify.

Every outcome is one line prefixed ``[LoRA Trainer]`` (what, why, the exact command to run by hand),
or nothing at all when everything already fits. Never raises into the host and never exits non-zero.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ..text.language import language_from_env
from ..text.messages import SEMICOLON, Joined, localized, msg, sentence
from . import gate
from .messages import names
from .host import detect_host, torch_cuda
from .policy import WATCHED, Decision, decide
from .status import STATUS_FILE, fingerprint, load_status, make_status, write_status
from .versions import canonical, installed_distributions, installed_versions

PREFIX = "[LoRA Trainer]"
RETRY_FAILED_AFTER_S = 3600.0      # a failed install (e.g. offline) is retried at a start after this
FEATURES = {"bitsandbytes": msg("install.feature.8bit"), "tomli": msg("install.feature.toml")}


def _names(items) -> str:
    return names(items)


def _listing(plan: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in plan.items())


def import_launch(root: Path | None):
    """The WebUI's ``launch`` module (``run_pip``, ``args.skip_install``), or None outside a WebUI."""
    if root is None or not (root / "launch.py").is_file():
        return None
    module = sys.modules.get("launch")
    if module is None:
        if str(root) not in sys.path:
            sys.path.append(str(root))
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module("launch")
        except (Exception, SystemExit):
            return None
    return module if callable(getattr(module, "run_pip", None)) else None


class Installer:
    def __init__(self, extension_root: Path, dry_run: bool, status_file: Path | None, env=None):
        self.ext = extension_root
        self.dry_run = dry_run
        self.status_file = status_file
        self.env = os.environ if env is None else env
        self.python = sys.executable
        self.host = detect_host(extension_root, env=self.env)
        self.versions = installed_versions(WATCHED)
        self.cuda = torch_cuda(self.versions.get("torch"))

    # -- helpers -------------------------------------------------------------------------------------
    def decide(self) -> Decision:
        req = str(self.host.requirements_file) if self.host.requirements_file else None
        return decide(self.versions, self.host.pins, cuda=self.cuda, bnb_managed=self.host.bnb_managed,
                      requirements_file=req)

    def say(self, line: str) -> str:
        """Print ``line`` in the console's language (LANG and the like); the status file keeps it in English."""
        print(localized(line, language_from_env(self.env)), flush=True)
        return line

    def record(self, status: str, *, ready: bool, problems, command: str = "", planned=None, advice: str = "",
               message: str = "") -> None:
        if self.status_file is None:
            return
        data = make_status(status, ready=ready, problems=problems, command=command, versions=self.versions,
                           host=self.host, planned=planned, advice=advice, message=message,
                           fp=fingerprint(self.versions, self.host, self.cuda))
        try:
            write_status(self.status_file, data, force=status != "ok")   # a retry's timing reads checked_at
        except OSError as err:
            self.say(sentence("install.status_unwritable", prefix=PREFIX, file=self.status_file,
                              reason=err.strerror))

    def what(self, specs: dict[str, str]) -> str:
        return _names(sentence("install.with_feature", name=n, feature=FEATURES[n]) if n in FEATURES else n
                      for n in specs)

    def repeat_previous(self, decision: Decision) -> bool:
        """Same environment as an attempt that was refused (or failed recently): don't run pip again."""
        prev = load_status(self.status_file) if self.status_file else None
        if not prev or prev.get("fingerprint") != fingerprint(self.versions, self.host, self.cuda):
            return False
        try:
            age = time.time() - datetime.fromisoformat(prev.get("checked_at", "")).timestamp()
        except ValueError:
            age = RETRY_FAILED_AFTER_S
        if prev.get("status") == "refused" or (prev.get("status") == "failed" and
                                               (not decision.required or age < RETRY_FAILED_AFTER_S)):
            if decision.required and prev.get("message"):
                self.say(prev["message"])
            return True
        return False

    # -- the work ------------------------------------------------------------------------------------
    def run(self) -> None:
        decision = self.decide()
        if decision.status == "ok":
            self.record("ok", ready=True, problems=decision.problems)
            if self.dry_run:
                self.say(sentence("install.ok_dry", prefix=PREFIX))
            return
        if decision.status == "refused":
            advice = Joined(decision.advice, SEMICOLON)
            line = self.say(sentence("install.refused", prefix=PREFIX, blocked=Joined(decision.blocked, SEMICOLON),
                                     advice=advice))
            self.record("refused", ready=False, problems=decision.problems, advice=advice, message=line)
            return
        if not self.dry_run and self.repeat_previous(decision):
            return
        launch = None if self.dry_run else import_launch(self.host.root)
        if launch is not None and getattr(getattr(launch, "args", None), "skip_install", False):
            command = gate.manual_command(self.python, decision.specs())
            line = ""
            if decision.required:
                line = self.say(sentence("install.skipped", prefix=PREFIX, command=command,
                                         problems=Joined(decision.problems, SEMICOLON)))
            self.record("skipped", ready=decision.ready, problems=decision.problems, command=command, message=line)
            return
        try:
            extra = gate.extra_pip_args(self.env)
        except gate.PipArgsError as err:
            self.fail(decision, decision.specs(), err.args[0])
            return
        self.install(decision, launch, extra)

    def fail(self, decision: Decision, specs: dict, error: str, planned=None) -> None:
        command = gate.manual_command(self.python, specs)
        line = sentence("install.failed_required" if decision.required else "install.failed", prefix=PREFIX,
                        what=self.what(specs), error=error, command=command)
        self.say(line)
        self.record("failed", ready=decision.ready, problems=decision.problems + [error], command=command,
                    planned=planned, message=line)

    def refuse(self, decision: Decision, specs: dict, why: str) -> None:
        command = gate.manual_command(self.python, specs)
        head = msg("install.unavailable") if decision.required else ""
        line = self.say(sentence("install.refused_one" if len(specs) == 1 else "install.refused_many", prefix=PREFIX,
                                 head=head, what=self.what(specs), why=why, command=command))
        self.record("refused", ready=decision.ready, problems=decision.problems + [why], command=command,
                    message=line)

    def explain(self, dry: gate.DryRun, installed: dict) -> str:
        if not dry.conflict:
            return dry.error
        frozen = [f"{installed[canonical(b)][0]} {installed[canonical(b)][1]}" if canonical(b) in installed
                  else b for b in dry.blockers]
        if frozen:
            return sentence("install.no_fit_without", frozen=_names(frozen), conflict=dry.conflict)
        return sentence("install.no_fit_here", conflict=dry.conflict)

    def install(self, decision: Decision, launch, extra: list[str]) -> None:
        index_url = self.env.get("INDEX_URL") or None
        installed = installed_distributions()
        specs = decision.specs()
        note = ""
        with tempfile.TemporaryDirectory(prefix="lora-trainer-") as tmp:
            constraints = Path(tmp) / "constraints.txt"

            def attempt(wanted: dict[str, str]) -> gate.DryRun:
                free = {canonical(n) for n in wanted}
                constraints.write_text(gate.constraints_text(installed, self.host.pins, free, self.host.names),
                                       encoding="utf-8")
                return gate.dry_run(self.python, wanted, constraints, extra, index_url)

            dry = attempt(specs)
            if not dry.ok and decision.required and decision.optional:   # the extras must not block training
                note = sentence("install.optional_skipped", what=self.what(decision.optional),
                                why=self.explain(dry, installed))
                specs = dict(decision.required)
                dry = attempt(specs)
            if not dry.ok:
                (self.refuse if dry.conflict else self.fail)(decision, specs, self.explain(dry, installed))
                return
            free = {canonical(n) for n in specs}
            problems = gate.check_plan(dry.plan, installed, self.host.pins, free, dry.sources)
            if problems:
                self.refuse(decision, specs, Joined(problems, SEMICOLON))
                return
            planned = {name: version for name, version in dry.plan.values()}
            exact = {n: f"=={dry.plan[canonical(n)][1]}" for n in specs if canonical(n) in dry.plan}
            command = gate.manual_command(self.python, exact or specs)
            why = (sentence("install.why_required", why=decision.why) if decision.required else
                   sentence("install.why_features", features=_names(FEATURES.get(n, n) for n in specs)))
            if self.dry_run:
                self.say(sentence("install.would_install", prefix=PREFIX, planned=_listing(planned) or
                                  msg("install.nothing"), why=why, command=command))
                self.record("missing", ready=decision.ready, problems=decision.problems + ([note] if note else []),
                            command=command, planned=planned)
                return
            deps = {name: version for key, (name, version) in dry.plan.items() if key not in free}
            constraints.write_text(gate.constraints_text(installed, self.host.pins, free, self.host.names, deps),
                                   encoding="utf-8")
            args = gate.install_args(exact, constraints, extra)
            if launch is not None:
                error = gate.install_with_launch(launch, args, "LoRA Trainer requirements")  # host: "Installing …"
            else:
                error = gate.install_with_subprocess(self.python, args, index_url)
        self.verify(decision, installed, free, planned, command, why, error, note)

    def verify(self, decision: Decision, before: dict, free: set, planned: dict, command: str, why: str,
               error: str, note: str) -> None:
        importlib.invalidate_caches()
        after = installed_distributions()
        moved = [(name, version, after.get(key, ("", None))[1]) for key, (name, version) in before.items()
                 if key not in free and after.get(key, ("", None))[1] != version]
        self.versions = installed_versions(WATCHED)
        if moved:   # cannot happen with every installed package frozen; said plainly if it ever does
            restore = f'"{self.python}" -m pip install ' + " ".join(f'"{n}=={v}"' for n, v, _ in moved)
            changes = Joined((Joined([f"{n} {v} → ", new or msg("install.removed")], "") for n, v, new in moved),
                             ", ")
            line = self.say(sentence("install.prefixed", prefix=PREFIX,
                                     text=msg("install.changed_host", changes=changes, restore=restore)))
            self.record("failed", ready=False, problems=[sentence("install.pip_changed", changes=changes)],
                        command=restore, planned=planned, message=line)
            return
        if error:
            self.fail(decision, {n: s for n, s in decision.specs().items()}, error, planned)
            return
        now = self.decide()
        if now.required or now.blocked:
            self.fail(decision, decision.specs(), sentence("install.installed_but",
                                                           problems=Joined(now.problems, SEMICOLON)), planned)
            return
        line = self.say(sentence("install.installed", prefix=PREFIX, planned=_listing(planned), why=why,
                                 note=msg("install.note", note=note) if note else ""))
        self.record("installed", ready=True, problems=now.problems + ([note] if note else []),
                    command=command if note else "", planned=planned, message=line)


def main(argv=None, extension_root=None) -> int:
    parser = argparse.ArgumentParser(prog="install.py", description=(
        "Install the libraries the LoRA Trainer needs, in versions that run next to this WebUI's own "
        "packages, without changing any of those. The WebUI runs this at every start."))
    parser.add_argument("--dry-run", action="store_true", help="report what would be installed; change nothing")
    parser.add_argument("--status-file", help=f"where to write the status (default: {STATUS_FILE} next to "
                                              "install.py; none with --dry-run)")
    args, _ = parser.parse_known_args(argv)
    root = Path(extension_root) if extension_root else Path(__file__).resolve().parents[2]
    status_file = Path(args.status_file) if args.status_file else (None if args.dry_run else root / STATUS_FILE)
    Installer(root, args.dry_run, status_file).run()
    return 0
