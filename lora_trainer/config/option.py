"""A config field's metadata (help, limits, form group, ``ss_*`` key) and the fixed choices the fields offer."""
from __future__ import annotations

from dataclasses import field
from typing import Any

BASIC = "basic"
ADVANCED = "advanced"

OPTIMIZER_TYPES = (
    "AdamW", "AdamW8bit", "PagedAdamW8bit", "Lion", "Lion8bit", "PagedLion8bit",
    "SGDNesterov", "SGDNesterov8bit", "Prodigy", "DAdaptAdam", "DAdaptation", "DAdaptLion", "Adafactor",
)
LR_SCHEDULERS = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "adafactor",
)
MIXED_PRECISIONS = ("no", "fp16", "bf16")
MAX_SEED = 2**32 - 1          # the WebUIs' seed range
MAX_EPOCHS = 10_000
MAX_STEPS = 10_000_000
SAVE_PRECISIONS = ("fp16", "bf16", "float")


def opt(default: Any, help: str, *, group: str = ADVANCED, label: str = "", choices: tuple = (),
        minimum: float | None = None, maximum: float | None = None, section: str = "", ss: str = "",
        ss_form: str = "text", ss_value: str = "", path: str = "") -> Any:
    """A config field with the metadata the CLI, TOML, UI and the saved file's metadata are generated from.

    ``ss``: the ``ss_*`` key a saved LoRA file stores the field under, ``ss_form`` its text form (a
    ``config.metadata.FORMS`` name), ``ss_value`` the attribute or method written instead of the field
    itself (a derived value, e.g. the effective UNet learning rate). ``path``: "file" or "folder" when the
    field names a place on disk (a shared WebUI confines those to the allowed folders)."""
    meta = {"help": help, "group": group, "label": label, "choices": choices,
            "minimum": minimum, "maximum": maximum, "section": section, "ss": ss, "ss_form": ss_form,
            "ss_value": ss_value, "path": path}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)
