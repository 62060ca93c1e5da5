"""Which host the trainer runs in, decided by what can be imported (never by version strings:
Forge reports A1111's version, and forks such as reForge differ again)."""
from __future__ import annotations

import importlib.util
import sys

from .base import HostAdapter


def _importable(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):   # the parent package is missing, or a module without a spec
        return False


def host_kind() -> str:
    """"forge", "a1111" or "standalone"."""
    if not (_importable("modules.shared") and _importable("modules.processing")):
        return "standalone"
    if _importable("modules_forge") or _importable("backend.memory_management"):
        return "forge"
    # the raw attribute: reading shared.sd_model in A1111 would load a model
    sd_models = sys.modules.get("modules.sd_models")
    model = getattr(getattr(sd_models, "model_data", None), "sd_model", None)
    if model is not None and hasattr(model, "forge_objects"):
        return "forge"
    return "a1111"


def detect_host(**standalone_options) -> HostAdapter:
    """The adapter for the running host; ``standalone_options`` go to ``StandaloneAdapter``."""
    kind = host_kind()
    if kind == "forge":
        from .forge import ForgeAdapter
        return ForgeAdapter()
    if kind == "a1111":
        from .a1111 import A1111Adapter
        return A1111Adapter()
    from .standalone import StandaloneAdapter
    return StandaloneAdapter(**standalone_options)
