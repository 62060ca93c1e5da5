"""CUDA-graph replay of the training step.

An eager SD step launches thousands of small kernels from Python; at batch 1 the GPU
waits for the CPU most of the step. Captured once per input shape and replayed, the
forward and backward pass become one launch. Noise, timesteps and prompt conditioning are
sampled eagerly (they need the host) and copied into the graph's static inputs; the LR
schedule and max-norm run eagerly after each replay.

The optimizer update joins the graph when it can (torch's AdamW, ``capturable`` with a
device-side learning rate, bf16 or fp32, no gradient accumulation). Otherwise the graph
holds the loss and the backward pass, which add each batch's gradients into fixed fp32
buffers, and the update runs eagerly after the last batch of a step: any optimizer (8-bit,
Lion, Prodigy, Adafactor), fp16's loss scaler (it reads the host to skip overflowing steps)
and gradient accumulation. ``graph_blockers`` says what stops capture altogether,
``update_blockers`` what keeps the update out of the graph.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Optional

import torch

from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)
from .optimizers import optimizer_name
from .step import (StepInputs, StepModels, accumulate_gradients, loss_from_inputs, optimizer_update,
                   sample_inputs, step_optimizer)


def torch_older_than(major: int, minor: int) -> bool:
    try:
        found = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    except ValueError:
        return False
    return found < (major, minor)


def dropout_active(cfg) -> bool:
    net = cfg.network_kwargs()
    return bool(cfg.network_dropout or net["rank_dropout"] or net["module_dropout"])


def graph_blockers(cfg, accelerator, optimizer) -> list[str]:
    """Why the step cannot be captured at all (empty when it can), as keyed sentences."""
    reasons = []
    if torch_older_than(2, 4):
        reasons.append(sentence("train.graphs.old_torch", version=torch.__version__))
    if accelerator.device.type != "cuda":
        reasons.append(sentence("train.graphs.no_cuda"))
    if accelerator.num_processes > 1:
        reasons.append(sentence("train.graphs.ddp"))
    if cfg.gradient_checkpointing and dropout_active(cfg):
        reasons.append(sentence("train.graphs.dropout"))
    return reasons


def update_blockers(cfg, optimizer) -> list[str]:
    """Why the optimizer update stays outside the captured step (empty when it joins it)."""
    reasons = []
    if cfg.mixed_precision == "fp16":
        reasons.append(sentence("train.graphs.fp16"))
    if cfg.gradient_accumulation_steps > 1:
        reasons.append(sentence("train.graphs.accumulation"))
    inner = getattr(optimizer, "optimizer", optimizer)
    if type(inner) is not torch.optim.AdamW:
        reasons.append(sentence("train.graphs.optimizer", name=optimizer_name(inner)))
    return reasons


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: StepInputs
    loss: torch.Tensor


class CaptureSchedule:
    """Which steps of each input shape (bucket) run eagerly and when a shape is captured.

    Nothing is captured before ``first_warmup`` eager steps, of any shapes: they make the lazy state a
    capture cannot (the optimizer's state, cuBLAS's workspace on the capture stream, the fp32
    gradient buffers), none of which depends on the shape. After them a shape is captured at its first
    step unless it needs ``later_warmup`` eager steps of its own (0 unless the UNet's blocks are
    compiled: a new shape compiles first), so it skips an eager step, its seconds (an SDXL step
    with checkpointing is about seven replays) and its memory beside the graphs' pool. A capture
    that fails before any eager step of its shape is tried once more after one; one that fails
    after it leaves that shape eager, or every shape when none has been captured (the step itself
    cannot be). ``capture_seconds`` and ``warmup_seconds`` time the captures and the eager steps
    before them (the seconds a short run pays for its graphs)."""

    def __init__(self, first_warmup: int, later_warmup: int = 0) -> None:
        self.first_warmup = max(1, first_warmup)
        self.later_warmup = max(0, later_warmup)
        self.eager_steps: dict[tuple, int] = {}
        self.needed: dict[tuple, int] = {}
        self.captured: list[tuple] = []
        self.unwarmed: list[tuple] = []     # captured with no eager step of their own
        self.eager_only: set[tuple] = set()
        self.all_eager = False
        self.failures: list[str] = []       # every failed capture's error, in order
        self.capture_seconds: list[float] = []
        self.warmup_seconds: list[float] = []

    def may_capture(self, key: tuple) -> bool:
        """Whether ``key`` can still be captured (its eager steps are warm-ups, worth timing)."""
        return not (self.all_eager or key in self.eager_only)

    def capture_now(self, key: tuple) -> bool:
        if not self.may_capture(key):
            return False
        own = self.eager_steps.get(key, 0)
        if key in self.needed:
            return own >= self.needed[key]
        return sum(self.eager_steps.values()) >= self.first_warmup and own >= self.later_warmup

    def ran_eager(self, key: tuple) -> None:
        self.eager_steps[key] = self.eager_steps.get(key, 0) + 1

    def capture_succeeded(self, key: tuple) -> None:
        self.captured.append(key)
        if not self.eager_steps.get(key):
            self.unwarmed.append(key)

    def capture_failed(self, key: tuple, error: str) -> None:
        self.failures.append(error)
        if not self.eager_steps.get(key):
            self.needed[key] = 1          # one eager step of this shape, then once more
        elif self.captured:
            self.eager_only.add(key)
        else:
            self.all_eager = True

    @property
    def one_time_seconds(self) -> float:
        """The seconds spent so far on captures and warm-up steps (a run's speed leaves them out)."""
        return sum(self.capture_seconds) + sum(self.warmup_seconds)

    @property
    def failed(self) -> Optional[str]:
        """The error that left a shape (or every shape) eager; None when all were captured in the end."""
        if self.all_eager or self.eager_only:
            return self.failures[-1]
        return None

    def summary(self) -> dict:
        return {"captured": len(self.captured), "without_warmup": len(self.unwarmed),
                "eager_only": len(self.eager_only), "all_eager": self.all_eager,
                "failed_captures": len(self.failures), "errors": sorted(set(self.failures))[:3],
                "capture_s": [round(t, 3) for t in self.capture_seconds],
                "warmup_eager_s": [round(t, 3) for t in self.warmup_seconds]}


class GraphedStep:
    """``step(batch, generator, update) -> loss``, replayed from a CUDA graph per input shape
    (``CaptureSchedule`` says when each shape is captured; until then its steps run eagerly).

    With ``capture_update`` the graph holds the whole step, optimizer update included (one
    batch per update). Without it the graph holds the loss and the backward pass of one batch
    (scaled by 1 / ``accumulation``), whose gradients are added into fixed buffers; ``update``
    (the step's last batch) then runs clipping, the optimizer and the clearing of those buffers
    eagerly (``step_optimizer``).

    The warm-up steps are real training steps; every captured graph shares one memory pool,
    so several buckets cost about the memory of the largest."""

    def __init__(self, models: StepModels, accelerator, optimizer, network, params, max_grad_norm: float,
                 warmup: Optional[int] = None, capture_update: bool = True, accumulation: int = 1,
                 shape_warmup: int = 0) -> None:
        self.models = models
        self.accelerator = accelerator
        self.optimizer = optimizer
        self.network = network
        self.params = params
        self.max_grad_norm = max_grad_norm
        self.capture_update = capture_update and accumulation == 1
        self.accumulation = max(1, accumulation)
        # a captured update needs the optimizer's state made eagerly first; the backward pass alone, one step
        self.schedule = CaptureSchedule(warmup if warmup is not None else (3 if self.capture_update else 1),
                                        shape_warmup)
        self.device = accelerator.device
        self.stream = capture_stream(self.device)
        self.pool = None
        self.graphs: dict[tuple, _Captured] = {}
        if self.capture_update:
            make_capturable(optimizer, self.device)

    @property
    def failed(self) -> Optional[str]:
        return self.schedule.failed

    # one step --------------------------------------------------------------------------
    def step(self, batch, generator: torch.Generator, update: bool = True) -> torch.Tensor:
        inputs = sample_inputs(self.models, batch, generator)
        key = tuple((tuple(t.shape), t.dtype) for t in inputs.tensors())
        captured = self.graphs.get(key)
        if captured is not None:
            torch._foreach_copy_(captured.inputs.tensors(), inputs.tensors())
            captured.graph.replay()
            loss = captured.loss.clone()
        else:
            loss = self._uncaptured(key, inputs)
        if update and not self.capture_update:
            step_optimizer(self.accelerator, self.optimizer, self.network, self.params, self.max_grad_norm)
        return loss

    def _uncaptured(self, key: tuple, inputs: StepInputs) -> torch.Tensor:
        schedule = self.schedule
        if schedule.capture_now(key):
            start = time.perf_counter()
            try:
                loss = self._capture(key, inputs)
                schedule.capture_seconds.append(time.perf_counter() - start)   # its replay is only queued
                return loss
            except RuntimeError as err:  # capture records only: the step has not run yet
                schedule.capture_failed(key, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
                self._discard_capture(key)
        schedule.ran_eager(key)
        if not (schedule.may_capture(key) and self.device.type == "cuda"):
            return self._eager(inputs)
        torch.cuda.synchronize(self.device)   # a warm-up step: a few per run, the next capture waits anyway
        start = time.perf_counter()
        loss = self._eager(inputs)
        torch.cuda.synchronize(self.device)
        schedule.warmup_seconds.append(time.perf_counter() - start)
        return loss

    def _discard_capture(self, key: tuple) -> None:
        """After a failed capture: nothing it recorded ran, but a backward pass it began may have
        left gradients of the graph's memory on the compute copies, which the eager step would add to."""
        self.graphs.pop(key, None)
        for compute in getattr(self.network, "masters", {}):
            compute.grad = None
        torch.cuda.synchronize(self.device)

    def _body(self, inputs: StepInputs) -> torch.Tensor:
        loss = loss_from_inputs(self.models, inputs)
        if self.capture_update:
            self.accelerator.backward(loss)
            optimizer_update(self.accelerator, self.optimizer, self.network, self.params, self.max_grad_norm)
        else:
            accumulate_gradients(self.accelerator, self.network, loss, self.accumulation)
        return loss.detach()

    def _eager(self, inputs: StepInputs) -> torch.Tensor:
        # warm-up runs on the capture stream, so lazily made per-stream state exists before capture
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            loss = self._body(inputs)
        current.wait_stream(self.stream)
        return loss

    def _capture(self, key: tuple, inputs: StepInputs) -> torch.Tensor:
        static = StepInputs(**{name: (value.clone() if isinstance(value, torch.Tensor) else value)
                               for name, value in vars(inputs).items()})
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # the warm-up's cached blocks are not usable by the graph's pool
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
            loss = self._body(static)
        if self.pool is None:
            self.pool = graph.pool()
        self.graphs[key] = _Captured(graph, static, loss)
        self.schedule.capture_succeeded(key)
        graph.replay()  # capture records only: this replay is the step
        return loss.clone()

    def release(self) -> None:
        """Drop the captured graphs and their memory."""
        self.graphs.clear()
        self.pool = None
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()


def make_capturable(optimizer, device) -> None:
    """AdamW state and learning rate on the device, so that a captured step reads the LR the
    schedule writes into it (``fill_``) instead of the value seen at capture time."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        lr = group["lr"]
        if not (isinstance(lr, torch.Tensor) and lr.device == device):
            group["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)
    for state in getattr(optimizer, "state", {}).values():
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, torch.Tensor) and step.device != device:
            state["step"] = step.to(device, torch.float32)


def host_learning_rates(optimizer) -> None:
    """Plain float learning rates again (a state saved from a captured run, loaded eagerly)."""
    for group in optimizer.param_groups:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])


@functools.lru_cache(maxsize=None)
def _capture_stream(device_index: int):
    return torch.cuda.Stream(torch.device("cuda", device_index))


def capture_stream(device) -> "torch.cuda.Stream":
    """The one side stream every run of this process captures on. A new ``torch.cuda.Stream`` comes from
    torch's round-robin pool of 32, and cuBLAS keeps a workspace for each stream it has run on (64 MB on
    Hopper), so a new stream per run held up to 32 × 64 MB of GPU memory in a WebUI that trains many
    times (benchmarks/long_runs.py)."""
    device = torch.device(device)
    return _capture_stream(device.index if device.index is not None else torch.cuda.current_device())
