"""Seconds spent in each phase of a run's setup, for the ``setup_times`` line of ``metrics.jsonl``.

A phase ends with ``lap(name)``: the time since the previous lap is added to ``name`` (a phase may come
back, e.g. ``to_device`` for the VAE and later for the UNet). On a CUDA device each lap first waits for
the queued GPU work, so that the time of an asynchronous copy is counted in the phase that queued it.
"""
from __future__ import annotations

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
