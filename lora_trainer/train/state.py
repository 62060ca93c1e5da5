"""Resumable training state: LoRA (fp32), optimizer, scheduler, RNGs, position.

Saved as a folder next to each saved epoch (``<name>-000003-state/``). The folder is
written under a temporary name and renamed when complete, so a crash never leaves a
state that looks whole but is not.

Nothing in a state is unpickled: the tensors are in ``state.tensors`` (the safetensors format;
the extension keeps the WebUI's Lora tab from listing it) and everything else in
``state.json``, where a tensor is written as ``{"$tensor": name}``. A state folder can come from
anyone (a shared WebUI's caller names it), and loading it must never run code.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import shutil
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import TrainerError
from ..io.atomic import temp_path_for
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

STATE_VERSION = 2
TENSORS_FILE = "state.tensors"
INFO_FILE = "state.json"
# settings that must match for a resumed run to be the same run
RESUME_KEYS = ("network_dim", "network_alpha", "conv_dim", "conv_alpha", "network_args",
               "network_train_unet_only", "network_train_text_encoder_only", "train_batch_size",
               "gradient_accumulation_steps", "seed", "optimizer_type", "validation_split", "algo", "dora_wd",
               "factor", "down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_dims", "block_alphas",
               "conv_block_dims", "conv_block_alphas", "dim_from_weights")


@dataclass
class RngStates:
    python: Any
    torch_cpu: torch.Tensor
    torch_cuda: list | None
    noise: torch.Tensor

    @classmethod
    def capture(cls, caption_rng: random.Random, noise_gen: torch.Generator,
                all_devices: bool = True) -> "RngStates":
        """The random states now; ``all_devices`` false: only this process's own GPU (one process per GPU,
        where reading the others would open a context on each of them)."""
        cuda = None
        if torch.cuda.is_available():
            cuda = torch.cuda.get_rng_state_all() if all_devices else [torch.cuda.get_rng_state()]
        return cls(caption_rng.getstate(), torch.get_rng_state(), cuda, noise_gen.get_state())

    def restore(self, caption_rng: random.Random, noise_gen: torch.Generator) -> None:
        caption_rng.setstate(self.python)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None and torch.cuda.is_available():
            if len(self.torch_cuda) == 1:
                torch.cuda.set_rng_state(self.torch_cuda[0])   # this process's GPU
            else:
                torch.cuda.set_rng_state_all(self.torch_cuda)
        noise_gen.set_state(self.noise)

    def to_values(self) -> dict:
        return {"python": self.python, "torch_cpu": self.torch_cpu, "torch_cuda": self.torch_cuda,
                "noise": self.noise}

    @classmethod
    def from_values(cls, values: dict) -> "RngStates":
        return cls(values["python"], values["torch_cpu"], values["torch_cuda"], values["noise"])


@contextlib.contextmanager
def global_generators_kept(device: torch.device):
    """Leaves torch's global generators (CPU, and ``device``'s when it is a CUDA device in use) as they were.
    Around what a listener runs inside the training thread: a WebUI's txt2img seeds them for every picture
    (A1111's ``rng.randn`` calls ``torch.manual_seed``), which would otherwise replay the same LoRA dropout
    masks after every epoch's previews, and make the run differ from the same run without previews."""
    cpu = torch.get_rng_state()
    cuda = None
    if device.type == "cuda" and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state(device)
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)


@dataclass
class TrainingState:
    step: int                 # optimizer steps done
    epoch: int                # epochs fully done
    batch_in_epoch: int       # batches of the next epoch already consumed (interrupted runs)
    lora: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    rng: RngStates
    config: dict
    num_processes: int = 1    # the processes that trained it (accelerate launch); states before 2 say nothing: 1
    rank_rngs: list = field(default_factory=list)   # each process's RngStates, with more than one


# --- nested values with tensors, as JSON + safetensors ----------------------------------------------------

def _encode(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` under names derived from ``name``."""
    if isinstance(value, torch.Tensor):
        key = f"{name}#{len(tensors)}"
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()   # a copy: no shared storage
        return {"$tensor": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{name}.{k}", tensors) for k, v in value.items()}
        return {"$dict": [[_encode(k, name, tensors), _encode(v, f"{name}.{k}", tensors)]
                          for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a training state cannot hold {type(value).__name__} ({name})")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"$tensor"}:
        return tensors[value["$tensor"]]
    if set(value) == {"$tuple"}:
        return tuple(_decode(v, tensors) for v in value["$tuple"])
    if set(value) == {"$dict"}:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["$dict"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def save_state(state_dir: str, *, step: int, epoch: int, batch_in_epoch: int, lora: dict[str, torch.Tensor],
               optimizer: dict, scheduler: dict, rng: RngStates, config: dict,
               rank_rngs: list | None = None) -> str:
    """``rank_rngs``: each process's random states when several processes trained (``rng`` is the first's);
    a one-process state is written as before."""
    from safetensors.torch import save_file

    parent = os.path.dirname(os.path.abspath(state_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = str(temp_path_for(os.path.join(parent, os.path.basename(state_dir))))   # removed after a kill
    os.makedirs(tmp)
    try:
        tensors: dict[str, torch.Tensor] = {}
        info = {"version": STATE_VERSION, "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                "config": config, "lora": _encode(lora, "lora", tensors),
                "optimizer": _encode(optimizer, "optimizer", tensors),
                "scheduler": _encode(scheduler, "scheduler", tensors),
                "rng": _encode(rng.to_values(), "rng", tensors)}
        if rank_rngs and len(rank_rngs) > 1:
            info["num_processes"] = len(rank_rngs)
            info["rank_rngs"] = [_encode(r.to_values(), f"rank_rng{i}", tensors) for i, r in enumerate(rank_rngs)]
        save_file(tensors, os.path.join(tmp, TENSORS_FILE))
        with open(os.path.join(tmp, INFO_FILE), "w", encoding="utf-8") as fh:
            json.dump(info, fh, ensure_ascii=False, indent=1)
        if os.path.exists(state_dir):
            old = str(temp_path_for(state_dir))
            os.replace(state_dir, old)
            os.replace(tmp, state_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, state_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return state_dir


def _load_version_1(state_dir: str, info: dict) -> dict:
    """A state saved before version 2 (``.pt`` files): read with torch's weights-only loader, which refuses
    anything but tensors and plain containers."""
    from safetensors.torch import load_file

    parts = {"lora": load_file(os.path.join(state_dir, "lora.safetensors"))}
    for name in ("optimizer", "scheduler", "rng"):
        try:
            parts[name] = torch.load(os.path.join(state_dir, f"{name}.pt"), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise TrainerError(msg("state.pickle", folder=state_dir, name=name), msg("state.pickle.advice")) from None
    return {**info, **parts}


def load_state(state_dir: str) -> TrainingState:
    from safetensors.torch import load_file

    info_path = os.path.join(state_dir, INFO_FILE)
    if not os.path.isfile(info_path):
        raise TrainerError(msg("state.not_state", folder=state_dir, file=INFO_FILE), msg("state.not_state.advice"))
    try:
        with open(info_path, encoding="utf-8") as fh:
            info = json.load(fh)
        if not isinstance(info, dict):
            raise ValueError(sentence("state.not_object", file=INFO_FILE))
        if info.get("version", 1) < 2:
            values = _load_version_1(state_dir, info)
        else:
            values = _decode(info, load_file(os.path.join(state_dir, TENSORS_FILE)))
        return TrainingState(step=int(values["step"]), epoch=int(values["epoch"]),
                             batch_in_epoch=int(values.get("batch_in_epoch", 0)), lora=values["lora"],
                             optimizer=values["optimizer"], scheduler=values["scheduler"],
                             rng=RngStates.from_values(values["rng"]), config=values.get("config", {}),
                             num_processes=int(values.get("num_processes", 1)),
                             rank_rngs=[RngStates.from_values(r) for r in values.get("rank_rngs", [])])
    except TrainerError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        raise TrainerError(msg("state.unreadable", folder=state_dir, error=err), msg("state.unreadable.advice")) from None


def saved_processes(state_dir: str) -> int | None:
    """How many processes trained the state in ``state_dir`` (read before the model loads); None when its
    ``state.json`` cannot be read (``load_state`` says why later)."""
    try:
        with open(os.path.join(state_dir, INFO_FILE), encoding="utf-8") as fh:
            info = json.load(fh)
        return int(info.get("num_processes", 1)) if isinstance(info, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def refuse_other_process_count(state_dir: str, saved: int, now: int) -> None:
    """A state resumes with the number of processes that saved it: the global batch, the steps per epoch,
    the schedule and the position in the epoch all depend on it (as they do on ``train_batch_size``)."""
    if saved != now:
        raise TrainerError(msg("state.resume_processes", folder=state_dir, saved=saved, now=now),
                           msg("state.resume_processes.advice", saved=saved))


def resume_mismatches(saved: dict, current: dict) -> list[str]:
    return [f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in RESUME_KEYS
            if k in saved and saved.get(k) != current.get(k)]
