"""Optimizers by kohya name (``optimizer_type``) with kohya-style ``optimizer_args``.

``build_optimizer`` returns a plain ``torch.optim.Optimizer``; anything the user should
know about how the settings were applied (e.g. Adafactor ignoring the learning rate) is
listed by ``optimizer_notes(optimizer)``. Optional packages are imported on use.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import logging
import re
from typing import Any, Callable

import torch

from ..config import messages as config_messages  # noqa: F401  (the settings' sentences used here)
from ..config.option import OPTIMIZER_TYPES
from ..errors import ConfigError, MissingDependency, TrainerError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

log = logging.getLogger(__name__)

_ALIASES = {"dadaptation": "DAdaptAdam"}
ADAPTIVE_TYPES = ("Prodigy", "DAdaptAdam", "DAdaptLion")  # learning rate is a multiplier of d

# canonical name -> (module, attribute, pip name); attribute None = torch built-in.
_SOURCES: dict[str, tuple[str, str, str | None]] = {
    "AdamW": ("torch.optim", "AdamW", None),
    "SGDNesterov": ("torch.optim", "SGD", None),
    "AdamW8bit": ("bitsandbytes.optim", "AdamW8bit", "bitsandbytes"),
    "PagedAdamW8bit": ("bitsandbytes.optim", "PagedAdamW8bit", "bitsandbytes"),
    "Lion8bit": ("bitsandbytes.optim", "Lion8bit", "bitsandbytes"),
    "PagedLion8bit": ("bitsandbytes.optim", "PagedLion8bit", "bitsandbytes"),
    "SGDNesterov8bit": ("bitsandbytes.optim", "SGD8bit", "bitsandbytes"),
    "Lion": ("lion_pytorch", "Lion", "lion-pytorch"),
    "Prodigy": ("prodigyopt", "Prodigy", "prodigyopt"),
    "DAdaptAdam": ("dadaptation", "DAdaptAdam", "dadaptation"),
    "DAdaptLion": ("dadaptation", "DAdaptLion", "dadaptation"),
    "Adafactor": ("transformers.optimization", "Adafactor", "transformers"),
}
_NOTES_ATTR = "_lora_trainer_notes"
_INITIAL_LR_ATTR = "_lora_trainer_initial_lr"


def canonical_optimizer_type(optimizer_type: str) -> str:
    """The canonical spelling of a kohya optimizer name (case-insensitive); ConfigError if unknown."""
    key = str(optimizer_type or "").strip().lower()
    key = _ALIASES.get(key, key).lower()
    for name in _SOURCES:
        if name.lower() == key:
            return name
    raise ConfigError(msg("config.unknown_choice", name="optimizer_type", value=optimizer_type,
                          choices=", ".join(OPTIMIZER_TYPES)))


def optimizer_needs(optimizer_type: str) -> tuple[str, str] | None:
    """``(import name, pip name)`` of the extra package an optimizer needs, or None for torch's own."""
    module, _, pip_name = _SOURCES[canonical_optimizer_type(optimizer_type)]
    if pip_name is None:
        return None
    return module.split(".")[0], pip_name


def optimizer_available(optimizer_type: str) -> bool:
    """True if the package ``optimizer_needs`` names can be found (not imported)."""
    need = optimizer_needs(optimizer_type)
    if need is None:
        return True
    return importlib.util.find_spec(need[0]) is not None


def optimizer_notes(optimizer: torch.optim.Optimizer) -> list[str]:
    """Plain-words notes on how ``build_optimizer`` applied the settings (may be empty)."""
    return list(getattr(optimizer, _NOTES_ATTR, []))


# --- optimizer_args ----------------------------------------------------------------------------

_WORD = re.compile(r"^[A-Za-z_][\w.\-]*$")
_KEY = re.compile(r"^[A-Za-z_]\w*$")


def _parse_value(key: str, text: str, arg: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text and _WORD.match(text):
            return text  # a bare word such as a mode name
        raise ConfigError(msg("optim.bad_value", key_name=key, arg=arg), msg("optim.bad_value.advice")) from None
    if isinstance(value, list):
        value = tuple(value)
    return value


def parse_optimizer_args(optimizer_args: list[str] | dict | None) -> dict[str, Any]:
    """kohya ``["key=value", ...]`` (or a dict) -> keyword arguments with typed values."""
    if not optimizer_args:
        return {}
    if isinstance(optimizer_args, str):
        optimizer_args = optimizer_args.split()
    items: list[tuple[str, Any, str]] = []
    if isinstance(optimizer_args, dict):
        for key, value in optimizer_args.items():
            arg = f"{key}={value}"
            if isinstance(value, str):
                value = _parse_value(str(key), value, arg)
            elif isinstance(value, list):
                value = tuple(value)
            items.append((str(key).strip(), value, arg))
    else:
        for arg in optimizer_args:
            arg = str(arg).strip()
            if not arg:
                continue
            key, sep, text = arg.partition("=")
            key = key.strip()
            if not sep or not text.strip():
                raise ConfigError(msg("optim.not_pair", arg=arg), msg("optim.not_pair.advice"))
            items.append((key, _parse_value(key, text, arg), arg))
    kwargs: dict[str, Any] = {}
    for key, value, arg in items:
        if not _KEY.match(key):
            raise ConfigError(msg("optim.bad_name", key_name=key, arg=arg))
        if key in ("lr", "params"):
            raise ConfigError(msg("optim.reserved", arg=arg), msg("optim.reserved.advice"))
        kwargs[key] = value
    return kwargs


# --- building ----------------------------------------------------------------------------------

def require_optimizer(optimizer_type: str) -> None:
    """Raise ``MissingDependency`` now if the optimizer's package is not installed: a run checks it before the
    model loads and the latents are cached, not minutes later when the optimizer is built."""
    if not optimizer_available(optimizer_type):
        module, pip_name = optimizer_needs(optimizer_type)
        raise MissingDependency(module, msg("train.for_optimizer", name=canonical_optimizer_type(optimizer_type)),
                                pip_name)


def _import_class(name: str) -> type:
    module_name, attr, pip_name = _SOURCES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise MissingDependency(module_name.split(".")[0], msg("train.for_optimizer", name=name), pip_name) from None
    except Exception as err:  # e.g. bitsandbytes installed without a usable native library
        raise TrainerError(msg("train.package_broken", package=module_name.split(".")[0], name=name, error=err),
                           msg("train.package_broken.advice")) from err
    cls = getattr(module, attr, None)
    if cls is None:
        upgrade = f"-U {pip_name}"   # pip's arguments, not a sentence
        raise MissingDependency(module_name.split(".")[0], msg("train.for_optimizer_attr", name=name, attr=attr),
                                upgrade)
    return cls


def _check_kwargs(name: str, cls: type, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in ("self", "params", "lr")]
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(msg("optim.no_setting", name=name, key_name=key, accepted=", ".join(accepted)))


def _normalize_groups(param_groups: list[dict]) -> list[dict]:
    groups = []
    for i, group in enumerate(param_groups):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"param_groups[{i}] must be a dict with 'params'")
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        groups.append(group)
    if not any(g["params"] for g in groups):
        raise ConfigError(msg("optim.nothing"), msg("optim.nothing.advice"))
    return groups


def _all_cuda(groups: list[dict]) -> bool:
    return all(p.is_cuda and p.is_floating_point() for g in groups for p in g["params"])


def build_optimizer(optimizer_type: str, param_groups: list[dict], learning_rate: float,
                    optimizer_args: list[str] | dict | None = None,
                    field_kwargs: dict | None = None) -> torch.optim.Optimizer:
    """The optimizer kohya's ``--optimizer_type`` names, over ``param_groups``.

    Each group may carry its own ``"lr"`` (UNet vs text encoder); ``learning_rate`` is the
    default. ``field_kwargs`` are the optimizer settings made as fields (weight_decay, betas, …;
    ``config.optimizer_fields``), on top of ``optimizer_args``. Adafactor with ``relative_step=True``
    finds its own step size: learning rates are dropped then and a note says so (pair it with the
    ``adafactor`` scheduler).
    """
    name = canonical_optimizer_type(optimizer_type)
    kwargs = parse_optimizer_args(optimizer_args)
    for key, value in (field_kwargs or {}).items():
        if key in kwargs:
            raise ConfigError(msg("opt.twice", name=key))
        kwargs[key] = value
    groups = _normalize_groups(param_groups)
    notes: list[str] = []
    lr: float | None = learning_rate
    start_lr = learning_rate

    if name == "AdamW" and "fused" not in kwargs and "foreach" not in kwargs and _all_cuda(groups):
        kwargs["fused"] = True
    elif name in ("SGDNesterov", "SGDNesterov8bit"):
        kwargs.setdefault("momentum", 0.9)
        kwargs["nesterov"] = True
    elif name == "Adafactor":
        kwargs.setdefault("scale_parameter", False)
        kwargs.setdefault("relative_step", False)
        kwargs.setdefault("warmup_init", False)
        if kwargs["warmup_init"] and not kwargs["relative_step"]:
            kwargs["relative_step"] = True
            notes.append(sentence("optim.warmup_init"))
        if kwargs["relative_step"]:
            start_lr = learning_rate or 0.0  # what the adafactor schedule reports before step 1 (kohya)
            had_group_lr = any([g.pop("lr", None) is not None for g in groups])  # pop from every group
            lr = None
            notes.append(sentence("optim.relative_step_groups" if had_group_lr else "optim.relative_step"))
    elif name in ADAPTIVE_TYPES:
        lrs = {g.get("lr", learning_rate) for g in groups} - {0.0, 0}
        if len(lrs) > 1:
            raise ConfigError(msg("optim.one_lr", name=name, lrs=sorted(lrs)), msg("optim.one_lr.advice"))
        if lrs and max(lrs) <= 0.1:
            notes.append(sentence("optim.adaptive_lr", name=name, lr=f"{max(lrs):g}"))
    if name.startswith("Paged") and not _all_cuda(groups):
        notes.append(sentence("optim.paged_cpu", name=name))

    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(msg("optim.lr_positive", name=name, lr=repr(lr)))

    cls = _import_class(name)
    if name == "Adafactor":   # the same arithmetic, a shape's tensors at once (grouped_adafactor.py)
        from .grouped_adafactor import GroupedAdafactor
        cls = GroupedAdafactor
    _check_kwargs(name, cls, kwargs)
    try:
        optimizer = cls(groups, lr=lr, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(msg("optim.refused", name=name, error=err), msg("optim.refused.advice")) from err
    for note in notes:
        log.info(note)
    setattr(optimizer, _NOTES_ATTR, notes)
    setattr(optimizer, _INITIAL_LR_ATTR, start_lr)
    return optimizer


# --- reporting ---------------------------------------------------------------------------------

def uses_relative_step(optimizer: torch.optim.Optimizer) -> bool:
    """True for an Adafactor (transformers' or ours) that schedules its own step size."""
    return optimizer_name(optimizer) == "Adafactor" and any(
        g.get("relative_step") for g in optimizer.param_groups)


def optimizer_name(optimizer) -> str:
    """The optimizer's name as the user chose it (GroupedAdafactor is Adafactor)."""
    inner = getattr(optimizer, "optimizer", optimizer)   # accelerate's wrapper
    return getattr(type(inner), "display_name", type(inner).__name__)


def initial_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate the optimizer was built with (before any adaptive or relative-step scaling)."""
    value = getattr(optimizer, _INITIAL_LR_ATTR, None)
    if value is None:
        value = optimizer.defaults.get("lr") or 0.0
    return float(value)


def _relative_step_lr(optimizer: torch.optim.Optimizer, group: dict) -> float:
    get_lr: Callable | None = getattr(optimizer, "_get_lr", None)
    for p in group["params"]:
        state = optimizer.state.get(p)
        if get_lr is not None and state and "step" in state:
            return float(get_lr(group, state))
    return initial_lr(optimizer)


def describe_lr(optimizer: torch.optim.Optimizer) -> list[float]:
    """The step size each param group uses now, for logging.

    Adaptive optimizers (Prodigy, D-Adaptation) use ``d * lr``; Adafactor with relative
    steps reports the step size it computed. Reading ``d`` may sync with the GPU: call at
    log intervals, not every step.
    """
    lrs = []
    for group in optimizer.param_groups:
        lr = group.get("lr")
        if lr is None or group.get("relative_step"):
            lr = _relative_step_lr(optimizer, group)
        d = group.get("d")
        if d is not None:
            lr = lr * float(d)
        lrs.append(float(lr))
    return lrs
