"""The compute threads of a run on the CPU: chosen by timing the run's own batches, and given back after it.

torch starts one OpenMP thread per core. Every operation then ends at a barrier where all of them must
have run; beside one other busy process on a 2-core machine one of them is always waiting for the
scheduler, and the tiny models of the demo and the tests trained ten times slower (more than 400 s
instead of 21 s). More threads only pay for large operations (a full-size model on a many-core CPU),
so the run measures it: its batches alternate between a few thread counts (1, half, all that the
caller had), the fastest wins (the fewest threads within 10% of it), and the choice is measured again
when a batch becomes much slower than at the choice (another process took the CPU) or after a while
(it went away).

The count is set for the training thread only: inside a WebUI the host's threads keep theirs, the
process-wide default that new threads start with stays the host's, and the training thread gets its
count back when the run ends. Counts differ in their rounding (1e-4 in a demo LoRA's weights), so a run
whose count changes is not bit-identical to another; ``OMP_NUM_THREADS`` in the environment pins the
count (nothing is measured) for runs and resumes that must be. The OpenMP wait policy (spin or sleep
at a barrier) can only be set before OpenMP starts: the command line sets it (``cli/main.py``); in a
WebUI it has started already, and the count alone keeps a busy CPU from collapsing the run.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections import deque
from typing import Callable, Iterator, Optional

TIE = 1.10          # a count within 10% of the fastest is as good: the fewest threads wins
SLOWER = 1.5        # the last 3 batches' median this much above the chosen count's own: measure again
DROP = 2.0          # a count this much slower than the best while measuring is given up at once


def candidate_counts(max_threads: int) -> list[int]:
    """The thread counts measured: 1, about half and all of ``max_threads``."""
    return sorted({1, max(1, (max_threads + 1) // 2), max(1, max_threads)})


class CpuThreads:
    """Per-batch timing → thread count. ``set_threads(n)`` applies a count; ``clock`` reads seconds.

    The loop calls ``batch_started()`` before a batch and ``batch_done()`` after it; saving, validation
    and previews between them are not counted.
    """

    def __init__(self, max_threads: int, set_threads: Callable[[int], None], *,
                 clock: Callable[[], float] = time.perf_counter, rounds: int = 4, warmup: int = 2,
                 recheck_s: float = 60.0, max_recheck_s: float = 600.0,
                 on_choice: Optional[Callable[[int, dict], None]] = None) -> None:
        self.candidates = candidate_counts(max_threads)
        self._set = set_threads
        self._clock = clock
        self.rounds, self.warmup = rounds, warmup
        self.base_recheck_s, self.max_recheck_s = recheck_s, max_recheck_s
        self.recheck_s = recheck_s
        self.on_choice = on_choice
        self.threads = 0
        self.chosen: Optional[int] = None
        self.choices: list[int] = []      # every choice made, in order
        self._t0: Optional[float] = None
        self._seen = 0
        self._samples: dict[int, list[float]] = {}
        self._active: list[int] = []
        self._baseline = 0.0
        self._since = 0.0
        self._recent: deque = deque(maxlen=3)   # the last batches at the chosen count
        # until measured (setup, warm-up): 1 thread of 2, about half of more
        self._apply(self.candidates[(len(self.candidates) - 1) // 2])
        if len(self.candidates) == 1:
            self.chosen = self.candidates[0]

    def batch_started(self) -> None:
        self._t0 = self._clock()

    def batch_done(self) -> None:
        if self._t0 is None or len(self.candidates) == 1:
            return
        seconds, self._t0 = self._clock() - self._t0, None
        self._seen += 1
        if self._seen < self.warmup:   # the first batches: allocations and first calls
            return
        if self._seen == self.warmup:
            self._start_measuring()
        elif self.chosen is None:
            self._measured(seconds)
        else:
            self._held(seconds)

    # --- measuring ---------------------------------------------------------------------------------
    def _start_measuring(self) -> None:
        self.chosen = None
        self._samples = {n: [] for n in self.candidates}
        self._active = list(self.candidates)
        self._apply(self._active[0])

    def _measured(self, seconds: float) -> None:
        now = self.threads
        self._samples[now].append(seconds)
        others = [statistics.median(v) for n, v in self._samples.items() if v and n != now and n in self._active]
        if others and len(self._samples[now]) >= 2 and statistics.median(self._samples[now]) > DROP * min(others):
            self._active.remove(now)   # much slower: not worth more batches this time
        if all(len(self._samples[n]) >= self.rounds for n in self._active):
            self._choose()
            return
        left = [n for n in self._active if len(self._samples[n]) < self.rounds]
        self._apply(left[(left.index(now) + 1) % len(left)] if now in left else left[0])

    def _choose(self) -> None:
        medians = {n: statistics.median(self._samples[n]) for n in self._active}
        fastest = min(medians.values())
        chosen = min(n for n, m in medians.items() if m <= fastest * TIE)
        same = bool(self.choices) and self.choices[-1] == chosen   # a stable choice is checked less often
        self.recheck_s = min(self.recheck_s * 2, self.max_recheck_s) if same else self.base_recheck_s
        self.chosen = chosen
        self.choices.append(chosen)
        self._baseline = medians[chosen]
        self._since = self._clock()
        self._recent.clear()
        self._apply(chosen)
        if self.on_choice is not None:
            self.on_choice(chosen, {str(n): round(m * 1000, 2) for n, m in sorted(medians.items())})

    # --- holding the choice ------------------------------------------------------------------------
    def _held(self, seconds: float) -> None:
        self._recent.append(seconds)
        slower = len(self._recent) >= 3 and statistics.median(self._recent) > SLOWER * self._baseline
        if slower:
            self.recheck_s = self.base_recheck_s
        if slower or self._clock() - self._since > self.recheck_s:
            self._start_measuring()

    def _apply(self, threads: int) -> None:
        if threads != self.threads:
            self._set(threads)
            self.threads = threads


def set_training_threads(threads: int, host_default: int) -> None:
    """``threads`` for the calling thread; the process-wide default stays ``host_default``.

    ``torch.set_num_threads`` sets the caller's OpenMP and MKL counts and the default that threads
    starting torch work later take; a short helper thread puts that default back, so a WebUI thread
    that starts generating while a run trains does not keep the run's count for good.
    """
    import torch

    torch.set_num_threads(threads)
    if threads != host_default:
        helper = threading.Thread(target=torch.set_num_threads, args=(host_default,), name="lora-trainer-threads")
        helper.start()
        helper.join()


@contextlib.contextmanager
def cpu_training_threads(on_cpu: bool) -> Iterator[Optional[CpuThreads]]:
    """``with cpu_training_threads(on_cpu) as tuner:`` — a ``CpuThreads`` for a run on the CPU (None on a
    GPU, or when ``OMP_NUM_THREADS`` pins the count); the calling thread's count is restored on leaving."""
    if not on_cpu or os.environ.get("OMP_NUM_THREADS"):
        yield None
        return
    import torch

    before = torch.get_num_threads()
    tuner = CpuThreads(before, lambda n: set_training_threads(n, before))
    try:
        yield tuner
    finally:
        if tuner.threads != before:
            set_training_threads(before, before)
