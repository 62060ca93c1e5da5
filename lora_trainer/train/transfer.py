"""Host-to-device copies that do not make the CPU wait for the GPU."""
from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """A host tensor on ``device`` without waiting for the GPU: a plain copy from pageable memory
    synchronises the stream, so the CPU could not queue the next step while this one runs."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
