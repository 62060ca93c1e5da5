"""The Evaluate sub-tab's last step: keep the chosen epoch under its final name, then delete the others.
"""
from __future__ import annotations

from typing import Any

from ...errors import TrainerError
from ...evaluate.keep import KeepResult, delete_files, deletion_plan, keep_epoch
from ...evaluate.report import RunReport
from ...text.messages import msg
from .. import messages  # noqa: F401  (registers the tab's sentences)
from ..status import message_html
from .actions import error_box
from .grid import GridRun


def preview_for(grid: GridRun | None, stem: str, weight: float) -> Any:
    """The grid cell of ``stem`` nearest ``weight`` (first prompt), for the Lora tab's card."""
    cells = [c for c in (grid.cells if grid else []) if c.stem == stem and c.weight != 0]
    if not cells:
        return None
    return min(cells, key=lambda c: (c.prompt, abs(c.weight - weight))).image


def keep(report: RunReport | None, stem: str, name: str, weight: Any, notes: str, overwrite: bool,
         grid: GridRun | None = None, lora_root: str | None = None) -> tuple[KeepResult | None, str]:
    """Keep the chosen epoch under its final name: (result, message)."""
    if report is None:
        return None, message_html("info", "Analyse a run first")
    chosen = report.run.file_by_stem(stem or "")
    if chosen is None:
        return None, message_html("error", "Choose the epoch to keep", [msg("ui.eval.not_a_file", stem=stem or "–", run=report.run.name)],
                                  "Pick one of the run's files in the list.")
    try:
        w = float(weight if weight not in (None, "") else 0.6)
        result = keep_epoch(chosen, name, overwrite=bool(overwrite), preferred_weight=w, notes=notes or "",
                            preview=preview_for(grid, chosen.stem, w), lora_root=lora_root)
    except TrainerError as err:
        return None, error_box("Not kept", err)
    except (OSError, ValueError) as err:
        return None, error_box("Not kept", TrainerError(msg("ui.eval.write_failed", error=err),
                                                        msg("grid.disk.advice")))
    lines = [result.path, result.prompt_tag] + list(result.warnings)
    return result, message_html("ok", "Kept", lines, "Refresh the Lora tab of txt2img to see it.")


def deletion_view(report: RunReport | None, kept: str | None, include_states: bool = False) -> tuple[list[str], str]:
    """The files "delete the other epochs" would remove, listed before anything is deleted."""
    if report is None or not kept:
        return [], message_html("info", "Keep an epoch first")
    paths = deletion_plan(report.run, [kept], include_states)
    if not paths:
        return [], message_html("info", "Nothing else to delete")
    return paths, message_html("warning", "These files will be deleted", paths,
                               "Tick the confirmation and press the delete button again.")


def delete_others(report: RunReport | None, kept: str | None, paths: list[str], confirm: bool,
                  include_states: bool = False) -> str:
    if report is None or not kept or not paths:
        return message_html("info", "Show the list of files first")
    try:
        deleted = delete_files(report.run, list(paths), confirm=bool(confirm), keep=[kept],
                               include_states=include_states)
    except TrainerError as err:
        return error_box("Nothing more was deleted", err)
    return message_html("ok", "Deleted", deleted)
