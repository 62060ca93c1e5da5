"""Forge: models are loaded on demand by its memory manager, so freeing VRAM means unloading
everything and nothing has to be restored; the loaded checkpoint is known before the model is."""
from __future__ import annotations

import importlib
from typing import Optional

from .base import Checkpoint
from .webui import WebUIAdapter, host_module

# Where the memory manager lives: Forge 2 (``backend``), then Forge 1 / reForge.
_MEMORY_MODULES = ("backend.memory_management", "ldm_patched.modules.model_management")


def _memory_management():
    for name in _MEMORY_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


class ForgeAdapter(WebUIAdapter):
    name = "forge"

    def loaded_checkpoint(self) -> Optional[Checkpoint]:
        sd_models = host_module("modules.sd_models")
        model = self._raw_model()
        params = getattr(getattr(sd_models, "model_data", None), "forge_loading_parameters", None) or {}
        info = params.get("checkpoint_info") or getattr(model, "sd_checkpoint_info", None)
        if info is None:
            try:
                info = sd_models.select_checkpoint()   # None (no exception) when there is none
            except Exception:
                return None
        return self._checkpoint(info, model) if info is not None else None

    def _offload(self) -> bool:
        memory = _memory_management()
        if memory is None:
            host_module("modules.sd_models").unload_model_weights()
            return True
        memory.unload_all_models()
        if hasattr(memory, "soft_empty_cache"):
            memory.soft_empty_cache()
        return True

    def _bring_back(self) -> None:
        """Nothing to do: the next generation loads what it needs."""

    def _forget_cached_loras(self, networks) -> None:
        cached = getattr(networks, "load_lora_state_dict", None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
        model = self._raw_model()
        if model is not None and hasattr(model, "current_lora_hash"):
            model.current_lora_hash = ""   # patches are re-applied at the next generation
