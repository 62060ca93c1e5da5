"""The training form, generated from ``TrainConfig``'s field metadata (see ``fields.py`` for the rules).

``ConfigForm`` makes the components where the tab asks for them: a few fields in the Dataset tab,
the basic ones in the Train tab, the rest in an "Advanced" accordion grouped by section. A field
added to the config appears in the form without any edit here.
"""
from __future__ import annotations

from typing import Any, Iterable

import gradio as gr

from ..config.schema import TrainConfig
from .block_table import BLOCK_FIELDS, HEADERS, LAYOUTS, TABLE, fields_from_rows, layout_of, table_rows
from .compat import dropdown, info_kw, keep_out_of_ui_config
from .fields import EMPTY_HINT, SECTION_TITLES, FieldSpec, config_from_widgets, field_specs, to_widget, widget_values

BLOCK_TABLE_HELP = ("One row per block of the UNet (kohya's network_args). LR weight multiplies the UNet learning "
                    "rate (empty: 1, 0: the block is not trained); Rank and Alpha (and Conv ones for the 3×3 layers) "
                    "give every block its own, filled for all blocks or none.")


def make_component(spec: FieldSpec, value: Any) -> Any:
    shown = to_widget(spec, value)
    common = dict(label=spec.label, elem_id=f"lora_trainer_{spec.name}", **info_kw(spec.help))
    if spec.widget == "checkbox":
        component = gr.Checkbox(value=bool(shown), **common)
    elif spec.widget == "tristate":
        component = gr.Dropdown(choices=["auto", "on", "off"], value=shown, **common)
    elif spec.widget == "dropdown":
        component = dropdown(list(spec.choices), shown, **common)
    elif spec.widget == "slider":
        component = gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=0.01, value=shown, **common)
    elif spec.widget == "number":
        limits = {k: v for k, v in (("minimum", spec.minimum), ("maximum", spec.maximum)) if v is not None}
        component = gr.Number(value=shown, precision=0 if spec.integer else None, **limits, **common)
    elif spec.widget == "optional_number":
        component = gr.Textbox(value=shown, lines=1, max_lines=1, placeholder=EMPTY_HINT, **common)
    else:
        component = gr.Textbox(value=shown, lines=1, max_lines=1, **common)
    keep_out_of_ui_config(component)
    return component


class ConfigForm:
    """Components by field name; ``names`` is the order their values arrive in event handlers."""

    def __init__(self, defaults: TrainConfig) -> None:
        self.defaults = defaults
        self.specs = {s.name: s for s in field_specs()}
        self.components: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self.components)

    @property
    def inputs(self) -> list[Any]:
        return list(self.components.values())

    def render(self, names: Iterable[str]) -> list[Any]:
        made = []
        for name in names:
            if name in BLOCK_FIELDS:
                if TABLE not in self.components:
                    made.append(self.render_block_table())
                continue
            if name in self.components:
                continue
            self.components[name] = make_component(self.specs[name], getattr(self.defaults, name))
            made.append(self.components[name])
        return made

    def render_block_table(self) -> Any:
        """The seven per-block settings as one table, with the block layout (SD1/SD2 or SDXL) to show."""
        values = {k: getattr(self.defaults, k) for k in BLOCK_FIELDS}
        family = layout_of(values)
        layout = gr.Radio(choices=list(LAYOUTS), value=next(k for k, v in LAYOUTS.items() if v == family),
                          label="Block layout", elem_id="lora_trainer_block_layout")
        gr.HTML(f'<p class="lora_trainer_hint">{BLOCK_TABLE_HELP}</p>')   # a Dataframe takes no info= on 4.x
        table = gr.Dataframe(value=table_rows(values, family), headers=HEADERS, type="array",
                             datatype=["str"] * len(HEADERS), row_count=(len(table_rows(values, family)), "dynamic"),
                             col_count=(len(HEADERS), "fixed"), interactive=True, label="Per-block values",
                             elem_id="lora_trainer_block_table")
        keep_out_of_ui_config(layout, table)

        def switch(choice, rows):
            try:
                current = fields_from_rows(rows)
            except Exception:   # a half-filled column: start the new layout empty
                current = {}
            family = LAYOUTS.get(choice, "sd1")
            same = layout_of(current) == family
            return gr.update(value=table_rows(current if same else {}, family))
        layout.change(switch, [layout, table], [table])
        self.components[TABLE] = table
        return table

    def render_basic(self, skip: Iterable[str] = ()) -> None:
        """The basic fields not placed elsewhere, two per row."""
        names = [s.name for s in self.specs.values() if s.basic and s.name not in skip
                 and s.name not in self.components]
        for start in range(0, len(names), 2):
            with gr.Row():
                self.render(names[start:start + 2])

    def render_advanced(self, skip: Iterable[str] = ()) -> None:
        """Every field not rendered yet, one accordion per section, in the config's order."""
        skip = set(skip)
        sections: dict[str, list[str]] = {}
        for spec in self.specs.values():
            if spec.name not in self.components and spec.name not in skip:
                sections.setdefault(spec.section or "other", []).append(spec.name)
        for section, names in sections.items():
            with gr.Accordion(SECTION_TITLES.get(section, section.capitalize()), open=False,
                              elem_id=f"lora_trainer_section_{section}"):
                for start in range(0, len(names), 2):
                    with gr.Row():
                        self.render(names[start:start + 2])

    def to_config(self, values: list[Any], base: TrainConfig | None = None) -> tuple[TrainConfig, list[str]]:
        return config_from_widgets(self.names, list(values), base)

    def updates(self, cfg: TrainConfig) -> list[Any]:
        """gr.update for every component, in ``names`` order, showing ``cfg``."""
        return [gr.update(value=v) for v in widget_values(cfg, self.names)]
