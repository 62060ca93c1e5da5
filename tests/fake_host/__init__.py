"""A stand-in for the WebUI (A1111 1.10 or Forge) with only what the extension imports.

``activate(profile, root=...)`` puts the fake ``modules`` package (and, for Forge, ``modules_forge``
and ``backend``) first on ``sys.path`` and returns ``modules._fake``, which records every host call
in order (``calls``) and every processing object (``processed``). The queue lock is a real
non-reentrant lock: a deadlock in the code under test shows as a hung test.

Profiles: "a1111" (model moved by ``unload_model_weights`` / ``send_model_to_device``; a preview
with the model on the CPU fails, as on the real host) and "forge" (``backend.memory_management``,
model loaded lazily at the first generation, LoRA state dicts cached by path).
"""
from __future__ import annotations

import importlib
import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEBUI = str(HERE / "webui")
FORGE = str(HERE / "forge")
HOST_PACKAGES = ("modules", "modules_forge", "backend", "networks", "launch")

_FAMILY_KEYS = {
    "sd1": ["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"],
    "sd2": ["cond_stage_model.model.ln_final.weight"],
    "sdxl": ["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
             "conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.label_emb.0.0.weight"],
}


def deactivate() -> None:
    for path in (WEBUI, FORGE):
        while path in sys.path:
            sys.path.remove(path)
    for name in list(sys.modules):
        if name.split(".")[0] in HOST_PACKAGES:
            del sys.modules[name]


def activate(profile: str = "a1111", *, root, loaded=None, lora_dir=None, api_auth=None, selected=None):
    """Start a fake host whose data folder is ``root`` (``models/Stable-diffusion``, ``models/Lora``).

    ``loaded``: checkpoint path of the model in memory (A1111; Forge loads at the first generation);
    ``selected``: the checkpoint chosen in the UI (defaults to ``loaded``).
    """
    if profile not in ("a1111", "forge"):
        raise ValueError(f"unknown fake host profile {profile!r}")
    deactivate()
    for path in ([FORGE] if profile == "forge" else []) + [WEBUI]:
        sys.path.insert(0, path)
    fake = importlib.import_module("modules._fake")
    fake.configure(profile, Path(root), loaded=loaded, selected=selected or loaded, lora_dir=lora_dir,
                   api_auth=api_auth)
    importlib.import_module("networks")   # the built-in Lora extension is loaded at start in both hosts
    return fake


def write_checkpoint(path, family: str) -> Path:
    """A tiny header-valid .safetensors whose key names say ``family`` (not loadable as a model)."""
    keys = ["model.diffusion_model.input_blocks.0.0.weight"] + _FAMILY_KEYS[family]
    return _write_safetensors(path, keys, {})


def write_lora(path, family: str) -> Path:
    """A tiny kohya-keyed LoRA file with the metadata the hosts read its model version from."""
    version = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}[family]
    keys = [f"lora_unet_mid_block_attentions_0_proj_in.{part}" for part in ("lora_down.weight", "lora_up.weight",
                                                                            "alpha")]
    return _write_safetensors(path, keys, {"ss_base_model_version": version, "ss_v2": str(family == "sd2")})


def _write_safetensors(path, keys, metadata) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"__metadata__": metadata} if metadata else {}
    for i, key in enumerate(keys):
        header[key] = {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * (4 * len(keys)))
    return path


def family_of(path) -> str:
    """The fake host's own reading of a checkpoint's family (it does not use the trainer's code)."""
    text = Path(path).read_bytes()[:1 << 20]
    if b"conditioner.embedders.1" in text:
        return "sdxl"
    if b"cond_stage_model.model." in text:
        return "sd2"
    return "sd1"


__all__ = ["activate", "deactivate", "write_checkpoint", "write_lora", "family_of"]
