"""The optimizer settings that have fields of their own (weight_decay, betas, eps, Prodigy's d_coef and
safeguard_warmup, Adafactor's relative_step and scale_parameter); everything else stays free text in
``optimizer_args``.

Each field has the name of the optimizer's own argument, so it means what it means in kohya's
``optimizer_args``. ``check`` refuses a field the chosen optimizer has no use for, and a setting made
both as a field and in ``optimizer_args``; ``field_kwargs`` gives the typed values; ``describe`` the
``name=value`` items kohya writes into ``ss_optimizer``. Torch-free.
"""
from __future__ import annotations

from typing import Any

from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)

_ADAM_LIKE = {"AdamW", "AdamW8bit", "PagedAdamW8bit", "Prodigy", "DAdaptAdam", "DAdaptation"}
_LION_LIKE = {"Lion", "Lion8bit", "PagedLion8bit", "DAdaptLion"}
_SGD = {"SGDNesterov", "SGDNesterov8bit"}
FIELDS = ("weight_decay", "betas", "eps", "d_coef", "safeguard_warmup", "relative_step", "scale_parameter")
ACCEPTED_BY = {
    "weight_decay": _ADAM_LIKE | _LION_LIKE | _SGD | {"Adafactor"},
    "betas": _ADAM_LIKE | _LION_LIKE,
    "eps": _ADAM_LIKE,
    "d_coef": {"Prodigy"},
    "safeguard_warmup": {"Prodigy"},
    "relative_step": {"Adafactor"},
    "scale_parameter": {"Adafactor"},
}


def _canonical(optimizer_type: str) -> str:
    lowered = str(optimizer_type or "").strip().lower()
    every = set().union(*ACCEPTED_BY.values())
    return next((name for name in every if name.lower() == lowered), optimizer_type)


def parse_betas(text: str) -> tuple[float, float]:
    """'0.9,0.999' / '(0.9, 0.999)' → (0.9, 0.999); ValueError in plain words otherwise."""
    parts = [p for p in str(text).strip().strip("()[]").replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(sentence("opt.betas_numbers", text=text)) from None
    if len(values) != 2:
        raise ValueError(sentence("opt.betas_count", text=text, count=len(values)))
    if not all(0.0 <= v < 1.0 for v in values):
        raise ValueError(sentence("opt.betas_range", text=text))
    return values


def field_kwargs(cfg) -> dict[str, Any]:
    """The optimizer fields that are set, as the optimizer takes them."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(cfg, name)
        if value is None or value == "":
            continue
        out[name] = parse_betas(value) if name == "betas" else value
    return out


def _arg_keys(optimizer_args) -> set[str]:
    items = optimizer_args.keys() if isinstance(optimizer_args, dict) else \
        [str(a).partition("=")[0] for a in (optimizer_args or [])]
    return {str(k).strip() for k in items}


def check(cfg) -> list[str]:
    """Each field the chosen optimizer cannot use, or that optimizer_args sets too, in plain words with the fix."""
    problems = []
    name = _canonical(cfg.optimizer_type)
    in_args = _arg_keys(cfg.optimizer_args)
    for field_name in FIELDS:
        value = getattr(cfg, field_name)
        if value is None or value == "":
            continue
        if field_name == "betas":
            try:
                parse_betas(value)
            except ValueError as err:
                problems.append(err.args[0])
        if name not in ACCEPTED_BY[field_name]:
            users = sorted(ACCEPTED_BY[field_name] - {"DAdaptation"})
            problems.append(sentence("opt.not_taken", name=field_name, optimizer=cfg.optimizer_type,
                                     users=", ".join(users)))
        if field_name in in_args:
            problems.append(sentence("opt.twice", name=field_name))
    if cfg.weight_decay is not None and cfg.weight_decay < 0:
        problems.append(sentence("config.below_minimum", name="weight_decay", value=cfg.weight_decay, limit=0))
    return problems


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(cfg) -> list[str]:
    """``name=value`` items for ``ss_optimizer`` (kohya writes the optimizer's arguments there)."""
    try:
        values = field_kwargs(cfg)
    except ValueError:
        values = {k: getattr(cfg, k) for k in FIELDS if getattr(cfg, k) not in (None, "")}
    return [f"{k}={_text(v)}" for k, v in values.items()]
