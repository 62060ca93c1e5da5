"""What the processes of a data-parallel run (``accelerate launch``) agree on besides the gradients.

Every function is called by every process at the same point of the loop (a collective), and does nothing
but return its input when the run has one process. torch.distributed is used directly: the calls are the
same on accelerate 0.21 and 1.x, on gloo (CPU) and NCCL (GPUs).
"""
from __future__ import annotations

import torch


def _world(accelerator) -> int:
    return int(getattr(accelerator, "num_processes", 1) or 1)


def mean_across(accelerator, values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the processes (each process's losses of its own batches → the run's loss)."""
    if _world(accelerator) == 1:
        return values
    import torch.distributed as dist

    values = values.detach().float().clone()
    dist.all_reduce(values)
    return values / _world(accelerator)


def any_across(accelerator, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (a stop asked of one process stops them all at
    the same batch: a process that stopped alone would leave the others waiting for its gradients)."""
    if _world(accelerator) == 1:
        return flag
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(accelerator, value) -> list:
    """``value`` of every process, in process order (the main process saves each process's random states)."""
    if _world(accelerator) == 1:
        return [value]
    import torch.distributed as dist

    values: list = [None] * _world(accelerator)
    dist.all_gather_object(values, value)
    return values


def end_process_group(orderly: bool = True) -> None:
    """Ends the process group ``accelerate launch`` started, while the interpreter is whole. Left to the
    interpreter's exit, gloo's worker threads may free tensors after Python is torn down, and a process whose
    run finished aborts (SIGABRT). ``orderly``: every process's run ended normally, so they first wait for each
    other (one that returned early would otherwise tear its side down while the main one still writes files);
    after a failure no process waits for the others."""
    import gc

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if orderly:
        dist.barrier()
    gc.collect()   # the run's DDP model and its reducer hold the group: released first
    dist.destroy_process_group()
