"""What a training run tells its listener (the CLI's progress bar, the WebUI runner).

A listener is any callable taking one event. ``StopRequest`` is how a listener (or
another thread) asks the loop to stop at the next step; the loop then saves an
``-interrupted`` file and state.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Started:
    total_steps: int
    epochs: int
    steps_per_epoch: int
    plan_text: str
    warnings: list[str] = field(default_factory=list)
    start_step: int = 0
    run_dir: str = ""    # this run's folder: logs, training states, previews


@dataclass
class StepEnd:
    step: int            # optimizer steps done so far (1-based)
    total_steps: int
    epoch: int           # 1-based
    loss: Optional[float]  # None when not read back this step (no host sync)
    lrs: dict[str, float]
    it_per_s: Optional[float] = None
    peak_memory_gb: Optional[float] = None


@dataclass
class EpochEnd:
    epoch: int
    step: int
    mean_loss: float


@dataclass
class Validated:
    """The validation loss after an epoch (``source``: "holdout" images or fixed-noise "training" images)."""
    epoch: int
    step: int
    loss: float
    source: str
    images: int


@dataclass
class FileSaved:
    path: str
    epoch: int
    step: int
    state_dir: Optional[str]
    kind: str  # "epoch" | "final" | "interrupted"
    removed_states: list[str] = field(default_factory=list)   # older states deleted (save_last_n_epochs_state)


@dataclass
class SampleWanted:
    """A LoRA file was saved and previews for it may be rendered now (the loop does not wait)."""
    lora_path: str
    epoch: int
    step: int


@dataclass
class Finished:
    files: list[str]
    stopped: bool
    final_loss: Optional[float]


@dataclass
class Failed:
    error: BaseException
    files: list[str]


Listener = Callable[[object], None]


class StopRequest:
    """Thread-safe stop flag shared by the loop and whoever controls it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()
