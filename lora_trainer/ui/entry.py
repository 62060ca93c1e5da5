"""The WebUI callbacks ``scripts/lora_trainer_tab.py`` registers: the tab, the HTTP API, cleanup.

They live in this imported package, not in the script file, so they keep their identity across
"Reload UI" (the host re-executes script files) and the runner they reach is the same one. None of
them lets an exception out: whatever fails becomes a tab that says what happened and what to do.
"""
from __future__ import annotations

import traceback
from html import escape
from typing import Any

TAB_TITLE = "LoRA Trainer"
TAB_ID = "lora_trainer"
API_PREFIX = "/lora-trainer/v1"

EXTENSION_ROOT: str = ""
_tab_blocks: list = []   # the Blocks handed to the host, dropped when the scripts unload


def _report(key: str, err: BaseException) -> None:
    """A failed start-up step, on the WebUI's console in the environment's language."""
    from ..text.language import language_from_env
    from ..text.messages import localized, msg
    from . import messages  # noqa: F401  (registers the sentence)

    print(localized(msg(key, error=f"{type(err).__name__}: {err}"), language_from_env()))


def install_status(extension_root: str) -> dict:
    """``install.py``'s verdict (re-checked when stale), or the plain library check as a fallback."""
    try:
        from ..install.status import read_install_status
        return read_install_status(extension_root)
    except Exception:
        from ..install.check import check_environment, installed_versions
        result = check_environment(installed_versions())
        return {"ready": result.ok, "summary": "Some libraries the trainer needs are missing or too old."
                if not result.ok else "", "problems": result.problems, "command": result.pip_command()}


def error_tab(error: BaseException | str, install: dict | None = None) -> Any:
    """A tab that explains why the trainer cannot show its real tab (needs nothing but gradio)."""
    import gradio as gr

    detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)) \
        if isinstance(error, BaseException) else str(error)
    lines = []
    if install and not install.get("ready", True):
        lines.append(escape(install.get("summary", "")))
        if install.get("command"):
            lines.append("Run this in the WebUI's Python environment, then restart the WebUI:")
            lines.append(f"<code>{escape(install['command'])}</code>")
    with gr.Blocks(analytics_enabled=False) as blocks:
        gr.HTML('<div class="lt-msg lt-msg-error"><div class="lt-msg-title">The LoRA Trainer could not start</div>'
                f"<p>{escape(str(error).splitlines()[0] if str(error) else type(error).__name__)}</p>"
                + "".join(f"<p>{line}</p>" for line in lines)
                + "<p>The rest of the WebUI is not affected. If this persists, report it with the details below.</p>"
                f"<details><summary>Details</summary><pre>{escape(detail)}</pre></details></div>",
                elem_id="lora_trainer_error_tab")
    return blocks


def on_ui_tabs() -> list:
    install = None
    try:
        install = install_status(EXTENSION_ROOT)
        from ..hosts import detect_host
        from ..runner import get_runner
        from .tab import build_tab

        host = detect_host()
        blocks = build_tab(get_runner(host), host, install)
    except Exception as err:   # never into the host: the tab explains instead
        _report("ui.start.tab", err)
        try:
            blocks = error_tab(err, install)
        except Exception:
            return []
    _tab_blocks[:] = [blocks]
    return [(blocks, TAB_TITLE, TAB_ID)]


def api_registered(app: Any) -> bool:
    return any(str(getattr(route, "path", "")).startswith(API_PREFIX) for route in getattr(app, "routes", []))


def on_app_started(_demo: Any, app: Any) -> None:
    """Add the HTTP API once: the host calls this again after every "Reload UI" on the same app."""
    try:
        if app is None or api_registered(app):
            return
        from ..hosts import detect_host
        from ..runner import get_runner
        from ..runner.api import register_api

        host = detect_host()
        register_api(app, get_runner(host), host.api_auth_dependencies())
    except Exception as err:
        _report("ui.start.api", err)


def on_ui_settings() -> None:
    """The Settings entries: the folders a shared WebUI allows, the notifications when a run ends."""
    try:
        import gradio as gr

        from ..hosts.webui import register_notification_settings, register_settings

        register_settings(gr.Textbox)
        register_notification_settings()
    except Exception as err:
        _report("ui.start.settings", err)


def register_xyz_axes() -> None:
    """The "LoRA epoch" / "LoRA weight" axes of the X/Y/Z plot script: added while the scripts file is
    executed (the script's axis list is rebuilt at every "Reload UI" just before)."""
    try:
        from ..hosts import detect_host
        from ..hosts.xyz_axes import register_axes

        host = detect_host()
        register_axes(host.lora_dir, host.language)
    except Exception as err:
        _report("ui.start.axes", err)


def on_script_unloaded() -> None:
    """Reload UI: the old page goes away; training jobs keep running in the runner."""
    _tab_blocks.clear()
