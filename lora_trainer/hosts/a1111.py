"""AUTOMATIC1111 WebUI (1.6 – 1.10): the host model is moved to the CPU for training and must be
sent back explicitly (``reload_model_weights`` does not do it when the checkpoint is unchanged)."""
from __future__ import annotations

from typing import Optional

from .base import Checkpoint
from .webui import WebUIAdapter, host_module


class A1111Adapter(WebUIAdapter):
    name = "a1111"

    def loaded_checkpoint(self) -> Optional[Checkpoint]:
        """The checkpoint chosen in the WebUI: every generation reloads it first (one with another model for
        its own images, as our previews, leaves that model in memory until then)."""
        sd_models = host_module("modules.sd_models")
        model = self._raw_model()
        try:
            info = sd_models.select_checkpoint()
        except Exception:   # FileNotFoundError when the WebUI has no checkpoint at all
            info = None
        info = info or getattr(model, "sd_checkpoint_info", None)
        return self._checkpoint(info, model) if info is not None else None

    def _offload(self) -> bool:
        model = self._raw_model()
        if model is None:
            return False
        host_module("modules.sd_models").unload_model_weights(model)
        return True

    def _bring_back(self) -> None:
        model = self._raw_model()
        if model is not None:
            host_module("modules.sd_models").send_model_to_device(model)
