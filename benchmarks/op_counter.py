"""Counts the operations torch dispatches inside a ``with`` block, by name (``mm``, ``mul``, ``copy_``…): for
``step_ops.py`` and the tests that check what a step runs."""
from __future__ import annotations

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode


class Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))
