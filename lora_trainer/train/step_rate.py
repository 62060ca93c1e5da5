"""The speed a run reports (and the time left the tab and the API show from it): steps per second between two
loss read-backs, without the one-time seconds of the CUDA graphs or the work at an epoch's end.

A graphed run pays once for an eager warm-up step and a capture per bucket shape: 20-30 s on SDXL with eight
buckets, nearly all of it within the first read-backs. Counted as step time, it showed a fraction of a step
per second and minutes left where seconds were. An epoch's end (files, previews, validation) is left out too:
it made the read-back after it show minutes left for the last few steps."""
from __future__ import annotations

from typing import Optional


class StepRate:
    """``update(now, step, one_time_s)`` after each read-back: the steps per second since the last one, not
    counting the seconds of ``one_time_s`` (a running total, e.g. ``CaptureSchedule.one_time_seconds``) that
    fell in between; None when no step was made or no time is left to count. ``restart`` leaves out the time
    since the last read-back (an epoch's end: saving, previews, validation)."""

    def __init__(self, start: float, step: int = 0, one_time_s: float = 0.0) -> None:
        self.restart(start, step, one_time_s)

    def restart(self, now: float, step: int, one_time_s: float = 0.0) -> None:
        self.last, self.last_step, self.last_one_time = now, step, one_time_s

    def update(self, now: float, step: int, one_time_s: float = 0.0) -> Optional[float]:
        steps = step - self.last_step
        seconds = (now - self.last) - max(0.0, one_time_s - self.last_one_time)
        self.restart(now, step, one_time_s)
        if steps <= 0 or seconds <= 0:
            return None
        return steps / seconds
