"""HTML for what the runner reports: the job's progress, its error and advice, saved files, the queue,
and the form's messages. Gradio-free: tested without a UI.

Fixed words sit in elements of their own, without numbers next to them, because the host's
localization replaces whole text nodes that match a key exactly.
"""
from __future__ import annotations

import os
import time
from html import escape
from typing import Any, Callable, Iterable

from ..runner.messages import error_in
from ..text.messages import ENGLISH, localized, msg
from . import messages  # noqa: F401  (registers the status words and captions)

_language_source: Callable[[], str] = lambda: "en"   # noqa: E731

STATUS_TEXT = {"queued": "Waiting in the queue", "preparing": "Preparing", "training": "Training",
               "stopping": "Stopping", "finished": "Finished", "stopped": "Stopped", "failed": "Failed",
               "cancelled": "Cancelled"}
ACTIVE = ("queued", "preparing", "training", "stopping")
FILE_KINDS = {"epoch": "epoch", "final": "final", "interrupted": "interrupted", "sidecar": "Lora tab card",
              "cover": "Lora tab preview"}


def _attr(job: Any, name: str, default: Any = None) -> Any:
    return getattr(job, name, default) if job is not None else default


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _cell(label: str, value: str, elem_class: str = "") -> str:
    return (f'<div class="lt-cell {elem_class}"><div class="lt-label">{escape(label)}</div>'
            f'<div class="lt-value">{value}</div></div>')


def _badge(status: str) -> str:
    return f'<span class="lt-badge lt-{escape(status)}">{escape(STATUS_TEXT.get(status, status))}</span>'


def _lr_text(lrs: dict | None) -> str:
    if not lrs:
        return "–"
    values = sorted(set(float(v) for v in lrs.values()), reverse=True)
    return " / ".join(f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e+") for v in values)


def progress_html(job: Any) -> str:
    """The numbers a user watches: epoch, step/total, speed, time left, loss, learning rate, memory."""
    if job is None:
        return ('<div class="lt-status lt-idle"><span>No training yet.</span> '
                '<span>Fill in the form and press Start.</span></div>')
    status = _attr(job, "status", "queued")
    step, total = int(_attr(job, "step", 0) or 0), int(_attr(job, "total_steps", 0) or 0)
    percent = 100.0 * step / total if total else 0.0
    losses = _attr(job, "losses", []) or []
    epoch_losses = _attr(job, "epoch_losses", []) or []
    loss_now = f"{float(losses[-1][1]):.4f}" if losses else "–"
    mean = f"{float(epoch_losses[-1][2]):.4f}" if epoch_losses else "–"
    speed = _attr(job, "it_per_s")
    vram = _attr(job, "vram_gb")
    started, finished = _attr(job, "started_at"), _attr(job, "finished_at")
    elapsed = ((finished or time.time()) - started) if started else None
    eta = _attr(job, "eta_s") if status in ("training", "preparing") else None
    cells = [
        _cell("Epoch", f"{_attr(job, 'epoch', 0) or 0} / {_attr(job, 'epochs', 0) or 0}"),
        _cell("Step", f"{step} / {total}"),
        _cell("Speed", f"{speed:.2f} it/s" if speed else "–"),
        _cell("Elapsed", duration(elapsed)),
        _cell("Time left", duration(eta) if eta is not None else "–"),
        _cell("Loss", loss_now),
        _cell("Epoch mean loss", mean),
        _cell("Learning rate", _lr_text(_attr(job, "lr"))),
        _cell("VRAM", f"{vram:.1f} GB" if vram else "–"),
    ]
    validation = _attr(job, "validation", []) or []
    if validation and validation[-1][2] is not None:
        cells.insert(7, _cell("Validation loss", f"{float(validation[-1][2]):.4f}"))
    name = escape(str(_attr(job, "output_name", "")))
    return (f'<div class="lt-status" data-job="{escape(str(_attr(job, "id", "")))}" data-status="{escape(status)}" '
            f'data-step="{step}" data-total="{total}">'   # javascript/lora_trainer.js: title, notification
            f'<div class="lt-head">{_badge(status)}<span class="lt-name">{name}</span></div>'
            f'<div class="lt-bar"><div class="lt-bar-fill" style="width:{percent:.1f}%"></div></div>'
            f'<div class="lt-cells">{"".join(cells)}</div></div>')


def error_html(job: Any) -> str:
    error = _attr(job, "error")
    if not error:
        return ""
    error = error_in(error, tab_language())
    message = escape(str(error.get("message", ""))).replace("\n", "<br>")
    advice = escape(str(error.get("advice", ""))).replace("\n", "<br>")
    return message_html("error", "Training failed", [message], advice, escaped=True)


def use_language(source: Callable[[], str]) -> None:
    """Where the tab's boxes take their language from (the host's UI language)."""
    global _language_source
    _language_source = source


def tab_language() -> str:
    """The language the tab's keyed sentences are shown in: "zh_CN" or "en"."""
    try:
        return _language_source()
    except Exception:   # a host that is still starting up
        return "en"


def message_html(kind: str, title: str, lines: Iterable[str] = (), advice: str = "", *, escaped: bool = False) -> str:
    """A box with a title, lines of detail and what to do. ``kind``: error | warning | info | ok. Keyed lines and
    advice (``Sentence``, ``Message``, a ``TrainerError``'s parts) are put in the tab's language; the fixed title
    is translated by the WebUI's localization."""
    language = tab_language()
    lines = [localized(line, language) for line in lines if line]
    advice = localized(advice, language) if advice else ""
    items = [line if escaped else escape(str(line)) for line in lines if line]
    body = "".join(f"<li>{item}</li>" for item in items)
    parts = [f'<div class="lt-msg lt-msg-{escape(kind)}"><div class="lt-msg-title">{escape(title)}</div>']
    if body:
        parts.append(f"<ul>{body}</ul>")
    if advice:
        parts.append(f'<div class="lt-advice"><span class="lt-label">What to do</span>'
                     f'<div>{advice if escaped else escape(advice)}</div></div>')
    parts.append("</div>")
    return "".join(parts)


def files_html(job: Any) -> str:
    """The files the run saved, with their sizes; a file moved or deleted since is marked as gone (a record
    outlives its files), and when none of the LoRA files is left a note says so."""
    files = _attr(job, "files", []) or []
    if not files:
        return ""
    rows, gone = [], []
    for item in files:
        path = str(item.get("path", ""))
        try:
            size = _size(os.path.getsize(path))
        except OSError:
            size = '<span class="lt-gone">gone</span>'
            gone.append(item)
        kind = FILE_KINDS.get(str(item.get("kind", "")), str(item.get("kind", "")))
        rows.append(f'<tr><td>{escape(str(item.get("epoch", "")))}</td><td>{escape(kind)}</td>'
                    f'<td class="lt-path" title="{escape(path)}">{escape(os.path.basename(path))}</td>'
                    f"<td>{size}</td></tr>")
    folder = os.path.dirname(str(files[-1].get("path", "")))
    loras = [f for f in files if f.get("kind") in ("epoch", "final", "interrupted")]
    note = ""
    if loras and all(f in gone for f in loras):
        note = message_html("warning", "The files of this run are gone",
                            [folder], "They were moved or deleted after the run. Remove the run from the list, "
                                      "or put the files back to evaluate it.")
    return (f'{note}<div class="lt-files"><div class="lt-files-head"><span>Saved files</span> '
            f'<code>{escape(folder)}</code></div><table><thead><tr><th>Epoch</th><th>Kind</th><th>File</th>'
            f'<th>Size</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def log_html(job: Any) -> str:
    """The run's log as its record keeps it (saved files, previews and what kept them from rendering, each
    epoch's loss), in the tab's language. Shown newest at the bottom: the box scrolls from its end."""
    lines = _attr(job, "log", []) or []
    if not lines:
        return ""
    language = tab_language()
    items = "".join(f"<div>{escape(localized(line, language))}</div>" for line in reversed(lines))
    return (f'<div class="lt-log"><div class="lt-files-head"><span>Run log</span></div>'
            f'<div class="lt-log-lines">{items}</div></div>')


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.1f} MB" if num_bytes >= 2**20 else f"{max(1, round(num_bytes / 1024))} KB"


def queue_html(jobs: list[Any]) -> str:
    if not jobs:
        return '<div class="lt-queue lt-empty"><span>The queue is empty.</span></div>'
    rows = []
    for job in jobs:
        status = _attr(job, "status", "")
        step, total = _attr(job, "step", 0) or 0, _attr(job, "total_steps", 0) or 0
        created = _attr(job, "created_at")
        when = time.strftime("%H:%M", time.localtime(created)) if created else ""
        rows.append(f'<tr data-job="{escape(str(_attr(job, "id", "")))}" data-status="{escape(status)}">'
                    f'<td>{escape(str(_attr(job, "output_name", "")))}</td><td>{_badge(status)}</td>'
                    f"<td>{step} / {total}</td><td>{when}</td></tr>")
    return (f'<div class="lt-queue"><table><thead><tr><th>Output name</th><th>Status</th><th>Step</th>'
            f'<th>Added</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def job_choices(jobs: list[Any]) -> list[str]:
    """Entries of the queue's run picker, newest first: "name · status · id" (gradio 3.41's dropdowns
    take plain strings only, so the id rides at the end; ``job_id_of`` reads it back)."""
    language = tab_language()
    return [f"{_attr(job, 'output_name', '')} · {status_word(_attr(job, 'status', ''), language)} · "
            f"{_attr(job, 'id', '')}" for job in jobs]


def status_word(status: str, language: str = "en") -> str:
    """A job's status as a word in ``language`` (the badge's words, which the WebUI translates on its own)."""
    key = f"ui.status.{status}"
    return localized(msg(key), language) if key in ENGLISH else STATUS_TEXT.get(status, "")


def job_id_of(choice: str | None) -> str | None:
    return str(choice).rsplit(" · ", 1)[-1] if choice else None


def preview_items(job: Any) -> list[tuple[str, str]]:
    """(image path, caption) for the gallery: by epoch, then weight, then prompt; an image shared by two
    files of the same weights (the last epoch and the final file) is shown once."""
    seen: set = set()
    previews = []
    for p in _attr(job, "previews", []) or []:
        path = str(p.get("path", ""))
        if path not in seen and os.path.isfile(path):
            seen.add(path)
            previews.append(p)
    previews.sort(key=lambda p: (p.get("epoch") or 0, p.get("weight") or 0, str(p.get("prompt", ""))))
    language = tab_language()
    return [(str(p["path"]), localized(msg("ui.status.preview", epoch=p.get("epoch", ""),
                                           weight=float(p.get("weight") or 0), prompt=p.get("prompt", "")), language))
            for p in previews]


def view_stamp(job: Any, jobs: list[Any]) -> str:
    """Changes whenever something on the page should be redrawn (the poll compares it)."""
    if job is None:
        return f"none|{len(jobs)}"
    return "|".join(str(x) for x in (
        _attr(job, "id"), _attr(job, "status"), _attr(job, "step"), len(_attr(job, "files", []) or []),
        len(_attr(job, "previews", []) or []), len(_attr(job, "epoch_losses", []) or []),
        len(_attr(job, "validation", []) or []), bool(_attr(job, "error")), _log_mark(job),
        ",".join(f"{_attr(j, 'id')}:{_attr(j, 'status')}" for j in jobs)))


def _log_mark(job: Any) -> str:
    """Changes with every line the log gets (its length stays at the cap once it is full)."""
    lines = _attr(job, "log", []) or []
    return f"{len(lines)}:{hash(str(lines[-1])) if lines else ''}"
