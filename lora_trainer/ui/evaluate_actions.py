"""What the Evaluate sub-tab does, without gradio or torch: find runs, analyse one, render and judge a
grid of epochs × weights through the host, and keep the chosen epoch.

Every function returns plain data or HTML; a ``TrainerError`` becomes a message box with its advice,
never a traceback. ``evaluate_tab`` only wires these to components.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any, Callable, Iterator, Sequence

from ..errors import TrainerError
from ..evaluate.diagnosis import SYMPTOMS, diagnosis_table
from ..evaluate.keep import KeepResult, deletion_plan, delete_files, keep_epoch
from ..evaluate.messages import Message, msg
from ..evaluate.prompt_tags import format_weight
from ..evaluate.report import GridReport, RunReport, evaluate_grid, evaluate_run
from ..evaluate.runs import METRICS_FILE, RunFile, find_runs, resolve_epoch_values
from ..evaluate.scores import GridCell
from ..hosts.base import PreviewRequest
from .status import message_html

DEFAULT_WEIGHTS = "0, 0.5, 0.6, 0.7, 0.8, 0.9, 1"   # weight 0: the picture without the LoRA (baseline)
KINDS = ("character", "style", "concept")
VERDICT_TEXT = {"good": "usable", "broken": "broken", "weak": "weak", "overfit": "over-fitted",
                "baseline": "without the LoRA"}
GRID_FOLDER = "grids"
MAX_CELLS = 200
MAX_TRAINING_IMAGES = 100
_RANGE = re.compile(r"^\s*(-?[\d.]+)\s*-\s*(-?[\d.]+)\s*\[\s*(\d+)\s*\]\s*$")


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


# --- 1. pick and analyse a run ---------------------------------------------------------------------

def _attr(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if obj is not None else default


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

    for job in (_attr(runner, "jobs", lambda: [])() or []):
        if _attr(job, "status") in ("queued", "preparing", "training", "stopping"):
            continue
        run_dir = _attr(job, "run_dir", "") or ""
        files = [f.get("path") for f in (_attr(job, "files", []) or []) if isinstance(f, dict) and f.get("path")]
        files = [p for p in files if os.path.isfile(p)]
        if not files:
            continue
        value = run_dir if run_dir and os.path.isfile(os.path.join(run_dir, METRICS_FILE)) else files[-1]
        name = _attr(job, "output_name", "") or os.path.basename(files[-1])
        add(f"{name} ({_attr(job, 'status', '')}, {os.path.dirname(files[-1])})", value,
            os.path.dirname(files[-1]), name)
    try:
        folder = host.lora_dir()
        runs = find_runs(folder) if folder and os.path.isdir(folder) else []
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
    for job in (_attr(runner, "jobs", lambda: [])() or []):
        if report.run.log_dir and os.path.normcase(os.path.abspath(_attr(job, "run_dir", "") or "/-")) == \
                os.path.normcase(os.path.abspath(report.run.log_dir)):
            return job
        for f in _attr(job, "files", []) or []:
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


def trigger_of(report: RunReport) -> str:
    words = report.summary.trigger_words()
    return words[0] if words else report.run.name


def _list_html(title: str, lines: Sequence[str]) -> str:
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
        extra = _list_html("Other findings", [sentence(f.message, templates) + (
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


def default_prompt(trigger: str) -> str:
    return trigger or "{trigger}"


def analyse(choice: str | None, typed: str | None, kind: str | None, host: Any = None, runner: Any = None,
            templates: dict[str, str] | None = None) -> Analysis:
    """Open the typed path (else the chosen run) and read it: loss chart, sentences, diagnosis, grid plan."""
    path = (typed or "").strip().strip('"') or choice_path(choice, host, runner)
    if not path:
        return Analysis(message=message_html("info", "Choose a run first",
                                             ["Pick one in the list or type the folder of its files."]))
    try:
        report = evaluate_run(os.path.expanduser(path), kind=kind if kind in KINDS else None)
    except TrainerError as err:
        return Analysis(message=error_box("The run could not be read", err))
    except OSError as err:
        return Analysis(message=error_box("The run could not be read", TrainerError(
            f"cannot read {path}: {err.strerror or err}", "check the path and that you may read the folder")))
    job = job_for(runner, report)
    config = _attr(job, "config", {}) or {}
    trigger = _attr(job, "trigger", "") or trigger_of(report)
    lines = report.summary.lines() + list(report.warnings)
    a = Analysis(report=report, trigger=trigger, prompt=default_prompt(trigger),
                 epochs=default_epochs(report), stems=report.run.stems,
                 base_model=str(config.get("pretrained_model_name_or_path") or "")
                 or _checkpoint_named(host, report.summary.base_model),
                 training_dir=str(config.get("train_data_dir") or ""))
    a.message = message_html("ok", "Run read", [f"{report.run.name}: {report.run.describe_saved()}"] + lines)
    a.chart = report.chart_html()
    a.findings = _list_html("What the loss curve says", report.loss.sentences(templates))
    a.diagnosis = diagnosis_html(report.findings, templates)
    return a


# --- 2. the grid ---------------------------------------------------------------------------------------

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
            raise TrainerError(f"the weight {token!r} is not a number",
                               "write weights like 0, 0.5, 0.6, 0.8, 1 or a range 0.5-1 [6]") from None
        for v in values:
            v = round(v, 4)
            if not -4 <= v <= 4:
                raise TrainerError(f"the weight {token!r} is far outside the usual 0–1",
                                   "use weights between 0 and 1.5")
            if v not in out:
                out.append(v)
    if not out:
        raise TrainerError("no LoRA weights were given", "write weights like 0, 0.5, 0.6, 0.8, 1")
    return out


@dataclass
class GridSettings:
    prompts: list[str]
    epochs: str
    weights: list[float]
    seed: int = 1234
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    negative_prompt: str = ""
    base_model: str = ""
    trigger: str = ""

    @classmethod
    def from_inputs(cls, prompts: str, epochs: str, weights: str, seed: Any, width: Any, height: Any,
                    steps: Any, negative: str = "", base_model: str = "", trigger: str = "") -> "GridSettings":
        lines = [p.strip() for p in str(prompts or "").splitlines() if p.strip()] or ["{trigger}"]
        try:
            return cls(lines, str(epochs or ""), parse_weights(weights), int(seed if seed not in (None, "") else 1234),
                       int(width or 512), int(height or 512), int(steps or 20), negative_prompt=str(negative or ""),
                       base_model=base_model or "", trigger=trigger or "")
        except (TypeError, ValueError):
            raise TrainerError("the seed, size and steps must be whole numbers",
                               "e.g. seed 1234, size 512 × 512, 20 steps") from None


@dataclass
class PlannedCell:
    file: RunFile
    weight: float
    prompt_index: int
    prompt: str

    @property
    def label(self) -> str:
        return f"{self.file.label}, w {format_weight(self.weight)}"


def plan_grid(report: RunReport, settings: GridSettings) -> list[PlannedCell]:
    """Each image to render: every epoch × weight × prompt, weight 0 only once per prompt (without the
    LoRA every epoch gives the same picture)."""
    if not settings.epochs.strip():
        raise TrainerError("no epochs were given", f"write epochs like {report.grid.epoch_text or '2-10 (+2)'}")
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
        raise TrainerError(f"the grid would have {len(cells)} images",
                           f"choose fewer epochs, weights or prompts (at most {MAX_CELLS} images)")
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


def grid_folder(report: RunReport) -> str:
    base = report.run.log_dir or os.path.join(report.run.folder, "logs", report.run.name)
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
    folder = folder or grid_folder(report)
    trigger = settings.trigger or trigger_of(report)
    for n, cell in enumerate(plan):
        if should_stop():
            result.stopped = True
            break
        yield GridProgress(n, total, cell.label)
        req = PreviewRequest(lora_path=cell.file.path, prompts=[cell.prompt], weight=cell.weight,
                             negative_prompt=settings.negative_prompt, seed=settings.seed, width=settings.width,
                             height=settings.height, steps=settings.steps, cfg_scale=settings.cfg_scale,
                             base_model_path=settings.base_model, trigger=trigger)
        try:
            out = host.generate_previews(req)
        except Exception as err:  # the host's own errors included: shown, never raised into the page
            message = error_box("Rendering stopped", err)
            break
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
            result.folder = folder
        except OSError as err:
            message = message or error_box("The grid could not be saved", TrainerError(
                f"cannot write to {folder}: {err.strerror or err}", "check the free disk space and the folder's "
                                                                      "permissions"))
    yield GridProgress(len(images), total, "", message, result)


def training_images(folder: str | None, limit: int = MAX_TRAINING_IMAGES) -> list[str]:
    """Image files under the training folder, for the check that a cell copies a training image."""
    from ..data.images import is_image_file

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
    reasons = _list_html("Recommendation", rec.sentences(templates))
    head = "".join(f"<th>{escape(t)}</th>" for t in ("Epoch", "Weight", "Verdict", "Effect", "Likeness to training"))
    rows = []
    for g in rec.groups:
        label = f"epoch {g.epoch}" if g.epoch is not None else g.key
        effect = "–" if g.effect is None else f"{g.effect:.2f}"
        sim = "–" if g.max_ssim is None else f"{g.max_ssim:.2f}"
        rows.append(f"<tr><td>{escape(label)}</td><td>{format_weight(g.weight)}</td>"
                    f"<td><span>{escape(VERDICT_TEXT.get(g.verdict, g.verdict))}</span></td>"
                    f"<td>{effect}</td><td>{sim}</td></tr>")
    return reasons + f'<table class="lt-eval-table"><tr>{head}</tr>{"".join(rows)}</table>'


def xyz_help(report: RunReport, epochs: str, weights: Sequence[float], prompt: str = "") -> str:
    """How to render the same grid with txt2img's X/Y/Z plot script: our axes, and Prompt S/R."""
    try:
        resolved = resolve_epoch_values(report.run, epochs) if epochs.strip() else []
        files = [f for n, f in enumerate(resolved) if f.stem not in {g.stem for g in resolved[:n]}]
    except TrainerError as err:
        return f"{err.message}\n{err.advice}"
    name = report.run.name
    trigger = trigger_of(report)
    text_prompt = (prompt or trigger or "").replace("{trigger}", trigger).strip()
    weight_text = ", ".join(format_weight(w) for w in weights)
    epoch_text = ", ".join(f.stem for f in files)
    lines = ["Script: X/Y/Z plot",
             f"Prompt: {text_prompt}, <lora:{name}:1>" if text_prompt else f"Prompt: <lora:{name}:1>",
             "X type: LoRA epoch", f"X values: {epoch_text}",
             "Y type: LoRA weight", f"Y values: {weight_text}", "",
             "Or with Prompt S/R, as in the tutorials:"]
    numbered = [f for f in files if f.kind == "epoch" and f.stem.startswith(name + "-")]
    if numbered:
        suffixes = ",".join(f.stem[len(name) + 1:] for f in numbered)
        lines += [f"Prompt: {text_prompt + ', ' if text_prompt else ''}<lora:{name}-NUM:WEIG>",
                  "X type: Prompt S/R", f"X values: NUM,{suffixes}",
                  "Y type: Prompt S/R", f"Y values: WEIG,{','.join(format_weight(w) for w in weights)}"]
    if any(f.kind != "epoch" for f in files):
        lines.append("Prompt S/R cannot reach the final file (it has no number): use the LoRA epoch axis for it.")
    return "\n".join(lines)


# --- 3. keep -------------------------------------------------------------------------------------------

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
        return None, message_html("error", "Choose the epoch to keep", [f"{stem or '–'}: not a file of {report.run.name}"],
                                  "Pick one of the run's files in the list.")
    try:
        w = float(weight if weight not in (None, "") else 0.6)
        result = keep_epoch(chosen, name, overwrite=bool(overwrite), preferred_weight=w, notes=notes or "",
                            preview=preview_for(grid, chosen.stem, w), lora_root=lora_root)
    except TrainerError as err:
        return None, error_box("Not kept", err)
    except (OSError, ValueError) as err:
        return None, error_box("Not kept", TrainerError(f"could not write the files: {err}",
                                                        "check the free disk space and the folder's permissions"))
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


# --- 4. validation loss ----------------------------------------------------------------------------

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
    return any(_attr(job, "status") in ("preparing", "training", "stopping")
               for job in (_attr(runner, "jobs", lambda: [])() or []))


def _checkpoint_named(host: Any, name: str | None) -> str:
    """The host's checkpoint whose file name matches the run's ``ss_sd_model_name``, if any."""
    if not name or host is None:
        return ""
    wanted = os.path.splitext(os.path.basename(name.strip()))[0].lower()
    try:
        checkpoints = host.list_checkpoints() or []
    except Exception:   # a host without checkpoints, or one that failed to list them
        return ""
    for c in checkpoints:
        path = _attr(c, "path", "") or ""
        if path and os.path.splitext(os.path.basename(path))[0].lower() == wanted and os.path.isfile(path):
            return path
    return ""


def validation_config(report: RunReport, job_config: dict | None = None, base_model: str = "",
                      training_dir: str = "", holdout_dir: str = "", host: Any = None):
    """The ``TrainConfig`` the validation loss needs: the runner's job config where it has one, else the
    run's metadata; the typed base model and training folder win. Raises with what to fill in."""
    from ..config import TrainConfig

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
        values["pretrained_model_name_or_path"] = _checkpoint_named(host, s.base_model)
    model = values.get("pretrained_model_name_or_path") or ""
    if not model:
        raise TrainerError(f"the base model '{s.base_model or 'unknown'}' that {report.run.name} was trained on "
                           "was not found", "fill in 'Base model file' (under More) with that checkpoint")
    if not os.path.exists(model):
        raise TrainerError(f"the base model {model} does not exist",
                           "fill in 'Base model file' (under More) with the checkpoint the LoRA was trained on")
    if not (holdout_dir or "").strip():
        data = values.get("train_data_dir") or ""
        if not data:
            raise TrainerError(f"the training images of {report.run.name} are not known",
                               "fill in 'Training images folder' (under More), or choose a held-out images folder")
        if not os.path.isdir(data):
            raise TrainerError(f"the training images folder {data} does not exist",
                               "fill in 'Training images folder' (under More), or choose a held-out images folder")
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise TrainerError(f"the run's settings could not be read ({err})",
                           "fill in 'Base model file' and 'Training images folder' under More") from None


def validation_trend(points: Sequence[tuple[int, float]]) -> Message | None:
    """The sentence for (epoch, loss) points: where the loss is lowest, and whether it rises after (the
    loss analysis's threshold; one later epoch suffices, as short runs save only a few)."""
    from ..evaluate.loss_analysis import VAL_RISE

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
    files = validation_files(report)
    if not files:
        return ValidationView(error_box("No validation loss", TrainerError(
            f"no saved epoch of {report.run.name} is numbered", "save every epoch (Save every N epochs: 1)")))
    holdout = (holdout_dir or "").strip().strip('"')
    try:
        cfg = validation_config(report, _attr(job_for(runner, report), "config", {}) or {}, base_model,
                                training_dir, holdout, host)
        if validate is None:
            from ..evaluate.validation import validate_files as validate
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
        from ..evaluate.validation import log_validation

        try:
            log_validation(report.run.log_dir, results)
            report = evaluate_run(report.run.log_dir, kind=report.kind)
        except (TrainerError, OSError) as err:
            lines.append(f"not saved in the run's log: {err}")
    if not any(e == r.epoch for e, _, _ in report.log.validation for r in results):
        log = dataclasses.replace(report.log, validation=[(r.epoch, r.step, r.loss) for r in results],
                                  validation_source=source)
        report = dataclasses.replace(report, log=log)
    trend = validation_trend([(r.epoch, r.loss) for r in results])
    lines = ([sentence(trend, templates)] if trend else []) + lines
    advice = TRAINING_IMAGES_NOTE if source == "training" else ""
    title = VALIDATION_TITLES.get(source, "Validation loss")
    return ValidationView(message_html("ok", title, lines, advice), report.chart_html(), validation_table(results),
                          report, list(results))
