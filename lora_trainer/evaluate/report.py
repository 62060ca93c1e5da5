"""One call per step of the Evaluate tab: open a run and read it, then judge a rendered grid.

``evaluate_run`` gathers what the run's files and log say (summary, loss analysis, diagnosis,
the grid worth rendering); ``evaluate_grid`` scores the rendered cells and recommends an epoch
and a weight. Keeping the choice is ``keep.keep_epoch``. Plain data in, dataclasses out.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import TrainerError
from ..text.messages import sentence
from .diagnosis import Finding, diagnose
from .loss_analysis import LossAnalysis, analyze_run
from .loss_chart import loss_chart_svg
from .recommend import GridPlan, Recommendation, group_scores, recommend, suggest_grid
from .run_log import LossLog, read_loss_log
from .runs import RunInfo, open_run
from .scores import CellScore, GridCell, References, score_cells
from .summary import TrainingSummary, summary_from_metadata


@dataclass
class RunReport:
    run: RunInfo
    summary: TrainingSummary
    log: LossLog
    loss: LossAnalysis
    findings: list[Finding]
    grid: GridPlan
    kind: str | None = None
    warnings: list[str] = field(default_factory=list)

    def chart_html(self, labels: dict[str, str] | None = None) -> str:
        return loss_chart_svg(self.loss, self.log.validation, labels=labels)


@dataclass
class GridReport:
    scores: list[CellScore]
    recommendation: Recommendation
    findings: list[Finding]          # the run's findings plus those from the grid's scores


def evaluate_run(path: str | os.PathLike, *, name: str | None = None, kind: str | None = None,
                 log_dir: str | os.PathLike | None = None,
                 image_sizes: Sequence[tuple[int, int]] | None = None) -> RunReport:
    """Read a run (a log folder, one of its files, or a LoRA folder with ``name``). ``kind`` is the
    preset kind (character / style / concept); ``log_dir`` a kohya logging folder for kohya runs."""
    run = open_run(path, name)
    warnings = []
    latest = run.latest
    meta = {}
    if latest is not None:
        try:
            meta = latest.metadata()
        except TrainerError as err:
            warnings.append(sentence("error.what_to_do", message=err.message, advice=err.advice) if err.advice
                            else err.message)
    summary = summary_from_metadata(meta)
    log = read_loss_log(run, log_dir)
    if log.empty:
        warnings.append(sentence("eval.no_loss_log_given" if log_dir else "eval.no_loss_log", run=run.name))
    loss = analyze_run(run, log, kind=kind)
    findings = diagnose(summary, loss, kind=kind, image_sizes=image_sizes)
    return RunReport(run, summary, log, loss, findings, suggest_grid(run, loss), kind, warnings)


def evaluate_grid(report: RunReport, cells: Sequence[GridCell], training_images: Sequence | None = None) -> GridReport:
    """Score the rendered cells (weight-0 cells serve as baselines), recommend, and add the grid's
    findings to the run's. ``training_images``: paths or images for the over-fit check."""
    references = None
    if training_images:
        first = training_images[0]
        references = References.from_paths(training_images) if isinstance(first, (str, os.PathLike)) \
            else References(list(training_images))
    scores = score_cells(cells, references)
    rec = recommend(scores, report.loss)
    findings = list(report.findings) + diagnose(TrainingSummary(), groups=group_scores(scores))
    return GridReport(scores, rec, findings)
