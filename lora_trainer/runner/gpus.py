"""Which GPUs a job trains on: the ones this process sees, the user's choice checked against them, and whether
the choice trains here (the WebUI's own GPU, a background thread) or in processes of their own (several GPUs, or
one the WebUI does not use)."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Optional

from ..errors import ConfigError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)


def visible_gpus() -> list[tuple[str, str]]:
    """(index, label) of each CUDA device this process sees ("0", "0 · NVIDIA H200, 139 GB"); none without
    torch, or without CUDA. Torch is not imported for this: a WebUI has it loaded already."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return []
        found = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append((str(index), f"{index} · {props.name}, {props.total_memory / 1e9:.0f} GB"))
        return found
    except Exception:   # a broken driver: as if there were none
        return []


def own_gpu() -> Optional[str]:
    """The index of the GPU this process trains on in a thread (torch's current device), if any."""
    torch = sys.modules.get("torch")
    try:
        return str(torch.cuda.current_device()) if torch is not None and torch.cuda.is_available() else None
    except Exception:
        return None


def chosen_gpus(requested: Any, visible: Optional[Iterable[str]] = None) -> tuple[str, ...]:
    """The requested GPU indices (a list of numbers, or labels as the tab lists them) checked against those this
    process sees; () for none requested (the WebUI's own). ``ConfigError`` for one that does not exist."""
    if requested in (None, "", [], ()):
        return ()
    if not isinstance(requested, (list, tuple)):
        raise ConfigError(msg("gpus.not_list", value=repr(requested)), msg("gpus.advice"))
    seen = [index for index, _ in visible_gpus()] if visible is None else [str(v) for v in visible]
    chosen: list[str] = []
    for item in requested:
        index = str(item).split("·")[0].strip()
        if isinstance(item, bool) or index not in seen:
            raise ConfigError(msg("gpus.unknown", gpu=str(item), seen=", ".join(seen) or msg("gpus.none")),
                              msg("gpus.advice"))
        if index not in chosen:
            chosen.append(index)
    return tuple(sorted(chosen, key=int))


def trains_here(gpus: Iterable[str], own: Optional[str] = None) -> bool:
    """Whether ``gpus`` train in this process: none chosen, or just the one it uses itself."""
    gpus = tuple(gpus)
    return not gpus or (len(gpus) == 1 and gpus[0] == (own if own is not None else own_gpu()))


def physical_ids(gpus: Iterable[str], visible_env: Optional[str] = None) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` for processes of their own: this process's indices mapped through its own
    ``CUDA_VISIBLE_DEVICES`` (a WebUI started on "2,3" calls those 0 and 1)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES") if visible_env is None else visible_env
    mine = [part.strip() for part in (env or "").split(",") if part.strip()]
    return [mine[int(g)] if mine and int(g) < len(mine) else str(g) for g in gpus]
