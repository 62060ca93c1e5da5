"""A LoRA file's ``ss_*`` metadata, written and read back from one table.

Every ``TrainConfig`` field that kohya stores names its key and text form in its ``opt()`` metadata
(``ss=``, ``ss_form=``, and ``ss_value=`` when the text comes from a derived value such as the
effective UNet learning rate). The facts of a run that are not settings (base model, images, epoch,
steps, tag counts) are in ``RUN_KEYS``. ``training_metadata`` writes both; ``read_training_metadata``
reads both back, from our files and from kohya's (the same keys; values a file lacks stay absent).

Torch-free: the Evaluate tab and the hosts' Lora listings read files with it.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .schema import TrainConfig, parse_resolution

BASE_MODEL_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
ARCHITECTURE = {"sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-768-v/lora",
                "sdxl": "stable-diffusion-xl-v1-base/lora"}
FAMILY_OF_VERSION = {version: family for family, version in BASE_MODEL_VERSION.items()}
SD_VERSION_LABEL = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}   # the hosts' "sd version" (Lora tab sidecar)


# --- text forms ------------------------------------------------------------------------------------------

def read_int(text: Any) -> int | None:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None


def read_float(text: Any) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def read_bool(text: Any) -> bool | None:
    return {"true": True, "false": False}.get(str(text).strip().lower())


def read_json(text: Any) -> Any:
    if isinstance(text, (dict, list)):
        return text
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError):
        return None


def _resolution(text: Any) -> tuple[int, int] | None:
    numbers = [int(n) for n in re.findall(r"\d+", str(text or ""))]
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    return (numbers[0], numbers[1]) if len(numbers) >= 2 else None


@dataclass(frozen=True)
class TextForm:
    """How a value is written as metadata text, and what reading the text gives back (None: nothing said)."""
    write: Callable[[Any], str]
    read: Callable[[Any], Any]


FORMS: dict[str, TextForm] = {
    "text": TextForm(str, lambda text: text or None),
    "int": TextForm(str, read_int),
    "number": TextForm(lambda v: f"{v:g}", read_float),
    "optional_number": TextForm(lambda v: "" if v is None else f"{v:g}", read_float),
    "bool": TextForm(lambda v: str(bool(v)), read_bool),
    "count_or_empty": TextForm(lambda v: str(v or ""), read_int),            # kohya: "" when not set
    "count_or_none": TextForm(lambda v: str(v) if v else "None", read_int),   # kohya: "None" when not set
    "resolution": TextForm(lambda v: "({}, {})".format(*parse_resolution(v)), _resolution),
    "time": TextForm(lambda v: f"{v:.3f}", read_float),
    "json": TextForm(lambda v: json.dumps(v, ensure_ascii=False), read_json),
    "network_args": TextForm(lambda v: json.dumps({k: str(x) for k, x in v.items() if x is not None}), read_json),
    "network_module": TextForm(lambda v: v or "networks.lora", lambda text: text or None),
}


# --- the settings: from TrainConfig's field metadata --------------------------------------------------------

@dataclass(frozen=True)
class MetadataKey:
    key: str          # "ss_network_dim"
    name: str         # the TrainConfig field (settings) or the run fact it holds
    form: str         # a FORMS name
    value: str = ""   # settings: the TrainConfig attribute or method the text is written from (default: the field)


def setting_keys() -> list[MetadataKey]:
    """The ``ss_*`` keys of the settings, in field order, from ``TrainConfig``'s ``opt(ss=...)``."""
    return [MetadataKey(f.metadata["ss"], f.name, f.metadata.get("ss_form") or "text",
                        f.metadata.get("ss_value") or "")
            for f in dataclasses.fields(TrainConfig) if f.metadata.get("ss")]


def _setting_value(cfg: TrainConfig, item: MetadataKey) -> Any:
    value = getattr(cfg, item.value or item.name)
    return value() if callable(value) else value


# --- the run's facts ---------------------------------------------------------------------------------------

@dataclass
class RunFacts:
    """What a saved file records about its run beside the settings."""
    family: str                        # sd1 | sd2 | sdxl
    model_name: str                    # the base model's file or folder name
    num_train_images: int
    num_reg_images: int
    epoch: int
    steps: int
    training_started_at: float
    tag_frequency: dict
    v_prediction: bool = False


RUN_KEYS = (
    MetadataKey("ss_sd_model_name", "model_name", "text"),
    MetadataKey("ss_num_train_images", "num_train_images", "int"),
    MetadataKey("ss_num_reg_images", "num_reg_images", "int"),
    MetadataKey("ss_epoch", "epoch", "int"),
    MetadataKey("ss_steps", "steps", "int"),
    MetadataKey("ss_training_started_at", "training_started_at", "time"),
    MetadataKey("ss_tag_frequency", "tag_frequency", "json"),
    MetadataKey("ss_v_parameterization", "v_prediction", "bool"),
)


def training_metadata(cfg: TrainConfig, facts: RunFacts) -> dict[str, str]:
    """``ss_*`` and ``modelspec.*`` metadata (all values are strings, as safetensors requires)."""
    family = facts.family
    meta = {"ss_base_model_version": BASE_MODEL_VERSION[family], "ss_v2": str(family == "sd2"),
            "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": ARCHITECTURE[family],
            "modelspec.implementation": "https://github.com/kohya-ss/sd-scripts",
            "modelspec.title": cfg.output_name}
    if family == "sdxl":
        width, height = cfg.resolution_wh
        meta["modelspec.resolution"] = f"{width}x{height}"
    for item in setting_keys():
        meta[item.key] = FORMS[item.form].write(_setting_value(cfg, item))
    for item in RUN_KEYS:
        meta[item.key] = FORMS[item.form].write(getattr(facts, item.name))
    return meta


# --- reading ---------------------------------------------------------------------------------------------

def family_from_metadata(meta: Mapping[str, str]) -> str | None:
    """sd1 / sd2 / sdxl from ``ss_base_model_version``, ``modelspec.architecture`` or ``ss_v2``; None if unsaid."""
    version = str(meta.get("ss_base_model_version") or "")
    family = FAMILY_OF_VERSION.get(version) or ("sdxl" if version.startswith("sdxl") else
                                                 "sd2" if version.startswith("sd_v2") else
                                                 "sd1" if version.startswith("sd_v1") else None)
    if family is None and meta.get("modelspec.architecture"):
        arch = str(meta["modelspec.architecture"])
        family = "sdxl" if "xl" in arch else "sd2" if "v2" in arch else "sd1" if "v1" in arch else None
    if family is None and read_bool(meta.get("ss_v2")) is not None:
        family = "sd2" if read_bool(meta.get("ss_v2")) else "sd1"
    return family


def read_training_metadata(meta: Mapping[str, str]) -> dict[str, Any]:
    """What the metadata says, by name: the settings under their ``TrainConfig`` field names (in their
    read forms, e.g. a resolution as (width, height)), the run's facts under ``RunFacts`` names, and
    ``family``. Keys the file lacks, or texts that say nothing, are left out."""
    values: dict[str, Any] = {}
    for item in (*setting_keys(), *RUN_KEYS):
        if item.key in meta:
            value = FORMS[item.form].read(meta[item.key])
            if value is not None:
                values[item.name] = value
    family = family_from_metadata(meta)
    if family is not None:
        values["family"] = family
    return values
