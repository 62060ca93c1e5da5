"""What the Evaluate sub-tab does, without gradio or torch — part 1: find runs and analyse one
(and the helpers the other parts share). The grid is in ``evaluate_grid``, keeping an epoch in
``evaluate_keep``, the validation loss in ``evaluate_validation``.

Every function returns plain data or HTML; a ``TrainerError`` becomes a message box with its advice,
never a traceback. ``evaluate_tab`` only wires these to components.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from html import escape
from typing import Any, Sequence

from ...errors import TrainerError
from ...evaluate.diagnosis import SYMPTOMS, diagnosis_table
from ...evaluate.loss_chart import chart_labels
from ...evaluate.messages import Message
from ...evaluate.report import RunReport, evaluate_run
from ...evaluate.runs import METRICS_FILE, find_runs
from ...evaluate.prompt_tags import format_weight
from ...text.messages import msg
from .. import messages  # noqa: F401  (registers the tab's sentences)
from ..status import message_html
from .grid_settings import grid_defaults, stored_settings

DEFAULT_WEIGHTS = "0, 0.5, 0.6, 0.7, 0.8, 0.9, 1"   # weight 0: the picture without the LoRA (baseline)
KINDS = ("character", "style", "concept")


def error_box(title: str, err: BaseException) -> str:
    """A ``TrainerError`` as message + advice; anything else as its one-line text."""
    if isinstance(err, TrainerError):
        return message_html("error", title, [err.message], err.advice)
    return message_html("error", title, [f"{type(err).__name__}: {err}"],
                        "Check the WebUI console for details, then try again.")


def sentence(m: Message | str, templates: dict[str, str] | None) -> str:
    if isinstance(m, Message):
        return m.format(templates) if templates else str(m)
    return str(m)


def checkpoint_named(host: Any, name: str | None) -> str:
    """The host's checkpoint whose file name matches the run's ``ss_sd_model_name``, if any."""
    if not name or host is None:
        return ""
    wanted = os.path.splitext(os.path.basename(name.strip()))[0].lower()
    try:
        checkpoints = host.list_checkpoints() or []
    except Exception:   # a host without checkpoints, or one that failed to list them
        return ""
    for c in checkpoints:
        path = attr(c, "path", "") or ""
        if path and os.path.splitext(os.path.basename(path))[0].lower() == wanted and os.path.isfile(path):
            return path
    return ""


# --- 1. pick and analyse a run ---------------------------------------------------------------------

def confine(host: Any, path: str, setting: str) -> str:
    """``path`` if the host lets a caller name it (a shared WebUI: only its allowed folders); else
    ``ConfigError`` naming ``setting``. Empty stays empty."""
    if not path:
        return path
    allowed = getattr(host, "allowed_folders", None)
    return allowed().check(path, setting) if callable(allowed) else path


def attr(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if obj is not None else default


def run_folders(host: Any) -> list[str]:
    """Where the host keeps run folders (logs, states, previews, grids) outside its LoRA folder, if anywhere."""
    try:
        folder = host.runs_dir() if hasattr(host, "runs_dir") else ""
    except Exception:
        folder = ""
    return [folder] if folder and os.path.isdir(folder) else []


def list_runs(host: Any, runner: Any) -> list[tuple[str, str]]:
    """(label, value) for every run in the host's LoRA folder and every finished job of the runner;
    the value is what ``analyse`` opens (a log folder or a run's file)."""
    out: dict[str, tuple[str, str]] = {}
    seen: set[tuple[str, str]] = set()

    def add(label: str, value: str, folder: str, name: str) -> None:
        key = (os.path.normcase(os.path.abspath(folder)), name)
        if key in seen or value in out:
            return
        seen.add(key)
        out[value] = (label, value)

    for job in (attr(runner, "jobs", lambda: [])() or []):
        if attr(job, "status") in ("queued", "preparing", "training", "stopping"):
            continue
        run_dir = attr(job, "run_dir", "") or ""
        files = [f.get("path") for f in (attr(job, "files", []) or []) if isinstance(f, dict) and f.get("path")]
        files = [p for p in files if os.path.isfile(p)]
        if not files:
            continue
        value = run_dir if run_dir and os.path.isfile(os.path.join(run_dir, METRICS_FILE)) else files[-1]
        name = attr(job, "output_name", "") or os.path.basename(files[-1])
        add(f"{name} ({attr(job, 'status', '')}, {os.path.dirname(files[-1])})", value,
            os.path.dirname(files[-1]), name)
    try:
        folder = host.lora_dir()
        runs = find_runs(folder, log_dirs=run_folders(host)) if folder and os.path.isdir(folder) else []
    except (TrainerError, NotImplementedError, OSError):
        runs = []
    for run in runs:
        value = run.log_dir or (run.latest.path if run.latest else run.files[0].path)
        add(f"{run.name} ({run.describe_saved()}, {run.folder})", value, run.folder, run.name)
    return list(out.values())


def choice_path(choice: str | None, host: Any = None, runner: Any = None) -> str:
    """The path behind a run picker entry (gradio 3.41 shows only plain strings, so the picker holds
    the labels); a typed path passes through."""
    choice = (choice or "").strip()
    if not choice or os.path.exists(choice):
        return choice
    return next((value for label, value in list_runs(host, runner) if label == choice), choice)


def job_for(runner: Any, report: RunReport) -> Any:
    """The runner's job that trained this run (for its base model and dataset), if it is still listed."""
    paths = {os.path.normcase(os.path.abspath(f.path)) for f in report.run.files}
    for job in (attr(runner, "jobs", lambda: [])() or []):
        if report.run.log_dir and os.path.normcase(os.path.abspath(attr(job, "run_dir", "") or "/-")) == \
                os.path.normcase(os.path.abspath(report.run.log_dir)):
            return job
        for f in attr(job, "files", []) or []:
            if isinstance(f, dict) and os.path.normcase(os.path.abspath(str(f.get("path", "")))) in paths:
                return job
    return None


@dataclass
class Analysis:
    """What "Analyse" shows; ``report`` is None when the run could not be read (``message`` says why)."""

    report: RunReport | None = None
    message: str = ""
    chart: str = ""
    findings: str = ""
    diagnosis: str = ""
    epochs: str = ""
    weights: str = DEFAULT_WEIGHTS
    prompt: str = ""
    trigger: str = ""
    base_model: str = ""
    training_dir: str = ""
    stems: list[str] = field(default_factory=list)
    render: dict = field(default_factory=dict)   # the grid's render fields (grid_settings.grid_defaults)
    job: Any = None                              # the runner's job that trained the run, if listed


def trigger_of(report: RunReport) -> str:
    words = report.summary.trigger_words()
    return words[0] if words else report.run.name


def list_html(title: str, lines: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(line)}</li>" for line in lines if line)
    return f'<div class="lt-eval-list"><div class="lt-msg-title">{escape(title)}</div><ul>{items}</ul></div>'


def diagnosis_html(report_findings: list, templates: dict[str, str] | None = None,
                   symptoms: Sequence[str] = SYMPTOMS) -> str:
    """The tutorial's symptom → cause → advice table, with this run's numbers under each row, then the
    findings that belong to no row."""
    rows = diagnosis_table(report_findings, symptoms)
    head = "".join(f"<th>{escape(t)}</th>" for t in ("What you see", "Likely cause", "What to do", "This run"))
    body = []
    for row in rows:
        found = "".join(f"<li>{escape(sentence(f.message, templates))}"
                        + (f"<br><i>{escape(sentence(f.advice, templates))}</i>" if f.advice else "") + "</li>"
                        for f in row.findings)
        body.append(f"<tr><td>{escape(sentence(row.title, templates))}</td>"
                    f"<td>{escape(sentence(row.cause, templates))}</td>"
                    f"<td>{escape(sentence(row.advice, templates))}</td>"
                    f"<td>{'<ul>' + found + '</ul>' if found else '<span>–</span>'}</td></tr>")
    other = [f for f in report_findings if f.symptom is None]
    extra = ""
    if other:
        extra = list_html("Other findings", [sentence(f.message, templates) + (
            " " + sentence(f.advice, templates) if f.advice else "") for f in other])
    return f'<table class="lt-eval-table"><tr>{head}</tr>{"".join(body)}</table>{extra}'


def default_epochs(report: RunReport) -> str:
    """The suggested epochs without the earliest third of the saved ones (they rarely carry the subject
    yet); the later two thirds when too few suggestions remain."""
    epochs = report.run.epoch_files
    early = {f.stem for f in epochs[: len(epochs) // 3]}
    kept = [s for s in report.grid.epochs if s not in early]
    if len(kept) < 2:
        kept = [f.stem for f in epochs[len(epochs) // 3:]]
        if report.run.final is not None:
            kept.append(report.run.final.stem)
    return ", ".join(dict.fromkeys(kept)) or report.grid.epoch_text


def last_stem(report: RunReport, epochs: str) -> str | None:
    """The file the last of ``epochs`` names ("final", "3" or a file stem), for the epoch to keep."""
    from ...evaluate.runs import resolve_epoch_values

    try:
        files = resolve_epoch_values(report.run, epochs) if (epochs or "").strip() else []
    except TrainerError:
        return None
    return files[-1].stem if files else None


def default_prompt(trigger: str) -> str:
    return trigger or "{trigger}"


def render_options(host: Any) -> dict:
    """The host's samplers, schedule types and upscalers ({} when it cannot say)."""
    try:
        return host.render_options() if hasattr(host, "render_options") else {}
    except Exception:
        return {}


def grid_folders(report: RunReport, host: Any) -> list[str]:
    """Where the run's grids are: its log folder, else (kohya's runs) a folder named after it in the host's
    run folders or beside its files in logs/ (as ``grid.grid_folder`` chooses)."""
    if report.run.log_dir:
        return [report.run.log_dir]
    return [os.path.join(root, report.run.name) for root in run_folders(host)] + \
        [os.path.join(report.run.folder, "logs", report.run.name)]


def analyse(choice: str | None, typed: str | None, kind: str | None, host: Any = None, runner: Any = None,
            templates: dict[str, str] | None = None) -> Analysis:
    """Open the typed path (else the chosen run) and read it: loss chart, sentences, diagnosis, grid plan."""
    path = (typed or "").strip().strip('"') or choice_path(choice, host, runner)
    if not path:
        return Analysis(message=message_html("info", "Choose a run first",
                                             ["Pick one in the list or type the folder of its files."]))
    try:
        path = confine(host, path, "the run's folder or file")
        report = evaluate_run(os.path.expanduser(path), kind=kind if kind in KINDS else None)
    except TrainerError as err:
        return Analysis(message=error_box("The run could not be read", err))
    except OSError as err:
        return Analysis(message=error_box("The run could not be read", TrainerError(
            msg("ui.eval.cannot_read", path=path, reason=err.strerror or err), msg("ui.eval.cannot_read.advice"))))
    job = job_for(runner, report)
    config = attr(job, "config", {}) or {}
    trigger = attr(job, "trigger", "") or trigger_of(report)
    lines = report.summary.lines() + list(report.warnings)
    stored = stored_settings(report, grid_folders(report, host))
    render = grid_defaults(report, trigger, job, stored, render_options(host))
    a = Analysis(report=report, trigger=trigger, prompt="\n".join(render["prompts"]) or default_prompt(trigger),
                 epochs=str(stored.get("epochs") or "") or default_epochs(report), stems=report.run.stems,
                 weights=", ".join(format_weight(w) for w in stored["weights"]) if stored.get("weights")
                 else DEFAULT_WEIGHTS,
                 base_model=str(config.get("pretrained_model_name_or_path") or "")
                 or checkpoint_named(host, report.summary.base_model),
                 training_dir=str(config.get("train_data_dir") or ""), render=render, job=job)
    a.message = message_html("ok", "Run read", [msg("ui.eval.run_files", run=report.run.name, files=report.run.describe_saved())] + lines)
    a.chart = report.chart_html(chart_labels(templates))
    a.findings = list_html("What the loss curve says", report.loss.sentences(templates))
    a.diagnosis = diagnosis_html(report.findings, templates)
    return a
