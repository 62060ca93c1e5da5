"""The fake host's recorder and set-up: which profile runs, and every host call in order."""
from __future__ import annotations

import argparse
import threading
from pathlib import Path

profile = "a1111"
root: Path = Path(".")
calls: list = []          # "unload_model_weights", "send_model_to_device", "process_images", ...
processed: list = []      # processing objects given to process_images (with lock_held, model_device)
preview_hook = None       # called with each processing object inside process_images (tests inject faults)
basedir = str(Path(__file__).resolve().parents[4])   # the extension root, as scripts.basedir() says
_lock = threading.Lock()


def record(name: str) -> None:
    with _lock:
        calls.append(name)


def names(prefix: str = "") -> list:
    """The recorded calls (optionally only those starting with ``prefix``)."""
    with _lock:
        return [c for c in calls if c.startswith(prefix)]


class FakeSDModel:
    """A loaded model: device and the is_sd1/is_sd2/is_sdxl flags (Forge: also forge_objects)."""

    def __init__(self, info, family: str, forge: bool = False, device: str = "cuda") -> None:
        self.sd_checkpoint_info = info
        self.sd_model_checkpoint = info.filename
        self.filename = info.filename
        self.is_sd1, self.is_sd2, self.is_sdxl = family == "sd1", family == "sd2", family == "sdxl"
        self.device = device
        self.lowvram = False
        if forge:
            self.forge_objects = object()
            self.current_lora_hash = "[]"

    def to(self, device):
        self.device = str(device)
        return self


class FakeInitialModel:
    """Forge's placeholder until the first generation loads a model (no flags, no checkpoint info)."""

    def __init__(self) -> None:
        self.cond_stage_model = None


def configure(name: str, data_root: Path, *, loaded=None, selected=None, lora_dir=None, api_auth=None) -> None:
    global profile, root, preview_hook
    from . import paths, paths_internal, sd_models, shared
    from fake_host import family_of

    profile, root, preview_hook = name, data_root, None
    calls.clear()
    processed.clear()
    models = data_root / "models"
    for module in (paths_internal, paths):
        module.data_path = str(data_root)
        module.models_path = str(models)
        module.script_path = str(data_root)
    (models / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    default_lora = models / "Lora"
    default_lora.mkdir(parents=True, exist_ok=True)
    shared.cmd_opts = argparse.Namespace(lora_dir=str(lora_dir or default_lora), ckpt_dir=None, data_dir=str(data_root),
                                         api_auth=api_auth, api=False, nowebui=False, lowvram=False, medvram=False)
    sd_models.list_models()
    sd_models.selected_filename = str(selected) if selected else None
    if name == "forge":
        sd_models.model_data.sd_model = FakeInitialModel()
        info = sd_models.select_checkpoint()
        sd_models.model_data.forge_loading_parameters = {"checkpoint_info": info} if info else {}
    elif loaded:
        info = sd_models.checkpoint_for(str(loaded))
        sd_models.model_data.sd_model = FakeSDModel(info, family_of(loaded))
    else:
        sd_models.model_data.sd_model = None
    calls.clear()
