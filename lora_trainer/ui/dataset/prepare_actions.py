"""The workbench's crop-and-resize step, without gradio: the plan shown before anything is written (bucket
histogram, warnings, a few previews), one picture with its crop box where a click sets the focal point,
focal points proposed by the detector, and the preparation itself with progress and Stop.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ...dataset.focus import apply_proposals, detector_message, propose_focal_points, set_focal_point
from ...dataset.plan import PreparePlan, PrepareSettings, plan_preparation
from ...dataset.prepare import crop_view, prepare_project, preview_image
from ..status import message_html
from .messages import joined, lines_in, msg
from .project_actions import error_box, language, open_project

PREVIEWS = 24
SHOWN = 12


def settings_of(project, resolution: Any, buckets: bool, background: str) -> PrepareSettings:
    """The project's preparation settings with the form's values, stored in the project."""
    prep = project.preparation
    prep.resolution, prep.buckets = int(resolution or prep.resolution), bool(buckets)
    prep.background = (background or prep.background or "#ffffff").strip()
    settings = PrepareSettings.from_project(project)
    settings.check()
    project.save()
    return settings


def histogram_html(plan: PreparePlan) -> str:
    rows = "".join(f"<tr><td>{w} × {h}</td><td>{n}</td></tr>" for (w, h), n in plan.histogram.items())
    return ('<table class="lt-concepts"><thead><tr><th>Size (bucket)</th><th>Pictures</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def plan_message(plan: PreparePlan, lang: str = "en") -> str:
    lines = [msg("bench.plan", count=len(plan.pictures), to_write=len(plan.to_write), refused=len(plan.refused),
                 up_to_date=len(plan.pictures) - len(plan.to_write) - len(plan.refused))]
    lines += [msg("dataset.named", name=Path(p.source).name, text=p.error) for p in plan.refused[:SHOWN]]
    lines += list(plan.warnings[:SHOWN])
    notes = [msg("dataset.named", name=Path(p.source).name, text=joined(p.notes, "list.semicolon"))
             for p in plan.pictures if p.ok and p.notes]
    lines += notes[:SHOWN]
    kind = "warning" if plan.refused or plan.warnings else "info"
    return message_html(kind, "What preparing will do", lines_in(lang, lines),
                        detector_message()[1].format(lang)) + histogram_html(plan)


@dataclass
class PlanView:
    message: str
    previews: list = field(default_factory=list)    # (PIL image, caption)
    keys: list = field(default_factory=list)        # picture keys for the picker


def show_plan(choice, resolution, buckets, background, host) -> PlanView:
    try:
        project = open_project(choice, host, create=False)
        plan = plan_preparation(project, settings_of(project, resolution, buckets, background))
        previews = []
        for picture in [p for p in plan.pictures if p.ok][:PREVIEWS]:
            w, h = picture.output
            previews.append((preview_image(plan, picture), f"{Path(picture.source).name} → {w}×{h}"))
    except Exception as err:   # never a traceback into the page
        return PlanView(error_box("The preparation cannot be shown", err))
    return PlanView(plan_message(plan, language(host)), previews, [p.key for p in plan.pictures if p.ok])


def show_picture(choice, key: str, host):
    """The original with its crop box and focal point, for clicking."""
    if not key:
        return None, message_html("info", "Pick a picture first")
    try:
        project = open_project(choice, host, create=False)
        plan = plan_preparation(project, PrepareSettings.from_project(project))
        return crop_view(plan, key), ""
    except Exception as err:
        return None, error_box("The picture cannot be shown", err)


def click_focal(choice, key: str, x: float, y: float, width: int, height: int, host):
    """A click at pixel (x, y) of the shown view (``width`` × ``height``) becomes the picture's focal point."""
    try:
        project = open_project(choice, host, create=False)
        set_focal_point(project, key, x / max(1, width), y / max(1, height))
        project.save()
    except Exception as err:
        return None, error_box("The focal point was not set", err)
    return show_picture(choice, key, host)[0], message_html("ok", "Focal point set", [key])


def find_focal_points(choice, host) -> str:
    try:
        project = open_project(choice, host, create=False)
        scan = propose_focal_points(project)
        stored = apply_proposals(project, scan.proposals)
        project.save()
    except Exception as err:
        return error_box("No focal points were found", err)
    lines = [msg("bench.focal_found", stored=stored, kept=len(scan.nothing_found)), scan.detector]
    lines += [msg("dataset.named", name=key, text=why) for key, why in list(scan.failed.items())[:SHOWN]]
    return message_html("ok", "Focal points", lines_in(language(host), lines),
                        "Click a picture to move its focal point.")


def run_prepare(choice, resolution, buckets, background, host, should_stop: Callable[[], bool]) -> Iterator[str]:
    """Progress messages while ``img/`` is made from the originals, then the report."""
    progress: list = [(0, 0)]
    outcome: dict = {}

    def work() -> None:
        try:
            project = open_project(choice, host, create=False)
            outcome["report"] = prepare_project(project, settings_of(project, resolution, buckets, background),
                                                progress=lambda d, t: progress.append((d, t)),
                                                should_stop=should_stop)
        except Exception as err:   # shown below
            outcome["error"] = err

    thread = threading.Thread(target=work, name="lora-trainer-prepare", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
        done, total = progress[-1]
        if total:
            yield message_html("info", "Preparing", [f"{done} / {total}"])
    if "error" in outcome:
        yield error_box("The pictures were not prepared", outcome["error"])
        return
    report, lang = outcome["report"], language(host)
    lines = [report.summary(lang)] + [msg("dataset.failure", name=Path(f.path).name, reason=f.reason, advice=f.advice)
                                      for f in report.failed[:SHOWN]]
    lines += report.notes[:SHOWN]
    yield message_html("warning" if report.failed or report.stopped else "ok", "Prepared", lines_in(lang, lines),
                       "Next: tag the pictures.") + histogram_html(report.plan)
