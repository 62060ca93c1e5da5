"""Fake ``modules.ui_common``."""
from __future__ import annotations


def create_refresh_button(refresh_component, refresh_method, refreshed_args, elem_id):
    import gradio as gr

    from .ui_components import ToolButton

    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh():
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        return [gr.update(**(args or {})) for _ in components]

    button = ToolButton(value="\U0001f504", elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=components)
    return button
