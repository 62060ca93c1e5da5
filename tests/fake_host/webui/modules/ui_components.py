"""Fake ``modules.ui_components``: the host's small gradio helpers (needs gradio)."""
from __future__ import annotations

import gradio as gr


class FormComponent:
    def get_expected_parent(self):
        return gr.components.Form


class ToolButton(gr.Button, FormComponent):
    def __init__(self, value="", *args, elem_classes=None, **kwargs):
        super().__init__(*args, value=value, elem_classes=["tool", *(elem_classes or [])], **kwargs)


class FormRow(gr.Row):
    pass


class FormColumn(gr.Column):
    pass


class FormGroup(gr.Group):
    pass


class DropdownMulti(gr.Dropdown):
    def __init__(self, **kwargs):
        super().__init__(multiselect=True, **kwargs)


class InputAccordion(gr.Checkbox):
    """A checkbox whose value is shown as an accordion's open state."""
    counter = 0

    def __init__(self, value, **kwargs):
        InputAccordion.counter += 1
        self.accordion_id = kwargs.get("elem_id") or f"input-accordion-{InputAccordion.counter}"
        label = kwargs.pop("label", "Accordion")
        kwargs.pop("elem_id", None)
        super().__init__(value=value, visible=False, elem_id=f"{self.accordion_id}-checkbox", **kwargs)
        self.accordion = gr.Accordion(label, open=value, elem_id=self.accordion_id)

    def extra(self):
        return gr.Column(elem_id=f"{self.accordion_id}-extra", min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)
