"""Copies between lists of tensors in one launch, also on the WebUIs' older torch builds.

``torch._foreach_copy_`` (torch 2.1 on) copies a whole list with a few kernels and casts on the way (the
fp32 masters into their bf16 compute copies, and back for gradients). An A1111 venv kept from before
torch 2.1 lacks it; there each tensor is copied on its own.
"""
from __future__ import annotations

import torch


def copy_into(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """Each source into its target (cast to its dtype)."""
    foreach = getattr(torch, "_foreach_copy_", None)
    if foreach is not None:
        foreach(targets, sources)
        return
    for target, source in zip(targets, sources):
        target.copy_(source)
