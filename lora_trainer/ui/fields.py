"""What the form shows for each ``TrainConfig`` field, and the conversions between form values and a config.

Gradio-free and torch-free, so the rules are tested under the WebUI's Python without a UI. The
component for a field follows from its type and metadata: bool → checkbox, optional bool →
auto/on/off, choices → dropdown, a rate between 0 and 1 → slider, other numbers → number box with
the field's limits, numbers that may stay empty → text box (a number box cannot show "empty" on
gradio 3.41: it shows 0, which would silently train with a learning rate of 0), lists and text →
text box, kohya's seven per-block settings → one table (``block_table.py``; the form names it
``block_table``). Values go back through ``config_io.config_from_dict`` so that every check is the core's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..config.files import config_from_dict
from ..config.option import BASIC
from ..config.schema import TrainConfig
from ..config.validation import field_type
from ..text.messages import localized, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .block_table import BLOCK_FIELDS, TABLE, fields_from_rows, table_rows

SECTION_TITLES = {"model": "Model", "data": "Images and captions", "output": "Saving", "network": "Network",
                  "optimizer": "Optimizer and learning rate", "training": "Training",
                  "validation": "Validation loss", "blocks": "Per-block learning rates and ranks"}
TRISTATE = {"auto": None, "on": True, "off": False}
EMPTY_HINT = "empty = not used / automatic"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    help: str
    widget: str   # checkbox | tristate | dropdown | slider | number | optional_number | list | textbox | block_table
    group: str
    section: str
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    integer: bool = False

    @property
    def basic(self) -> bool:
        return self.group == BASIC


def _widget(name: str, base: type, optional: bool, meta: dict) -> str:
    if name in BLOCK_FIELDS:
        return "block_table"
    if base is bool:
        return "tristate" if optional else "checkbox"
    if meta.get("choices"):
        return "dropdown"
    if base is float and not optional and meta.get("minimum") == 0.0 and meta.get("maximum") == 1.0:
        return "slider"
    if base in (int, float):
        return "optional_number" if optional else "number"
    if base is list:
        return "list"
    return "textbox"


def field_specs() -> list[FieldSpec]:
    """One spec per config field, in the config's order."""
    specs = []
    for f in TrainConfig.fields():
        meta = f.metadata
        base, optional = field_type(f)
        specs.append(FieldSpec(
            name=f.name, label=meta.get("label") or f.name, help=meta.get("help", ""),
            widget=_widget(f.name, base, optional, meta), group=meta.get("group", ""), section=meta.get("section", ""),
            choices=tuple(meta.get("choices") or ()), minimum=meta.get("minimum"), maximum=meta.get("maximum"),
            optional=optional, integer=base is int))
    return specs


def spec_map() -> dict[str, FieldSpec]:
    return {s.name: s for s in field_specs()}


def to_widget(spec: FieldSpec, value: Any) -> Any:
    """A config value as its component shows it."""
    if spec.widget == "tristate":
        return {None: "auto", True: "on", False: "off"}[value]
    if spec.widget == "list":
        return " ".join(str(v) for v in value or [])
    if spec.widget in ("textbox", "optional_number", "block_table"):
        return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return value


def from_widget(spec: FieldSpec, value: Any) -> Any:
    """A component's value as config_from_dict takes it (coercion and checks are the core's)."""
    if spec.widget == "tristate":
        return TRISTATE.get(str(value or "auto"), None)
    if spec.widget == "number" and isinstance(value, float) and spec.integer and value.is_integer():
        return int(value)
    if spec.widget in ("number", "slider", "optional_number") and (value is None or str(value).strip() == ""):
        return None
    return value


def widget_values(cfg: TrainConfig, names: list[str]) -> list[Any]:
    specs = spec_map()
    blocks = {k: getattr(cfg, k) for k in BLOCK_FIELDS}
    return [table_rows(blocks) if n == TABLE else to_widget(specs[n], getattr(cfg, n)) for n in names]


def config_from_widgets(names: list[str], values: list[Any], base: TrainConfig | None = None
                        ) -> tuple[TrainConfig, list[str]]:
    """The config the form shows; raises ConfigError (with labels added) for values that do not fit."""
    from ..errors import ConfigError

    specs = spec_map()
    try:
        data = {}
        for n, v in zip(names, values):
            data.update(fields_from_rows(v) if n == TABLE else {n: from_widget(specs[n], v)})
        return config_from_dict(data, base=base, source=sentence("ui.the_form"))
    except ConfigError as err:
        raise ConfigError([with_label(p) for p in err.problems], err.advice) from None


_FIELD_AT_START = re.compile(r"^([a-z][a-z0-9_]+)\b")


def with_label(problem: str) -> str:
    """'train_batch_size is 0, …' → 'Batch size (train_batch_size) is 0, …' so the user finds the field; a keyed
    problem stays keyed (``Labelled``: the label put before its text in any language)."""
    text = _labelled(str(problem))
    if text == str(problem):
        return problem
    return Labelled(problem, text) if hasattr(problem, "in_language") else text


def _labelled(problem: str) -> str:
    match = _FIELD_AT_START.match(problem)
    if match:
        spec = spec_map().get(match.group(1))
        if spec and spec.label != spec.name:
            return f"{spec.label} ({spec.name}){problem[match.end():]}"
    return problem


class Labelled(str):
    """A keyed problem with the form's label before the setting's name: English as a str, ``in_language`` the
    same in another language (the name stays first in every language's text)."""

    def __new__(cls, problem: Any, text: str) -> "Labelled":
        labelled = super().__new__(cls, text)
        labelled.problem = problem
        return labelled

    def in_language(self, language: str | None) -> str:
        return _labelled(localized(self.problem, language))

    def __reduce__(self) -> tuple:
        return Labelled, (self.problem, str(self))
