"""Fake ``modules.sd_models``: the checkpoint list and the model moves, per profile.

A1111: ``unload_model_weights`` moves the model to the CPU and only ``send_model_to_device``
brings it back. Forge: both are no-ops besides unloading through ``backend.memory_management``;
``select_checkpoint`` returns None instead of raising when there is no checkpoint.
"""
from __future__ import annotations

import hashlib
import os

from . import _fake

checkpoints_list: dict = {}
checkpoint_aliases: dict = {}
selected_filename = None


class CheckpointInfo:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.name = os.path.basename(filename)
        self.model_name = os.path.splitext(self.name)[0]
        self.name_for_extra = self.model_name
        self.hash = hashlib.sha256(filename.encode()).hexdigest()[:8]
        self.shorthash = self.hash[:10]
        self.sha256 = None
        self.title = f"{self.name} [{self.hash}]"
        self.metadata = {}


class SdModelData:
    def __init__(self) -> None:
        self.sd_model = None
        self.loaded_sd_models = []
        self.forge_loading_parameters = {}


model_data = SdModelData()


def list_models() -> None:
    _fake.record("list_models")
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    folder = os.path.join(str(_fake.root), "models", "Stable-diffusion")
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith((".safetensors", ".ckpt")):
                info = CheckpointInfo(os.path.join(dirpath, name))
                checkpoints_list[info.title] = info
                checkpoint_aliases[info.title] = checkpoint_aliases[info.name] = info


def checkpoint_for(filename: str) -> CheckpointInfo:
    for info in checkpoints_list.values():
        if os.path.abspath(info.filename) == os.path.abspath(filename):
            return info
    return CheckpointInfo(filename)


def checkpoint_tiles(use_short=False) -> list:
    return [info.title for info in checkpoints_list.values()]


def get_closet_checkpoint_match(search_string):
    for info in checkpoints_list.values():
        if search_string in info.title:
            return info
    return None


def select_checkpoint():
    _fake.record("select_checkpoint")
    if selected_filename:
        return checkpoint_for(selected_filename)
    if checkpoints_list:
        return next(iter(checkpoints_list.values()))
    if _fake.profile == "forge":
        return None
    raise FileNotFoundError("No checkpoints found.")


def unload_model_weights(sd_model=None, info=None):
    _fake.record("unload_model_weights")
    if _fake.profile == "forge":
        from backend import memory_management
        memory_management.unload_all_models()
        return sd_model
    from . import shared
    send_model_to_cpu(sd_model or shared.sd_model)
    return sd_model


def send_model_to_cpu(m) -> None:
    _fake.record("send_model_to_cpu")
    if _fake.profile == "a1111" and m is not None:
        m.to("cpu")


def send_model_to_device(m) -> None:
    _fake.record("send_model_to_device")
    if _fake.profile == "a1111" and m is not None:
        m.to("cuda")


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    """Like the real one: nothing moves when the checkpoint is unchanged (a CPU model stays there)."""
    _fake.record("reload_model_weights")
    return model_data.sd_model
