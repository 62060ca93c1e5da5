"""What the WebUI executes: puts the extension on sys.path, registers the LoRA Trainer's callbacks and
adds its axes to the X/Y/Z plot script.

The host runs this file (not as an importable module) at start-up and again at every "Reload UI".
The callbacks themselves live in ``lora_trainer.ui.entry`` so that they, and the training runner,
survive the re-execution. Nothing here may raise into the host.
"""
import os
import sys


def _extension_root():
    try:
        from modules import scripts
        root = scripts.basedir()   # the extension being loaded, while this file is executed
        if root and os.path.isdir(os.path.join(root, "lora_trainer")):
            return root
    except Exception:
        pass
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _register():
    root = _extension_root()
    if root not in sys.path:   # A1111 drops it after this import; the runner thread imports lazily
        sys.path.insert(0, root)
    from modules import script_callbacks

    if hasattr(script_callbacks, "remove_current_script_callbacks"):
        script_callbacks.remove_current_script_callbacks()   # never twice, whatever loaded us before
    from lora_trainer.ui import entry

    entry.EXTENSION_ROOT = root
    for register, callback in ((script_callbacks.on_ui_tabs, entry.on_ui_tabs),
                               (script_callbacks.on_app_started, entry.on_app_started),
                               (script_callbacks.on_ui_settings, entry.on_ui_settings),
                               (script_callbacks.on_script_unloaded, entry.on_script_unloaded)):
        if hasattr(script_callbacks, "remove_callbacks_for_function"):
            script_callbacks.remove_callbacks_for_function(callback)
        register(callback)
    entry.register_xyz_axes()


def _register_error_tab(reason):
    """The package itself failed to load: still show a tab that says so (needs only gradio)."""
    from html import escape

    from modules import script_callbacks

    def error_tab():
        import gradio as gr

        with gr.Blocks(analytics_enabled=False) as blocks:
            gr.HTML(f"<p>The LoRA Trainer could not load: {escape(reason)}</p><p>The rest of the WebUI is not "
                    "affected. Update or reinstall the extension; if this stays, report this message.</p>")
        return [(blocks, "LoRA Trainer", "lora_trainer")]

    script_callbacks.on_ui_tabs(error_tab)


try:
    _register()
except Exception as _error:   # the rest of the WebUI must start regardless
    print(f"[LoRA Trainer] not loaded: {type(_error).__name__}: {_error}", file=sys.stderr)
    try:
        _register_error_tab(f"{type(_error).__name__}: {_error}")
    except Exception:
        pass
