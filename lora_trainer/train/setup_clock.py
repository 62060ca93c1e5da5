"""Seconds spent in each phase of a run's setup, for the ``setup_times`` line of ``metrics.jsonl``.

A phase ends with ``lap(name)``: the time since the previous lap is added to ``name`` (a phase may come
back, e.g. ``to_device`` for the VAE and later for the UNet). On a CUDA device each lap first waits for
the queued GPU work, so that the time of an asynchronous copy is counted in the phase that queued it.
"""
from __future__ import annotations

import contextlib
import gc
import time
from typing import Optional

import torch


class SetupClock:
    def __init__(self, device: Optional[torch.device] = None) -> None:
        self.device = device
        self.started = time.perf_counter()
        self._last = self.started
        self.times: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.times[phase] = self.times.get(phase, 0.0) + now - self._last
        self._last = now

    def summary(self) -> dict[str, float]:
        """Each phase's seconds and ``total``: from the clock's start until now (rounded to ms)."""
        out = {phase: round(seconds, 3) for phase, seconds in self.times.items()}
        out["total"] = round(time.perf_counter() - self.started, 3)
        return out


@contextlib.contextmanager
def collection_paused():
    """Python's cyclic garbage collector off during the setup, which makes hundreds of thousands of objects
    (the models' modules, parameters, tokenizers) and nothing cyclic worth collecting: each automatic full
    collection walks all of them, about 1.3 s of an SD1.5 load on a 2-core CPU. What became garbage
    meanwhile is collected once the collector is back on (not frozen: in a WebUI the objects outlive the run)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
