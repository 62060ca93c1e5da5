"""Fake Forge memory manager: unloading forgets the loaded model, the next generation reloads it."""
from modules import _fake


def unload_all_models() -> None:
    from modules import sd_models
    _fake.record("unload_all_models")
    model = sd_models.model_data.sd_model
    if hasattr(model, "forge_objects"):
        model.device = "cpu"


def soft_empty_cache(force=False) -> None:
    _fake.record("soft_empty_cache")


def get_torch_device():
    return "cpu"
