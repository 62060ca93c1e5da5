"""Training metrics: ``metrics.jsonl`` (one JSON object a line) plus TensorBoard scalars.

Values must already be Python numbers (``loss.item()`` once per log interval in the loop):
this module never touches tensors, so it never waits for the GPU. Non-finite numbers are
written as JSON ``null`` (strict JSON for any reader) and as NaN/inf in TensorBoard.
A resumed run appends to the same ``metrics.jsonl`` and adds a new event file.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import time
from pathlib import Path
from typing import Any

from ..io.tb_events import EventFileWriter

METRICS_FILE = "metrics.jsonl"
TB_FLUSH_S = 10.0


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a Python number, not {type(value).__name__} "
                        f"(call .item() once per log interval)")
    return float(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, numbers.Real):  # float, numpy scalars
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)  # paths and the like


class MetricsLogger:
    """Writes ``<run_dir>/metrics.jsonl`` and TensorBoard events into ``run_dir``."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self._file = open(self.path, "a+b")
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() > 0:  # a killed run may have left half a line: start a fresh one
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")
        self._tb = EventFileWriter(self.run_dir) if tensorboard else None
        self._tb_flushed = time.monotonic()

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"the metrics file {self.path} is closed")  # internal: written after close()
        record = {"time": round(time.time(), 3), **record}
        line = json.dumps(_json_value(record), ensure_ascii=False, allow_nan=False) + "\n"
        self._file.write(line.encode("utf-8"))
        self._file.flush()

    def log_step(self, step: int, epoch: int, loss: float, lrs: dict[str, float],
                 it_per_s: float | None = None, peak_mem_gb: float | None = None,
                 peak_reserved_gb: float | None = None) -> None:
        """One optimizer step: loss, the learning rate of each part (e.g. ``{"unet": 1e-4}``), speed,
        and the peak GPU memory (GiB) allocated and reserved by PyTorch's allocator so far."""
        record: dict[str, Any] = {"type": "step", "step": int(step), "epoch": int(epoch),
                                  "loss": _number("loss", loss)}
        scalars = {"loss/current": record["loss"]}
        for name, lr in lrs.items():
            record[f"lr/{name}"] = scalars[f"lr/{name}"] = _number(f"lr {name}", lr)
        if it_per_s is not None:
            record["it_per_s"] = scalars["speed/it_per_s"] = _number("it_per_s", it_per_s)
        if peak_mem_gb is not None:
            record["peak_mem_gb"] = scalars["memory/peak_gb"] = _number("peak_mem_gb", peak_mem_gb)
        if peak_reserved_gb is not None:
            record["peak_reserved_gb"] = scalars["memory/peak_reserved_gb"] = _number("peak_reserved_gb",
                                                                                     peak_reserved_gb)
        self._write(record)
        if self._tb is not None:
            self._tb.add_scalars(scalars, int(step))
            if time.monotonic() - self._tb_flushed > TB_FLUSH_S:  # live view without a write per step
                self.flush()

    def log_epoch(self, epoch: int, mean_loss: float, step: int) -> None:
        """The end of an epoch; TensorBoard's ``loss/epoch`` is plotted against the epoch number."""
        record = {"type": "epoch", "epoch": int(epoch), "step": int(step),
                  "mean_loss": _number("mean_loss", mean_loss)}
        self._write(record)
        if self._tb is not None:
            self._tb.add_scalar("loss/epoch", record["mean_loss"], int(epoch))
            self.flush()

    def log_validation(self, epoch: int, step: int, loss: float, **fields: Any) -> None:
        """A validation loss (an event line; TensorBoard's ``loss/validation`` against the epoch)."""
        self.log_event("validation", epoch=int(epoch), step=int(step), loss=_number("loss", loss), **fields)
        if self._tb is not None:
            self._tb.add_scalar("loss/validation", float(loss), int(epoch))
            self.flush()

    def log_event(self, kind: str, **fields: Any) -> None:
        """Anything else worth a line, e.g. ``log_event("saved", path=..., step=...)``."""
        self._write({**fields, "type": "event", "kind": str(kind)})

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb_flushed = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """All records of ``<run_dir>/metrics.jsonl``; lines cut short by a crash are skipped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue  # half a line from a killed process
            if isinstance(record, dict):
                records.append(record)
    return records
