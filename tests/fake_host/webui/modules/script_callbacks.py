"""Fake ``modules.script_callbacks``: registrations are recorded in ``callbacks``."""
from __future__ import annotations

callbacks: dict = {}


def _register(category):
    def register(callback, *, name=None):
        callbacks.setdefault(category, []).append(callback)
    register.__name__ = f"on_{category}"
    return register


on_ui_tabs = _register("ui_tabs")
on_ui_settings = _register("ui_settings")
on_app_started = _register("app_started")
on_script_unloaded = _register("script_unloaded")
on_before_reload = _register("before_reload")
on_model_loaded = _register("model_loaded")
on_before_ui = _register("before_ui")


def clear_callbacks() -> None:
    callbacks.clear()


def ui_tabs_callback() -> list:
    tabs = []
    for callback in callbacks.get("ui_tabs", []):
        tabs += callback() or []
    return tabs


def app_started_callback(demo, app) -> None:
    for callback in callbacks.get("app_started", []):
        callback(demo, app)


def script_unloaded_callback() -> None:
    for callback in reversed(callbacks.get("script_unloaded", [])):
        callback()
