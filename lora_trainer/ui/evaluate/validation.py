"""The Evaluate sub-tab's validation loss: the same fixed measurement for every saved file of a run,
on held-out images when there are any.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from html import escape
from typing import Any, Callable, Sequence

from ...errors import TrainerError
from ...evaluate.loss_chart import chart_labels
from ...evaluate.messages import Message, msg
from ...evaluate.report import RunReport, evaluate_run
from ...evaluate.runs import RunFile
from .. import messages  # noqa: F401  (registers the tab's sentences)
from ..status import message_html
from .actions import attr, checkpoint_named, confine, error_box, job_for, sentence

VALIDATION_TITLES = {"holdout": "Validation loss on held-out images", "training": "Validation loss on training images"}
TRAINING_IMAGES_NOTE = ("Computed on training images: a falling loss only shows the LoRA reproduces them more "
                        "closely. Choose a held-out images folder to see over-fitting.")


@dataclass
class ValidationView:
    """What "Compute validation loss" shows; ``report`` is the run read again with the new values."""

    message: str = ""
    chart: str = ""
    table: str = ""
    report: RunReport | None = None
    results: list = field(default_factory=list)


def _is_busy(runner: Any) -> bool:
    return any(attr(job, "status") in ("preparing", "training", "stopping")
               for job in (attr(runner, "jobs", lambda: [])() or []))


def validation_config(report: RunReport, job_config: dict | None = None, base_model: str = "",
                      training_dir: str = "", holdout_dir: str = "", host: Any = None):
    """The ``TrainConfig`` the validation loss needs: the runner's job config where it has one, else the
    run's metadata; the typed base model and training folder win. Raises with what to fill in."""
    from ...config.schema import TrainConfig

    names = TrainConfig.field_names()
    values = {k: v for k, v in (job_config or {}).items() if k in names}
    s = report.summary
    if "resolution" not in values and s.resolution:
        values["resolution"] = f"{s.resolution[0]},{s.resolution[1]}"
    if "clip_skip" not in values and s.clip_skip:
        values["clip_skip"] = s.clip_skip
    if "v_parameterization" not in values and s.v_parameterization is not None:
        values["v_parameterization"] = s.v_parameterization
    if (base_model or "").strip():
        values["pretrained_model_name_or_path"] = base_model.strip().strip('"')
    if (training_dir or "").strip():
        values["train_data_dir"] = training_dir.strip().strip('"')
    if not values.get("pretrained_model_name_or_path"):
        values["pretrained_model_name_or_path"] = checkpoint_named(host, s.base_model)
    model = values.get("pretrained_model_name_or_path") or ""
    if not model:
        raise TrainerError(msg("ui.eval.no_base_model", model=s.base_model or msg("ui.eval.unknown"),
                               run=report.run.name), msg("ui.eval.no_base_model.advice"))
    if not os.path.exists(model):
        raise TrainerError(msg("ui.eval.base_model_missing", model=model), msg("ui.eval.base_model_missing.advice"))
    if not (holdout_dir or "").strip():
        data = values.get("train_data_dir") or ""
        if not data:
            raise TrainerError(msg("ui.eval.images_unknown", run=report.run.name), msg("ui.eval.images.advice"))
        if not os.path.isdir(data):
            raise TrainerError(msg("ui.eval.images_missing", folder=data), msg("ui.eval.images.advice"))
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise TrainerError(msg("ui.eval.settings_unreadable", error=err),
                           msg("ui.eval.settings_unreadable.advice")) from None


def validation_trend(points: Sequence[tuple[int, float]]) -> Message | None:
    """The sentence for (epoch, loss) points: where the loss is lowest, and whether it rises after (the
    loss analysis's threshold; one later epoch suffices, as short runs save only a few)."""
    from ...evaluate.loss_analysis import VAL_RISE

    points = sorted((e, v) for e, v in points if v is not None and math.isfinite(v))
    if not points:
        return None
    best_i = min(range(len(points)), key=lambda i: points[i][1])
    best_epoch, best = points[best_i]
    after = points[best_i + 1:]
    if after and after[-1][1] > best * (1 + VAL_RISE) and after[0][1] >= best:
        return msg("loss.val_rising", epoch=best_epoch, loss=best, last=after[-1][1], last_epoch=after[-1][0])
    return msg("loss.val_best", epoch=best_epoch, loss=best)


def validation_files(report: RunReport) -> list[RunFile]:
    """One file per saved epoch (numbered epochs first; the final file only for an epoch they lack)."""
    by_epoch: dict[int, RunFile] = {}
    for f in report.run.files:
        if f.epoch is not None and (f.epoch not in by_epoch or f.kind == "epoch" and by_epoch[f.epoch].kind != "epoch"):
            by_epoch[f.epoch] = f
    return [by_epoch[e] for e in sorted(by_epoch)]


def validation_table(results: Sequence) -> str:
    head = "".join(f"<th>{escape(t)}</th>" for t in ("Epoch", "File", "Validation loss"))
    rows = "".join(f"<tr><td>{r.epoch}</td><td>{escape(r.stem)}</td><td>{r.loss:.5f}</td></tr>" for r in results)
    return f'<table class="lt-eval-table lt-eval-validation"><tr>{head}</tr>{rows}</table>'


def compute_validation(report: RunReport | None, holdout_dir: str = "", base_model: str = "", training_dir: str = "",
                       host: Any = None, runner: Any = None, templates: dict[str, str] | None = None,
                       validate: Callable | None = None) -> ValidationView:
    """Validation loss of every saved epoch (fixed seeds; on held-out images when a folder is given),
    logged beside the training loss; the chart drawn again, a table and a sentence on its trend."""
    if report is None:
        return ValidationView(message_html("info", "Analyse a run first"))
    if _is_busy(runner):
        return ValidationView(message_html("info", "A training run is going on",
                                           ["The validation loss needs the graphics card it is using."],
                                           "Wait until it has finished, then try again."))
    try:
        holdout = confine(host, (holdout_dir or "").strip().strip('"'), "the held-out images folder")
        base_model = confine(host, (base_model or "").strip(), "the base model file")
        training_dir = confine(host, (training_dir or "").strip(), "the training images folder")
    except TrainerError as err:
        return ValidationView(error_box("No validation loss", err))
    files = validation_files(report)
    if not files:
        return ValidationView(error_box("No validation loss", TrainerError(
            msg("ui.eval.no_numbered_epoch", run=report.run.name), msg("ui.eval.no_numbered_epoch.advice"))))
    try:
        cfg = validation_config(report, attr(job_for(runner, report), "config", {}) or {}, base_model,
                                training_dir, holdout, host)
        if validate is None:
            from ...evaluate.validation import validate_files as validate
        freed = False
        try:
            if host is not None and hasattr(host, "free_vram"):
                host.free_vram()
                freed = True
        except Exception:
            freed = False
        try:
            results = validate(cfg, files, holdout_dir=holdout or None)
        finally:
            if freed:
                try:
                    host.restore_vram()
                except Exception:
                    pass
    except Exception as err:   # TrainerError with advice; anything else as one line
        return ValidationView(error_box("No validation loss", err))
    source = results[0].source if results else ("holdout" if holdout else "training")
    lines = []
    if report.run.log_dir:
        from ...evaluate.validation import log_validation

        try:
            log_validation(report.run.log_dir, results)
            report = evaluate_run(report.run.log_dir, kind=report.kind)
        except (TrainerError, OSError) as err:
            lines.append(msg("ui.eval.not_logged", error=err))
    if not any(e == r.epoch for e, _, _ in report.log.validation for r in results):
        log = dataclasses.replace(report.log, validation=[(r.epoch, r.step, r.loss) for r in results],
                                  validation_source=source)
        report = dataclasses.replace(report, log=log)
    trend = validation_trend([(r.epoch, r.loss) for r in results])
    lines = ([sentence(trend, templates)] if trend else []) + lines
    advice = TRAINING_IMAGES_NOTE if source == "training" else ""
    title = VALIDATION_TITLES.get(source, "Validation loss")
    chart = report.chart_html(chart_labels(templates))
    return ValidationView(message_html("ok", title, lines, advice), chart, validation_table(results),
                          report, list(results))
