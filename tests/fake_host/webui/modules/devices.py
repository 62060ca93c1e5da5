"""Fake ``modules.devices``: the CPU, fp32."""
from __future__ import annotations

from . import _fake

try:
    import torch
    device = cpu = torch.device("cpu")
    dtype = dtype_vae = dtype_unet = torch.float32
except ImportError:   # the torch-free test environment
    device = cpu = "cpu"
    dtype = dtype_vae = dtype_unet = None


def torch_gc() -> None:
    _fake.record("torch_gc")
