"""The training events as JSON lines, and back: how a run in other processes (``python -m lora_trainer train
--events FILE``, under ``accelerate launch``) tells the WebUI's runner what the in-process loop tells it directly.

One JSON object per line, ``{"type": ..., ...}``. A sentence is written in every language the trainer speaks
(``{"en": ..., "zh_CN": ...}``) and read back as a text that still answers ``localized``; an error keeps its
message and advice that way. Besides the events of ``events.py``: ``process`` (the main process's id, first),
``log`` (a line of the setup) and ``result`` (what ``train`` returned, last). Torch-free.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from typing import Any, Optional

from ..errors import TrainerError
from ..text.messages import LANGUAGES, Translated, localized
from . import events as ev

EVENT_TYPES = {"started": ev.Started, "step": ev.StepEnd, "epoch": ev.EpochEnd, "validated": ev.Validated,
               "file_saved": ev.FileSaved, "sample_wanted": ev.SampleWanted, "finished": ev.Finished}
TEXT_FIELDS = {"started": ("plan_text",)}
TEXT_LISTS = {"started": ("warnings",)}


def text_record(text: Any) -> dict:
    """A text in each language (a plain string is the same in all)."""
    return {code: localized(text, code) for code in LANGUAGES}


def text_from_record(value: Any) -> str:
    if isinstance(value, dict):
        return Translated(str(value.get("en", "")), {k: v for k, v in value.items() if k != "en"})
    return str(value)


def to_record(event) -> dict:
    """One event as a JSON-ready dict."""
    if isinstance(event, ev.Failed):
        err = event.error
        if isinstance(err, TrainerError):
            return {"type": "failed", "kind": type(err).__name__, "message": text_record(err.message),
                    "advice": text_record(err.advice) if err.advice else None, "files": list(event.files)}
        return {"type": "failed", "kind": type(err).__name__, "message": text_record(str(err)), "advice": None,
                "unexpected": True, "files": list(event.files)}
    for name, cls in EVENT_TYPES.items():
        if type(event) is cls:
            record = {"type": name, **dataclasses.asdict(event)}
            for key in TEXT_FIELDS.get(name, ()):
                record[key] = text_record(record[key])
            for key in TEXT_LISTS.get(name, ()):
                record[key] = [text_record(getattr(event, key)[i]) for i in range(len(record[key]))]
            return record
    raise TypeError(f"not a training event: {type(event).__name__}")   # internal: a new event without a record


class RecordedFailure(TrainerError):
    """An error another process reported (its message and advice in every language)."""

    def __init__(self, message: str, advice: str, kind: str, unexpected: bool) -> None:
        super().__init__(message, advice)
        self.kind, self.unexpected = kind, unexpected


def from_record(record: dict):
    """The event a record holds (``process``, ``log`` and ``result`` records are not events: None)."""
    name = record.get("type")
    if name == "failed":
        advice = text_from_record(record["advice"]) if record.get("advice") else ""
        error = RecordedFailure(text_from_record(record.get("message", "")), advice, str(record.get("kind", "")),
                                bool(record.get("unexpected")))
        return ev.Failed(error, list(record.get("files", [])))
    cls = EVENT_TYPES.get(name)
    if cls is None:
        return None
    values = {f.name: record[f.name] for f in dataclasses.fields(cls) if f.name in record}
    for key in TEXT_FIELDS.get(name, ()):
        values[key] = text_from_record(values[key])
    for key in TEXT_LISTS.get(name, ()):
        values[key] = [text_from_record(v) for v in values[key]]
    return cls(**values)


class EventWriter:
    """A listener (and a ``log``) that appends each event to ``path`` as a JSON line, flushed at once."""

    def __init__(self, path: str) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self.write({"type": "process", "pid": os.getpid()})

    def write(self, record: dict) -> None:
        with self._lock:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()

    def __call__(self, event) -> None:
        self.write(to_record(event))

    def log(self, *parts) -> None:
        text = parts[0] if len(parts) == 1 else " ".join(str(p) for p in parts)
        self.write({"type": "log", "text": text_record(text)})

    def result(self, result) -> None:
        self.write({"type": "result", "files": list(result.files), "stopped": bool(result.stopped),
                    "steps": int(result.steps), "epoch_losses": list(result.epoch_losses),
                    "run_dir": result.run_dir})

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_records(path: str, offset: int) -> tuple[list[dict], int]:
    """The whole lines written to ``path`` after byte ``offset``, and the offset after them (a line still being
    written is read next time)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line.decode("utf-8")))
        except ValueError:
            continue
    return records, offset + end


def recorded_result(record: Optional[dict]):
    """The ``TrainResult`` of a ``result`` record."""
    from .loop import TrainResult   # internal: loop is torch-heavy, so only when there is a result

    return TrainResult(files=list(record.get("files", [])), stopped=bool(record.get("stopped")),
                       steps=int(record.get("steps", 0)), epoch_losses=list(record.get("epoch_losses", [])),
                       run_dir=str(record.get("run_dir", "")))
