"""The Evaluate sub-tab's grid of epochs × weights: parse the weights, plan the cells, render them
through the host, assemble and judge the grid, and the X/Y/Z settings that reproduce it.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any, Callable, Iterator, Sequence

from ...errors import TrainerError
from ...evaluate.prompt_tags import format_weight
from ...evaluate.report import GridReport, RunReport, evaluate_grid
from ...evaluate.runs import RunFile, resolve_epoch_values
from ...evaluate.scores import GridCell
from ...hosts.base import PreviewRequest, RenderSettings
from ...text.messages import SEMICOLON, Joined, localized, msg, sentence
from .. import messages  # noqa: F401  (registers the grid's sentences)
from ..status import message_html, tab_language
from .actions import error_box, list_html, trigger_of
from .actions import sentence as in_findings_language
from .grid_settings import save_settings

VERDICT_TEXT = {"good": "usable", "broken": "broken", "weak": "weak", "overfit": "over-fitted",
                "baseline": "without the LoRA"}
GRID_FOLDER = "grids"
MAX_CELLS = 200
MAX_TRAINING_IMAGES = 100
_RANGE = re.compile(r"^\s*(-?[\d.]+)\s*-\s*(-?[\d.]+)\s*\[\s*(\d+)\s*\]\s*$")


def parse_weights(text: str) -> list[float]:
    """``"0, 0.5, 0.6"`` or a range ``"0.5-1 [6]"`` (six values from 0.5 to 1), duplicates dropped."""
    out: list[float] = []
    for token in (text or "").replace(";", ",").split(","):
        token = token.strip()
        if not token:
            continue
        match = _RANGE.match(token)
        try:
            if match:
                start, end, count = float(match[1]), float(match[2]), int(match[3])
                values = [start] if count <= 1 else [start + (end - start) * i / (count - 1) for i in range(count)]
            else:
                values = [float(token)]
        except ValueError:
            raise TrainerError(msg("grid.weight_not_number", weight=repr(token)),
                               msg("grid.weight_not_number.advice")) from None
        for v in values:
            v = round(v, 4)
            if not -4 <= v <= 4:
                raise TrainerError(msg("grid.weight_far", weight=repr(token)), msg("grid.weight_far.advice"))
            if v not in out:
                out.append(v)
    if not out:
        raise TrainerError(msg("grid.no_weights"), msg("grid.no_weights.advice"))
    return out


@dataclass
class GridSettings(RenderSettings):
    """The render fields of every cell, and which epochs and weights the grid compares."""
    epochs: str = ""
    weights: list = field(default_factory=list)
    base_model: str = ""     # only without a WebUI: the model the LoRA was trained on
    trigger: str = ""

    @classmethod
    def from_inputs(cls, prompts: str, epochs: str, weights: str, seed: Any, width: Any, height: Any,
                    steps: Any, negative: str = "", base_model: str = "", trigger: str = "",
                    **render: Any) -> "GridSettings":
        """The tab's values; ``render``: the other render fields (sampler_name, scheduler, cfg_scale, hires_...)."""
        lines = [p.strip() for p in str(prompts or "").splitlines() if p.strip()] or ["{trigger}"]
        defaults = RenderSettings()
        extra = {}
        for key, value in render.items():
            if value in (None, "") or not hasattr(defaults, key):
                continue
            try:
                extra[key] = type(getattr(defaults, key))(value)
            except (TypeError, ValueError):
                raise TrainerError(msg("grid.bad_value", name=key, value=repr(value)),
                                   msg("grid.bad_value.advice")) from None
        try:
            settings = cls(prompts=lines, epochs=str(epochs or ""), weights=parse_weights(weights),
                           seed=int(seed if seed not in (None, "") else 1234), width=int(width or 512),
                           height=int(height or 512), steps=int(steps or 20), negative_prompt=str(negative or ""),
                           base_model=base_model or "", trigger=trigger or "", **extra)
        except (TypeError, ValueError):
            raise TrainerError(msg("grid.whole_numbers"), msg("grid.render.advice")) from None
        problems = settings.render_problems()
        if problems:
            raise TrainerError(Joined(problems, SEMICOLON), msg("grid.render.advice"))
        return settings


@dataclass
class PlannedCell:
    file: RunFile
    weight: float
    prompt_index: int
    prompt: str

    @property
    def label(self) -> str:
        return sentence("grid.cell", file=self.file.label, weight=format_weight(self.weight))


def plan_grid(report: RunReport, settings: GridSettings) -> list[PlannedCell]:
    """Each image to render: every epoch × weight × prompt, weight 0 only once per prompt (without the
    LoRA every epoch gives the same picture)."""
    if not settings.epochs.strip():
        raise TrainerError(msg("grid.no_epochs"),
                           msg("grid.no_epochs.advice", epochs=report.grid.epoch_text or "2-10 (+2)"))
    files = resolve_epoch_values(report.run, settings.epochs)
    unique: list[RunFile] = []
    for f in files:
        if f.stem not in {u.stem for u in unique}:
            unique.append(f)
    cells = []
    for index, prompt in enumerate(settings.prompts):
        if 0 in settings.weights:
            cells.append(PlannedCell(unique[0], 0.0, index, prompt))
        for f in unique:
            cells += [PlannedCell(f, w, index, prompt) for w in settings.weights if w != 0]
    if len(cells) > MAX_CELLS:
        raise TrainerError(msg("grid.too_many", count=len(cells)), msg("grid.too_many.advice", limit=MAX_CELLS))
    return cells


@dataclass
class GridRun:
    """A rendered (or stopped) grid: the cells for ``evaluate_grid``, the picture, where it was saved."""

    cells: list[GridCell] = field(default_factory=list)
    image: Any = None
    folder: str = ""
    path: str = ""
    stopped: bool = False


@dataclass
class GridProgress:
    done: int
    total: int
    label: str
    message: str = ""               # an error box when rendering failed
    result: GridRun | None = None   # set on the last item


def _font(size: int):
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "Arial.ttf", "arial.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def assemble_grid(rows: Sequence[str], columns: Sequence[str], images: dict[tuple[int, int], Any],
                  cell_side: int = 256) -> Any:
    """One picture: a column per weight, a row per epoch (and prompt), labels on the top and left edge;
    missing cells stay grey."""
    from PIL import Image, ImageDraw

    first = next(iter(images.values()), None)
    w, h = (first.size if first is not None else (cell_side, cell_side))
    scale = cell_side / max(w, h)
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    font = _font(max(12, cell_side // 12))
    left, top = cell_side // 2 + 40, max(28, cell_side // 8)
    grid = Image.new("RGB", (left + cw * len(columns), top + ch * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(columns):
        draw.text((left + c * cw + 6, 6), label, fill="black", font=font)
    for r, label in enumerate(rows):
        draw.text((6, top + r * ch + ch // 2 - 8), label, fill="black", font=font)
        for c in range(len(columns)):
            box = (left + c * cw, top + r * ch)
            img = images.get((r, c))
            if img is None:
                draw.rectangle([box, (box[0] + cw - 1, box[1] + ch - 1)], fill=(200, 200, 200))
            else:
                grid.paste(img.convert("RGB").resize((cw, ch)), box)
    return grid


def grid_folder(report: RunReport, runs_dir: str = "") -> str:
    """``grids/<time>`` in the run's log folder; for a run without our log (kohya's), in a folder named
    after it in the host's run folders (outside its Lora folder), else beside its files in ``logs``."""
    base = report.run.log_dir or os.path.join(runs_dir or os.path.join(report.run.folder, "logs"), report.run.name)
    return os.path.join(base, GRID_FOLDER, time.strftime("%Y%m%d-%H%M%S"))


def _layout(plan: list[PlannedCell], prompts: int) -> tuple[list[str], list[str], dict[int, tuple[int, int]]]:
    """Row and column labels and each planned cell's (row, column); the baseline fills its column in
    every row of its prompt."""
    stems = list(dict.fromkeys(p.file.stem for p in plan if p.weight != 0)) or [plan[0].file.stem]
    labels = {p.file.stem: p.file.label for p in plan}
    weights = sorted({p.weight for p in plan})
    rows = [labels[s] + (f" · p{i + 1}" if prompts > 1 else "") for i in range(prompts) for s in stems]
    columns = [f"w {format_weight(w)}" for w in weights]
    where = {}
    for n, p in enumerate(plan):
        r = p.prompt_index * len(stems) + (stems.index(p.file.stem) if p.file.stem in stems else 0)
        where[n] = (r, weights.index(p.weight))
    return rows, columns, where


def render_grid(host: Any, report: RunReport, settings: GridSettings, should_stop: Callable[[], bool] = lambda: False,
                folder: str | None = None) -> Iterator[GridProgress]:
    """Render the grid cell by cell through ``host.generate_previews``; yields progress after each cell
    and finally the assembled, saved grid (also when stopped: what was rendered so far)."""
    try:
        plan = plan_grid(report, settings)
    except TrainerError as err:
        yield GridProgress(0, 0, "", error_box("The grid cannot be rendered", err), GridRun())
        return
    rows, columns, where = _layout(plan, len(settings.prompts))
    total, images, result, message = len(plan), {}, GridRun(), ""
    if not folder:
        runs = getattr(host, "runs_dir", None)
        try:
            folder = grid_folder(report, runs() if callable(runs) else "")
        except Exception:   # a host that cannot say
            folder = grid_folder(report)
    trigger = settings.trigger or trigger_of(report)
    for n, cell in enumerate(plan):
        if should_stop():
            result.stopped = True
            break
        yield GridProgress(n, total, cell.label)
        req = PreviewRequest(**{**settings.render_fields(), "prompts": [cell.prompt], "weight": cell.weight},
                             lora_path=cell.file.path, base_model_path=settings.base_model, trigger=trigger)
        started = time.monotonic()
        try:
            out = host.generate_previews(req)
        except Exception as err:  # the host's own errors included: shown, never raised into the page
            message = error_box("Rendering stopped", err)
            break
        clock = getattr(host, "render_clock", None)
        if clock is not None and out:
            clock.record(req, len(out), time.monotonic() - started)
        if not out:
            result.stopped = True   # the host was interrupted
            break
        image = out[0]
        images[n] = image
        result.cells.append(GridCell(image, cell.weight, epoch=cell.file.epoch, stem=cell.file.stem,
                                     prompt=cell.prompt_index))
    placed: dict[tuple[int, int], Any] = {}
    for n, image in images.items():
        r, c = where[n]
        if plan[n].weight == 0:   # the baseline, shown in every row of its prompt
            per_prompt = len(rows) // max(1, len(settings.prompts))
            for k in range(per_prompt):
                placed[(plan[n].prompt_index * per_prompt + k, c)] = image
        else:
            placed[(r, c)] = image
    if images:
        result.image = assemble_grid(rows, columns, placed)
        try:
            os.makedirs(folder, exist_ok=True)
            for n, image in images.items():
                p = plan[n]
                image.save(os.path.join(folder, f"{p.file.stem}_w{format_weight(p.weight)}_p{p.prompt_index + 1}.png"))
            result.path = os.path.join(folder, "grid.png")
            result.image.save(result.path)
            save_settings(folder, settings)   # the next analysis of this run starts from them
            result.folder = folder
        except OSError as err:
            message = message or error_box("The grid could not be saved", TrainerError(
                msg("grid.cannot_write", folder=folder, reason=err.strerror or err), msg("grid.disk.advice")))
    yield GridProgress(len(images), total, "", message, result)


def training_images(folder: str | None, limit: int = MAX_TRAINING_IMAGES) -> list[str]:
    """Image files under the training folder, for the check that a cell copies a training image."""
    from ...data.images import is_image_file

    out: list[str] = []
    if not folder or not os.path.isdir(folder):
        return out
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files) if is_image_file(f)]
        if len(out) >= limit:
            break
    return out[:limit]


def judge_grid(report: RunReport, grid: GridRun, training_dir: str | None = None,
               templates: dict[str, str] | None = None) -> tuple[GridReport | None, str]:
    """``evaluate_grid`` on the rendered cells: (grid report, HTML of the recommendation and the table)."""
    if not grid.cells:
        return None, message_html("info", "Nothing was rendered", ["Render the grid first."])
    try:
        judged = evaluate_grid(report, grid.cells, training_images(training_dir) or None)
    except TrainerError as err:
        return None, error_box("The grid could not be judged", err)
    return judged, recommendation_html(judged, templates)


def recommendation_html(judged: GridReport, templates: dict[str, str] | None = None) -> str:
    rec = judged.recommendation
    reasons = list_html("Recommendation", rec.sentences(templates))
    head = "".join(f"<th>{escape(t)}</th>" for t in ("Epoch", "Weight", "Verdict", "Effect", "Likeness to training"))
    rows = []
    for g in rec.groups:
        label = in_findings_language(msg("eval.file.epoch", epoch=g.epoch), templates) if g.epoch is not None else g.key
        effect = "–" if g.effect is None else f"{g.effect:.2f}"
        sim = "–" if g.max_ssim is None else f"{g.max_ssim:.2f}"
        rows.append(f"<tr><td>{escape(label)}</td><td>{format_weight(g.weight)}</td>"
                    f"<td><span>{escape(VERDICT_TEXT.get(g.verdict, g.verdict))}</span></td>"
                    f"<td>{effect}</td><td>{sim}</td></tr>")
    return reasons + f'<table class="lt-eval-table"><tr>{head}</tr>{"".join(rows)}</table>'


def xyz_help(report: RunReport, epochs: str, weights: Sequence[float], prompt: str = "",
             language: str | None = None) -> str:
    """How to render the same grid with txt2img's X/Y/Z plot script: our axes, and Prompt S/R (in the tab's
    language unless ``language`` is given)."""
    language = language or tab_language()
    try:
        resolved = resolve_epoch_values(report.run, epochs) if epochs.strip() else []
        files = [f for n, f in enumerate(resolved) if f.stem not in {g.stem for g in resolved[:n]}]
    except TrainerError as err:
        return f"{err.message_in(language)}\n{err.advice_in(language)}"
    name = report.run.name
    trigger = trigger_of(report)
    text_prompt = (prompt or trigger or "").replace("{trigger}", trigger).strip()
    weight_text = ", ".join(format_weight(w) for w in weights)
    epoch_text = ", ".join(f.stem for f in files)
    lines = [msg("grid.xyz.script"),
             msg("grid.xyz.prompt", prompt=f"{text_prompt} <lora:{name}:1>" if text_prompt else f"<lora:{name}:1>"),
             msg("grid.xyz.x_type", axis="LoRA epoch"), msg("grid.xyz.x_values", values=epoch_text),
             msg("grid.xyz.y_type", axis="LoRA weight"), msg("grid.xyz.y_values", values=weight_text), "",
             msg("grid.xyz.prompt_sr")]
    numbered = [f for f in files if f.kind == "epoch" and f.stem.startswith(name + "-")]
    if numbered:
        suffixes = ",".join(f.stem[len(name) + 1:] for f in numbered)
        lines += [msg("grid.xyz.prompt", prompt=f"{text_prompt + ', ' if text_prompt else ''}<lora:{name}-NUM:WEIG>"),
                  msg("grid.xyz.x_type", axis="Prompt S/R"), msg("grid.xyz.x_values", values=f"NUM,{suffixes}"),
                  msg("grid.xyz.y_type", axis="Prompt S/R"),
                  msg("grid.xyz.y_values", values=f"WEIG,{','.join(format_weight(w) for w in weights)}")]
    if any(f.kind != "epoch" for f in files):
        lines.append(msg("grid.xyz.no_final"))
    return "\n".join(localized(line, language) for line in lines)
