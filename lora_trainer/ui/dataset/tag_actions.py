"""The workbench's tagging step, without gradio: the taggers at hand (the WebUI's DeepBooru and CLIP, WD14 ONNX
models), a preview on one picture, a tagging run over a concept with progress and Stop (one undo entry), and
the two things done only on request: installing onnxruntime (through the install gate) and downloading a
WD14 model into the WebUI's models folder.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

from ...dataset.autotag import available_taggers, find_tagger, release_taggers, tag_folder, tag_image, wd14_status
from ...dataset.scan import picture_files
from ...dataset.tagging import TagOptions, host_taggers
from ...dataset.wd14_models import KNOWN_REPOS, download_model, wd14_dir
from ..status import message_html
from .caption_actions import ALL, history
from .messages import lines_in, msg
from .project_actions import error_box, language, open_project

SHOWN = 12
MODES = ("append", "replace", "skip")


def models_dir(host: Any) -> str:
    try:
        return host.models_dir()
    except Exception:
        return ""


def taggers(host: Any) -> list:
    try:
        found = host_taggers(host.interrogators(), host.interrogate, getattr(host, "prepare_interrogator", None))
    except Exception:
        found = []
    return available_taggers(found, [wd14_dir(models_dir(host))] if models_dir(host) else [])


NO_RUNTIME = "The WD14 tagger needs onnxruntime: press 'Install onnxruntime' under WD14 models."
NO_MODEL = "No WD14 model is in the models folder yet: download one under WD14 models."


def pick_tagger(label: str, host: Any):
    """The tagger named ``label``, or the one tagger whose label holds what was typed."""
    found = taggers(host)
    try:
        return find_tagger(label, found)
    except Exception:
        matches = [t for t in found if str(label or "").strip().lower() in t.label.lower()]
        if len(matches) == 1 and str(label or "").strip():
            return matches[0]
        raise


def tagger_choices(host: Any) -> tuple[list[str], str]:
    """(tagger labels, a sentence on WD14 when it cannot be used)."""
    status = wd14_status([wd14_dir(models_dir(host))] if models_dir(host) else [])
    note = "" if not status else NO_RUNTIME if "onnxruntime" in status else NO_MODEL
    return [t.label for t in taggers(host)], note


def options(general: Any, character: Any, exclude: str, underscores: bool, mode: str) -> TagOptions:
    return TagOptions(general_threshold=float(general), character_threshold=float(character), exclude=exclude or "",
                      underscores_to_spaces=bool(underscores), existing=mode if mode in MODES else "append").checked()


def _folders(project, concept: str) -> list:
    return [c for c in project.concepts if concept in (None, "", ALL) or c.trigger == concept]


def preview(choice, concept, tagger_label, general, character, exclude, underscores, mode, host) -> str:
    try:
        project = open_project(choice, host, create=False)
        chosen = _folders(project, concept)
        images = picture_files(project.concept_dir(chosen[0]))[0] if chosen else []
        if not images:
            return message_html("info", "Import pictures first", advice="The concept has no picture to tag yet.")
        tagger = pick_tagger(tagger_label, host)
        opts = options(general, character, exclude, underscores, mode)
        opts.trigger = chosen[0].trigger
        shown = tag_image(images[0], tagger, opts)
    except Exception as err:   # never a traceback into the page
        return error_box("The tagger could not run", err)
    lines = [msg("dataset.named", name=images[0].name, text=shown.caption) if shown.caption else
             msg("bench.tag_unchanged", name=images[0].name),
             msg("bench.tag_scores", tags=", ".join(f"{tag} {conf:.2f}" for tag, conf in shown.tags[:30]))]
    return message_html("info", "What the tagger sees", lines_in(language(host), lines),
                        "Adjust the thresholds, then tag every picture.")


def run_tagging(choice, concept, tagger_label, general, character, exclude, underscores, mode, host,
                stop: threading.Event) -> Iterator[str]:
    """Progress while the chosen concept(s) are tagged, then the report; the run is one undo entry."""
    progress: list = [(0, 0, "")]
    outcome: dict = {}

    def work() -> None:
        try:
            project = open_project(choice, host, create=False)
            tagger = pick_tagger(tagger_label, host)
            opts = options(general, character, exclude, underscores, mode)
            reports = []
            for concept_entry in _folders(project, concept):
                if stop.is_set():
                    break
                reports.append(tag_folder(project.concept_dir(concept_entry), tagger, opts, stop=stop,
                                          history=history(project),
                                          progress=lambda d, t, name: progress.append((d, t, name))))
            outcome["reports"] = reports
        except Exception as err:   # shown below
            outcome["error"] = err
        finally:
            release_taggers()

    thread = threading.Thread(target=work, name="lora-trainer-tagging", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
        done, total, name = progress[-1]
        if total:
            yield message_html("info", "Tagging", [f"{done} / {total}", Path(name).name if name else ""])
    if "error" in outcome:
        yield error_box("The pictures were not tagged", outcome["error"])
        return
    reports, lang = outcome.get("reports", []), language(host)
    lines = [r.summary(lang) for r in reports]
    for r in reports:
        lines += [msg("dataset.failure", name=Path(f.path).name, reason=f.reason, advice=f.advice)
                  for f in r.failed[:SHOWN]]
        lines += [msg("dataset.named", name=Path(p).name, text=why) for p, why in r.skipped[:SHOWN]]
    stopped = any(r.stopped for r in reports)
    failed = any(r.failed for r in reports)
    yield message_html("warning" if failed or stopped else "ok", "Tagged", lines_in(lang, lines),
                       "Next: look at the captions; Undo takes the whole run back.")


def install_onnxruntime(extension_root: str) -> str:
    from ...install.on_request import install_on_request

    result = install_on_request("onnxruntime", extension_root=extension_root or None)
    kind = "ok" if result.ok else "warning"
    return message_html(kind, "onnxruntime", [result.message] + ([result.command] if result.command else []),
                        "Restart the WebUI if it asks for it." if result.ok else "")


def download(repo: str, host: Any) -> str:
    folder = models_dir(host)
    if not folder:
        return message_html("error", "There is no models folder to download into")
    try:
        path = download_model(repo, folder)
    except Exception as err:
        return error_box("The model was not downloaded", err)
    return message_html("ok", "Model downloaded", [str(path)], "Press ↻ to list it.")


def repos() -> list[str]:
    return list(KNOWN_REPOS)
