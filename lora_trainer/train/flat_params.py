"""A few flat fp32 tensors per optimizer group, for optimizers that step their tensors one by one in Python.

A LoRA has hundreds to thousands of small weight tensors (SDXL rank 32: 1,400 in the UNet). bitsandbytes'
8-bit optimizers launch a kernel per tensor, Lion and Prodigy a dozen (Prodigy also reads a number back
to the host per tensor): after a replayed CUDA-graph step that update is most of the step (SD1.5 batch 2 on
an H200: 36 ms with AdamW, 64 ms with AdamW8bit, 101 ms with Prodigy). Their updates are elementwise
within a group (Prodigy's and D-Adaptation's step size is a sum over all tensors anyway), so a few flat
tensors per group (``FLAT_CHUNK_ELEMENTS`` values at most) step the same weights with a few launches.

The weights and their gradients become views into the group's flat tensors and their gradients, which
therefore stay allocated between steps and are cleared in place (``step.step_optimizer``). Adafactor is
not flattened (it factors each weight's second moment by its rows and columns): it steps the tensors of
one shape together instead (``grouped_adafactor.py``).
"""
from __future__ import annotations

import torch

from .optimizers import canonical_optimizer_type

FLAT_TYPES = frozenset({"AdamW8bit", "PagedAdamW8bit", "Lion8bit", "PagedLion8bit", "SGDNesterov8bit", "Lion",
                        "Prodigy", "DAdaptAdam", "DAdaptLion"})
FLAT_MARK = "_lora_trainer_flat"


def flattens(optimizer_type: str, processes: int) -> bool:
    """Whether a run of ``optimizer_type`` steps flat groups (one process: several reduce the compute
    copies' gradients before they reach the buffers)."""
    return processes == 1 and canonical_optimizer_type(optimizer_type) in FLAT_TYPES


# Optimizers written for one tensor at a time make whole-size temporaries in their step (Prodigy: p0 - p and
# the denominator; Lion: the update), so one flat tensor of an SDXL rank-64 LoRA (170 M values, 680 MB) would
# add GBs to the step's peak memory. A group is cut into flat tensors of at most this many values (64 MB of
# fp32): a handful of launches more, temporaries no larger than one of them.
FLAT_CHUNK_ELEMENTS = 1 << 24


@torch.no_grad()
def flat_groups(groups: list[dict]) -> list[dict]:
    """``groups`` with each group's tensors replaced by flat fp32 parameters holding their values (consecutive
    tensors, at most ``FLAT_CHUNK_ELEMENTS`` values each unless one tensor is larger); the tensors become
    views into them, and their gradients views into their (zeroed) gradients."""
    out = []
    for group in groups:
        params = list(group["params"])
        if not params or len({(p.dtype, p.device) for p in params}) > 1:
            out.append(group)
            continue
        out.append({**group, "params": [_flat(chunk) for chunk in _chunks(params)]})
    return out


def _chunks(params: list) -> list[list]:
    chunks, size = [[]], 0
    for p in params:
        if chunks[-1] and size + p.numel() > FLAT_CHUNK_ELEMENTS:
            chunks.append([])
            size = 0
        chunks[-1].append(p)
        size += p.numel()
    return chunks


def _flat(params: list) -> torch.nn.Parameter:
    first = params[0]
    flat = torch.nn.Parameter(torch.empty(sum(p.numel() for p in params), dtype=first.dtype, device=first.device))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        flat.data[offset:offset + n].copy_(p.data.reshape(-1))
        p.data = flat.data[offset:offset + n].view_as(p)
        p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    setattr(flat, FLAT_MARK, True)
    return flat


def is_flat(optimizer) -> bool:
    inner = getattr(optimizer, "optimizer", optimizer)
    return any(getattr(p, FLAT_MARK, False) for group in inner.param_groups for p in group["params"])
