"""The workbench's checks and regularization step, without gradio: the checks with their numbers, the chosen
one-click fix carried out, and regularization images generated through the host (resumable) or imported.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

from ...config.schema import TrainConfig, parse_resolution
from ...dataset.checks import CheckSettings, Finding, check_dataset
from ...dataset.fixes import apply_fix, workbench_folder
from ...dataset.regularization import generate_regularization, import_regularization, plan_reg_import
from ..actions import allowed_folders
from ..status import message_html
from .messages import lines_in, msg, sentence
from .project_actions import error_box, open_project
from .project_actions import language as host_language

_counter: list = []


def token_counter() -> Callable[[str], int] | None:
    """The SD1.5 CLIP tokenizer's count (without BOS/EOS) when transformers is there, else None (estimated)."""
    if not _counter:
        try:
            from ...models.tokenizers import load_clip_tokenizers

            tokenizer = load_clip_tokenizers("sd1")[0]
            _counter.append(lambda text: len(tokenizer(text, truncation=False).input_ids) - 2)
        except Exception:
            _counter.append(None)
    return _counter[0]


def check_settings(cfg: TrainConfig, goal: str, trigger: str) -> CheckSettings:
    width, height = parse_resolution(cfg.resolution)
    return CheckSettings(resolution=min(width, height), enable_bucket=cfg.enable_bucket,
                         min_bucket_reso=cfg.min_bucket_reso, caption_extension=cfg.caption_extension,
                         goal=goal or "character", trigger=trigger or "", token_limit=cfg.max_token_length)


def findings_html(findings: list[Finding], language: str = "en") -> str:
    if not findings:
        return message_html("ok", "No problems found", ["The dataset is ready to train."])
    parts = []
    for number, f in enumerate(findings, start=1):
        fix = [f"→ {f.fix.label.format(language)}"] if f.fix else []
        parts.append(message_html(f.level, f"{number}. {f.text(language)}", fix, f.advice.format(language)))
    return "".join(parts)


def fix_choices(findings: list[Finding], language: str = "en") -> list[str]:
    return [f"{n}. {f.fix.label.format(language)}" for n, f in enumerate(findings, start=1) if f.fix]


def checks_trigger(choice: str, concept: str, typed: str, host: Any, all_concepts: str = "") -> str:
    """The trigger word the checks and fixes use: the one typed, else the chosen concept's, else the project's
    when it has one concept (the Trigger word box is empty on a page opened after the import)."""
    if (typed or "").strip():
        return typed.strip()
    if concept and concept != all_concepts:
        return concept
    if choice:
        try:
            concepts = open_project(choice, host, create=False).concepts
        except Exception:
            return ""
        if len(concepts) == 1:
            return concepts[0].trigger
    return ""


def run_checks(train_dir: str, cfg: TrainConfig, goal: str, trigger: str, host: Any,
               language: str | None = None) -> tuple[str, list]:
    """The findings as message boxes (in ``language``, by default the host's) and as a list."""
    language = language or host_language(host)
    try:
        train_dir = allowed_folders(host).check(train_dir.strip(), "train_data_dir") if train_dir.strip() else ""
        if not train_dir:
            return message_html("info", "Choose the training images folder first",
                                advice="Open a project, or type the folder of the concept folders."), []
        findings = check_dataset(train_dir, check_settings(cfg, goal, trigger),
                                 cache_dir=workbench_folder(train_dir) / "scan", count_tokens=token_counter())
    except Exception as err:
        return error_box("The checks could not run", err), []
    return findings_html(findings, language), findings


def run_fix(train_dir: str, findings: list[Finding], choice: str, trigger: str, cfg: TrainConfig,
            host: Any, language: str | None = None) -> tuple[str, dict]:
    """Carry out the fix picked in the list (as ``fix_choices`` wrote it in ``language``, by default the host's);
    a setting fix comes back for the form."""
    language = language or host_language(host)
    picked = [f for n, f in enumerate(findings or [], start=1) if f.fix and
              str(choice or "").strip() in (f"{n}. {f.fix.label.format(language)}", f.fix.label.format(language))]
    if not picked:
        return message_html("info", "Run the checks, then pick a fix"), {}
    finding = picked[0]
    try:
        train_dir = allowed_folders(host).check(train_dir.strip(), "train_data_dir")
        result = apply_fix(finding.fix, train_dir, trigger, cfg.caption_extension)
    except Exception as err:
        return error_box("The fix was not applied", err), {}
    lines = result.done[:12] + [msg("bench.not_done", what=p) for p in result.problems[:12]]
    if result.setting and "fold" in result.setting:
        return message_html("info", "Fold them in the Captions step", [", ".join(result.setting["fold"])],
                            "Open Captions → Fold traits, tick them and look at the preview."), {}
    if result.setting:
        lines += [f"{k} → {v}" for k, v in result.setting.items()]
    return message_html("warning" if result.problems else "ok", finding.fix.label.format(language),
                        lines_in(language, lines) or ["Nothing to do."],
                        "Run the checks again to see what is left."), result.setting


def generate_reg(choice: str, class_word: str, prompt: str, negative: str, count: Any, repeats: Any, seed: Any,
                 host: Any, should_stop: Callable[[], bool]) -> Iterator[str]:
    """Progress messages while the host generates the missing regularization pictures, then the result."""
    progress: list = [(0, 0)]
    outcome: dict = {}

    def work() -> None:
        try:
            project = open_project(choice, host, create=False)
            outcome["result"] = generate_regularization(
                project, class_word, int(count or 0), host.generate_image, prompt=prompt or "",
                negative_prompt=negative or "", repeats=int(repeats or 1), seed=int(seed or 1),
                progress=lambda done, total, name: progress.append((done, total)), should_stop=should_stop)
        except Exception as err:   # shown below, never raised into the page
            outcome["error"] = err

    thread = threading.Thread(target=work, name="lora-trainer-regularization", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
        done, total = progress[-1]
        if total:
            yield message_html("info", "Generating", [f"{done} / {total}"])
    if "error" in outcome:
        yield error_box("No regularization images were made", outcome["error"])
        return
    result = outcome["result"]
    lines = [msg("bench.reg_made", made=len(result.made), kept=result.kept)]
    lines += [msg("bench.reg_failed", number=n, why=why) for n, why in result.failed[:6]]
    title = "Stopped" if result.stopped else "Regularization images ready"
    yield message_html("warning" if result.failed or result.stopped else "ok", title,
                       lines_in(host_language(host), lines),
                       "Press Generate again to continue where it stopped." if result.stopped else "")


def import_reg(choice: str, source: str, class_word: str, repeats: Any, host: Any) -> str:
    try:
        project = open_project(choice, host, create=False)
        source = allowed_folders(host).check(source.strip(), sentence("bench.where.reg"))
        copied = import_regularization(project, plan_reg_import(project, source), class_word, int(repeats or 1))
    except Exception as err:
        return error_box("No regularization images were imported", err)
    line = msg("bench.reg_imported", count=len(copied), folder=str(project.reg_dir))
    return message_html("ok", "Regularization images imported", lines_in(host_language(host), [line]))
