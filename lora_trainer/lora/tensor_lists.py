"""Copies and scalings of lists of tensors in a few launches, also on the WebUIs' older torch builds.

``torch._foreach_copy_`` (torch 2.1 on) copies a whole list with a few kernels and casts on the way (the
fp32 masters into their bf16 compute copies, and back for gradients). An A1111 venv kept from before
torch 2.1 lacks it; there each tensor is copied on its own.
"""
from __future__ import annotations

import torch

# the most values one scaled copy holds in fp32 temporaries at a time (64 MB)
SCALED_CHUNK_ELEMENTS = 1 << 24


def copy_into(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """Each source into its target (cast to its dtype)."""
    foreach = getattr(torch, "_foreach_copy_", None)
    if foreach is not None:
        foreach(targets, sources)
        return
    for target, source in zip(targets, sources):
        target.copy_(source)


def scale_in_place(tensors: list[torch.Tensor], scales: list[float]) -> None:
    """Each tensor times its scale."""
    torch._foreach_mul_(tensors, scales)


def add_scaled_into(targets: list[torch.Tensor], sources: list[torch.Tensor], scales: list[float]) -> None:
    """Each target plus its source times its scale (computed in the target's precision)."""
    for scale in sorted(set(scales)):
        chosen = [i for i, s in enumerate(scales) if s == scale]
        torch._foreach_add_([targets[i] for i in chosen], [sources[i] for i in chosen], alpha=scale)


def copy_scaled_into(targets: list[torch.Tensor], sources: list[torch.Tensor], scales: list[float]) -> None:
    """Each source times its scale into its target, cast once from the source's precision; the products are
    made a chunk of at most ``SCALED_CHUNK_ELEMENTS`` values at a time."""
    start, size = 0, 0
    for end, source in enumerate(sources, 1):
        size += source.numel()
        if size >= SCALED_CHUNK_ELEMENTS or end == len(sources):
            copy_into(targets[start:end], torch._foreach_mul(sources[start:end], scales[start:end]))
            start, size = end, 0
