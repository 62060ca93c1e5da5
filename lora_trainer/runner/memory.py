"""Give the memory of a finished run back to the process that hosts the runner.

The WebUI keeps running after a job: the trainer's copy of the base model must leave the GPU's
cache (so the WebUI's own model fits again) and, on Linux, the C heap (PyTorch's CPU tensors are
freed to glibc, which otherwise keeps gigabytes mapped in the WebUI process).
"""
from __future__ import annotations

import ctypes
import gc
import sys


def release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):   # not glibc (e.g. musl): nothing to trim
            pass
