"""No host: checkpoints are files named on the command line or found in a models folder, LoRAs go
to an output folder, and previews are rendered by our own diffusers pipeline."""
from __future__ import annotations

import os
import threading
from typing import Iterable, Optional

from ..config.allowed_folders import AllowedFolders
from .base import (Checkpoint, HostAdapter, PreviewRequest, PreviewUnavailable, basic_auth_dependencies,
                   checkpoint_family)

MODEL_EXTS = (".safetensors", ".ckpt")
# what diffusers_preview renders with, named as the WebUI names them (no hires fix)
SAMPLER_NAMES = ("Euler a", "Euler", "DPM++ 2M", "DDIM", "UniPC", "Heun", "DPM2")   # LMS needs scipy
SCHEDULE_TYPES = ("Automatic", "Karras")
DEFAULT_LORA_DIR = "lora_output"


class StandaloneAdapter(HostAdapter):
    name = "standalone"

    def __init__(self, checkpoints: Iterable[str] = (), models_dir: Optional[str] = None,
                 lora_dir: Optional[str] = None, api_auth: Optional[str] = None,
                 device: Optional[str] = None, shared: bool = False, allow_paths: Iterable[str] = ()) -> None:
        self._checkpoints = [os.path.abspath(p) for p in checkpoints]
        self._models_dir = os.path.abspath(models_dir) if models_dir else None
        self._lora_dir = os.path.abspath(lora_dir or DEFAULT_LORA_DIR)
        self._api_auth = api_auth
        self._device = device
        self._shared = shared                 # served to other computers (--listen)
        self._allow_paths = [os.path.abspath(p) for p in allow_paths]
        self._render_lock = threading.Lock()
        self._stop = threading.Event()
        self._pipeline = None

    def list_checkpoints(self, refresh: bool = False) -> list[Checkpoint]:
        paths = list(self._checkpoints)
        if self._models_dir and os.path.isdir(self._models_dir):
            for root, dirs, files in os.walk(self._models_dir):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                if "model_index.json" in files:   # a diffusers folder
                    paths.append(root)
                    dirs[:] = []
                    continue
                paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(MODEL_EXTS)]
        seen, out = set(), []
        for path in paths:
            if path not in seen and os.path.exists(path):
                seen.add(path)
                out.append(Checkpoint(title=os.path.basename(path), path=path, family=checkpoint_family(path)))
        return out

    def lora_dir(self) -> str:
        return self._lora_dir

    def models_dir(self) -> str:
        return self._models_dir or self.datasets_dir()

    def allowed_folders(self) -> AllowedFolders:
        """Served to other computers: the output folder, the model files and folders given, and --allow-path."""
        if not self._shared:
            return AllowedFolders.anywhere()
        models = [self._models_dir] if self._models_dir else []
        return AllowedFolders.only([self._lora_dir, self.datasets_dir(), *models, *self._checkpoints,
                                    *self._allow_paths])

    def restore_vram(self) -> None:
        """The job is over: drop the preview model."""
        with self._render_lock:
            self._pipeline = None

    def generate_previews(self, req: PreviewRequest) -> list:
        if not req.base_model_path:
            raise PreviewUnavailable("previews need the base model the LoRA was trained on, and none was given",
                                     "set the base model in the training settings")
        import torch
        from safetensors.torch import load_file

        from .diffusers_preview import PreviewPipeline

        self._stop.clear()
        with self._render_lock:
            if self._pipeline is None or self._pipeline.path != req.base_model_path:
                self._pipeline = None
                cuda = torch.cuda.is_available()
                device = self._device or ("cuda" if cuda else "cpu")
                dtype = torch.float16 if device.startswith("cuda") else torch.float32
                self._pipeline = PreviewPipeline(req.base_model_path, device, dtype)
            tensors = load_file(req.lora_path)
            return self._pipeline.render(req, tensors, self._stop.is_set)

    def preview_checkpoint(self, req: PreviewRequest) -> Optional[Checkpoint]:
        """Always the model the LoRA was trained on."""
        path = req.base_model_path
        return Checkpoint(title=os.path.basename(path), path=path) if path else None

    def render_options(self) -> dict:
        """Our diffusers pipeline's samplers; no hires fix."""
        return {"samplers": list(SAMPLER_NAMES), "schedulers": list(SCHEDULE_TYPES), "upscalers": []}

    def interrupt(self) -> None:
        self._stop.set()

    def api_auth_dependencies(self) -> list:
        return basic_auth_dependencies(self._api_auth)
