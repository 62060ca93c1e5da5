"""What install.py and an install on request say, by key (English; Chinese in ``text/zh_CN.json``): what is
missing or too old, what pip would change, what was installed and the command to run by hand. Standard library
only, like the rest of ``install/``."""
from __future__ import annotations

from ..text.messages import Joined, register, sentence

register({
    "install.and": "{first} and {last}",
    "install.python": "the trainer needs Python {needed} or newer, this WebUI runs Python {python}",
    "install.python.advice": "run the WebUI with Python 3.10 (the version it is tested with)",
    "install.absent_one": "{names} is not installed in this Python environment",
    "install.absent_many": "{names} are not installed in this Python environment",
    "install.older": "{name} {version} is older than {floor}, the oldest the trainer runs on",
    "install.gradio_older": "gradio {version} is older than {floor}, the oldest the trainer's tab runs on",
    "install.update_webui": "update the WebUI and start it once so that it installs its own requirements (the "
                            "trainer needs {needs})",
    "install.why": "transformers {transformers} and accelerate {accelerate}",
    "install.pinned_missing": "{name} is missing, though this WebUI pins {name}=={pin}",
    "install.no_skip_install": "start the WebUI once without --skip-install so that it installs its own "
                               "requirements{file}",
    "install.too_old": "{name} {version} is too old",
    "install.pinned_trouble": "{trouble} (this WebUI pins {name}=={pin})",
    "install.update_pin": "update the WebUI: its {name} pin does not run with its own other packages",
    "install.missing": "{name} is missing",
    "install.no_8bit": "{trouble}: 8-bit optimizers will not load",
    "install.breakpoint": "{name} {version} needs {needs} ≥ {minimum}, this WebUI has {has}",
    "install.pip_args": "{env} contains {args}, which could change the WebUI's own packages",
    "install.no_pip": "this Python has no pip",
    "install.old_pip": "this pip is too old to check an install before doing it (pip 22.2 or newer can)",
    "install.no_combination": "pip found no combination that fits",
    "install.unreachable": "the package index could not be reached or has no matching files (pip: {last})",
    "install.pip_said": "pip: {last}",
    "install.pip_silent": "pip failed without a message",
    "install.report_unreadable": "pip's dry-run report could not be read ({error})",
    "install.older_version": " (and {count} older version)",
    "install.older_versions": " (and {count} older versions)",
    "install.from_source": "pip would build {name} {version} from source",
    "install.would_change": "pip would change {name} {old} to {version}",
    "install.would_pinned": "pip would install {name} {version}, which this WebUI pins ({pin}) and installs itself",
    "install.would_protected": "pip would install {name} {version}, which belongs to the WebUI's own stack",
    "install.no_versions_fit": "no versions fit together ({conflict})",
    "install.feature.8bit": "8-bit optimizers",
    "install.feature.toml": "reading TOML config files",
    "install.feature.wd14": "the WD14 auto-tagger",
    "install.with_feature": "{name} ({feature})",
    "install.status_unwritable": "{prefix} could not write {file} ({reason}); the tab will re-check by itself",
    "install.ok_dry": "{prefix} nothing to install: the trainer's libraries fit this WebUI (--dry-run)",
    "install.refused": "{prefix} training is not available: {blocked}. Nothing was installed. To fix: {advice}",
    "install.skipped": "{prefix} training is not available: {problems}, and the WebUI runs with --skip-install, so "
                       "nothing was installed. To install: {command}",
    "install.failed_required": "{prefix} training is not available: could not install {what}: {error}. To install "
                               "by hand: {command}",
    "install.failed": "{prefix} could not install {what}: {error}. To install by hand: {command}",
    "install.unavailable": "training is not available: ",
    "install.refused_one": "{prefix} {head}{what} was not installed, because {why}; this installer never changes "
                           "the WebUI's own packages. To install anyway (changing them): {command}",
    "install.refused_many": "{prefix} {head}{what} were not installed, because {why}; this installer never changes "
                            "the WebUI's own packages. To install anyway (changing them): {command}",
    "install.no_fit_without": "pip finds no version that fits without changing {frozen} ({conflict})",
    "install.no_fit_here": "pip finds no versions that fit next to this WebUI's packages ({conflict})",
    "install.optional_skipped": "{what} not installed: {why}",
    "install.why_required": "the versions that run with this WebUI's {why}",
    "install.why_features": "for {features}",
    "install.nothing": "nothing",
    "install.would_install": "{prefix} would install {planned} ({why}); nothing was changed (--dry-run). To install "
                             "them: {command}",
    "install.removed": "removed",
    "install.changed_host": "pip changed packages of the WebUI ({changes}). To restore them: {restore}",
    "install.prefixed": "{prefix} {text}",
    "install.pip_changed": "pip changed {changes}",
    "install.installed_but": "installed, but {problems}",
    "install.installed": "{prefix} installed {planned} ({why}); the WebUI's own packages are unchanged{note}",
    "install.note": ". Note: {note}",
    "install.present": "{name} is installed already; {feature} can be used.",
    "install.not_installed": "{name} was not installed: {error}.",
    "install.not_installed_by_hand": "{name} was not installed: {error}. To install by hand: {command}",
    "install.needs_changed": "it would need {blockers} changed",
    "install.no_version_fits": "no version fits next to the WebUI's packages",
    "install.why_conflict": "{why} ({conflict})",
    "install.would_install_for": "would install {planned} for {feature}; nothing of the WebUI's packages changes. "
                                 "To install by hand: {command}",
    "install.not_found_after": "pip reported success but {module} cannot be found; restart the WebUI and try again, "
                               "or install by hand: {command}",
    "install.installed_for": "installed {planned} for {feature}; the WebUI's own packages are unchanged.",
    "install.refused_for": "{name} (for {feature}) was not installed, because {why}; the trainer never changes the "
                           "WebUI's own packages. To install anyway (changing them): {command}",
})

# the install status the tab shows
register({
    "install.status.installed": "Ready: installed {planned} at the last WebUI start; the WebUI's own packages are "
                                "unchanged.",
    "install.status.ready": "Ready: diffusers {diffusers} and peft {peft} run next to this WebUI's packages.",
    "install.status.extras": "{ready} Optional extras missing: {problems}.",
    "install.status.no_fit": "the trainer's libraries do not fit this WebUI",
    "install.status.refused": "Training is not available: {what}. Nothing was installed, because that would change "
                              "packages the WebUI itself uses.",
    "install.status.refused_fix": "Training is not available: {what}. Nothing was installed, because that would "
                                  "change packages the WebUI itself uses. To fix: {advice}.",
    "install.status.refused_by_hand": "Training is not available: {what}. Nothing was installed, because that would "
                                      "change packages the WebUI itself uses. To install anyway, changing them, run "
                                      "the install command by hand.",
    "install.status.failed": "Training is not available: {what}. Restart the WebUI to try again.",
    "install.status.failed_by_hand": "Training is not available: {what}. Restart the WebUI to try again or run the "
                                     "install command by hand.",
    "install.status.skipped": "Training is not available: {what}. The WebUI runs with --skip-install, so nothing "
                              "was installed: start it once without --skip-install.",
    "install.status.skipped_by_hand": "Training is not available: {what}. The WebUI runs with --skip-install, so "
                                      "nothing was installed: start it once without --skip-install or run the "
                                      "install command by hand.",
    "install.status.missing": "Training is not available yet: {what}. Restart the WebUI (without --skip-install) so "
                              "that it installs them.",
    "install.status.missing_by_hand": "Training is not available yet: {what}. Restart the WebUI (without "
                                      "--skip-install) so that it installs them or run the install command by hand.",
    "install.status.not_installed": "{name} is not installed",
    "install.status.unchecked": "The trainer could not check its libraries ({kind}: {error}).",
})


def names(items) -> str:
    """'a', 'a and b', 'a, b and c' (a sentence where there are two or more); '' for none."""
    items = list(items)
    if len(items) < 2:
        return items[0] if items else ""
    return sentence("install.and", first=Joined(items[:-1], ", "), last=items[-1])
