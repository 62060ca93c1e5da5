"""The run's precision: the dtype the frozen base and the LoRA's compute copies use, and the Accelerator.

Neither bf16 nor fp16 trains under autocast. The frozen weights and the LoRA's compute copies are in
that dtype already, and autocast would only run every layer and group norm in fp32 — an fp32 copy of
each norm's input kept for the backward pass and a cast back after it, about a fifth of the GPU time
of an SDXL step and a tenth of its memory — for outputs that are rounded to the compute dtype before
the next layer anyway (the native half-precision norms and softmax accumulate in fp32 as well). fp16
keeps accelerate's loss scaler (``accelerator.backward``, the clip and the optimizer step use it); only
the autocast that ``accelerator.prepare`` wraps around a model's forward is taken off again.
"""
from __future__ import annotations

import torch

from ..config.schema import TrainConfig
from ..errors import ConfigError
from ..text.messages import msg

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def accelerate_precision(cfg: TrainConfig) -> str:
    """What accelerate is asked for: fp16 for its loss scaler, nothing otherwise."""
    return "fp16" if cfg.mixed_precision == "fp16" else "no"


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    if cfg.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError(msg("train.fp16_cpu"), msg("train.fp16_cpu.advice"))
    # accelerate keeps its settings in a process-wide singleton and refuses a second Accelerator
    # with another precision; the WebUI runs many jobs in one process, so each run starts afresh
    # (the process-group part, PartialState, is kept).
    try:
        from accelerate.state import AcceleratorState, GradientState
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
    except (ImportError, AttributeError, TypeError):
        pass
    return Accelerator(mixed_precision=accelerate_precision(cfg), cpu=not torch.cuda.is_available())


def prepare_model(accelerator, model: torch.nn.Module) -> torch.nn.Module:
    """``accelerator.prepare(model)`` (placement, DDP with several processes) with the model's own forward
    back in place of the autocast wrapper accelerate puts around it for fp16. accelerate keeps the forward
    it replaced as ``_original_forward`` (every version from 0.21 on); its own way back, ``unwrap_model(...,
    keep_fp32_wrapper=False)``, leaves an unbound function as the forward in 0.21."""
    prepared = accelerator.prepare(model)
    inner = accelerator.unwrap_model(prepared)
    original = inner.__dict__.pop("_original_forward", None)
    if original is not None:
        inner.forward = original
    return prepared
