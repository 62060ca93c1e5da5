"""``python -m lora_trainer.ui``: the LoRA Trainer tab as a web app of its own, without a WebUI.

Base models are the files (or folders of them) given with ``--models``; LoRAs are written to
``--output-dir``; previews are rendered by the trainer's own diffusers pipeline. The page and the
HTTP API are the ones the WebUI gets. The browser tests drive this server.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..text.language import language_from_env
from ..text.messages import localized, msg, sentence
from . import messages  # noqa: F401  (registers the launcher's sentences)

ROOT = Path(__file__).resolve().parents[2]   # the extension folder (style.css, install.py)
MODEL_EXTS = (".safetensors", ".ckpt")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lora_trainer.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[], metavar="DIR_OR_FILE",
                        help="base model checkpoints (.safetensors/.ckpt), diffusers folders, or folders holding them")
    parser.add_argument("--output-dir", default="lora_output", help="where the LoRA files go (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7870, help="port to serve on (default: %(default)s)")
    parser.add_argument("--listen", action="store_true", help="accept connections from other computers")
    parser.add_argument("--api-auth", default=None, metavar="USER:PASS[,USER:PASS]",
                        help="require these credentials for the page and the HTTP API")
    parser.add_argument("--allow-path", action="append", default=[], metavar="FOLDER",
                        help="with --listen: a folder callers may name besides --output-dir and --models "
                             "(datasets, states); repeat for more")
    return parser.parse_args(argv)


def split_models(entries: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(checkpoint files, the models folder, problems): the first plain folder is scanned by the adapter,
    model files inside further folders are listed one by one."""
    files, folder, problems = [], None, []
    for entry in entries:
        path = os.path.abspath(os.path.expanduser(entry))
        if os.path.isfile(path) or os.path.isfile(os.path.join(path, "model_index.json")):
            files.append(path)
        elif os.path.isdir(path) and folder is None:
            folder = path
        elif os.path.isdir(path):
            files += [str(p) for p in sorted(Path(path).rglob("*")) if p.suffix.lower() in MODEL_EXTS]
        else:
            problems.append(sentence("ui.start.no_model", entry=entry))
    return files, folder, problems


def build_app(runner, host, install: dict | None = None):
    """The tab inside a page of its own, wrapped like the WebUI wraps it (so style.css applies)."""
    import gradio as gr

    from .compat import js_kw
    from .tab import build_tab

    css_file = ROOT / "style.css"
    css = css_file.read_text(encoding="utf-8") if css_file.is_file() else None
    # the system's fonts: the default theme's come from fonts.googleapis.com, unreachable offline
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "Consolas", "monospace"])
    tab = build_tab(runner, host, install)   # outside the page's context, as the WebUI builds it
    with gr.Blocks(title="LoRA Trainer", css=css, theme=theme, analytics_enabled=False) as app:
        with gr.Column(elem_id="tab_lora_trainer"):   # where the WebUI puts it: style.css is scoped to it
            tab.render()
        scripts = page_scripts()
        if scripts:   # what the WebUI loads from javascript/, run once the page is there (no values sent)
            app.load(None, None, None, **js_kw("() => {\n" + scripts + "\n}"))
    return app


def _said(key: str, **params) -> str:
    """The sentence ``key`` in the environment's language (as the command line answers)."""
    return localized(msg(key, **params), language_from_env())


def gradio_missing() -> str | None:
    """The advice when gradio cannot be imported here, else None."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        return _said("ui.start.gradio_missing", python=sys.executable)
    return None


def page_scripts() -> str:
    """The extension's ``javascript/*.js``, which the WebUI puts in every page it serves."""
    folder = ROOT / "javascript"
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.js"))) if folder.is_dir() else ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = gradio_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    files, folder, problems = split_models(args.models)
    for problem in problems:
        print(localized(problem, language_from_env()), file=sys.stderr)
    from ..hosts.base import parse_credentials
    from ..hosts.standalone import StandaloneAdapter
    from ..runner import get_runner
    from ..runner.api import register_api
    from .entry import install_status

    host = StandaloneAdapter(checkpoints=files, models_dir=folder, lora_dir=args.output_dir, api_auth=args.api_auth,
                             shared=args.listen, allow_paths=args.allow_path)
    credentials = parse_credentials(args.api_auth)
    if args.listen and not credentials:
        print(_said("ui.start.open_to_all"), file=sys.stderr)
    os.makedirs(host.lora_dir(), exist_ok=True)
    runner = get_runner(host)
    app = build_app(runner, host, install_status(str(ROOT)))
    app.queue()
    server, local_url, _ = app.launch(server_name="0.0.0.0" if args.listen else "127.0.0.1",
                                      server_port=args.port, prevent_thread_lock=True, show_api=False,
                                      allowed_paths=[host.lora_dir(), host.datasets_dir()], quiet=True,
                                      auth=credentials or None)
    register_api(server, runner, host.api_auth_dependencies())
    print(_said("ui.start.running", url=local_url, folder=host.lora_dir()), flush=True)
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        for job in runner.jobs():   # a stopped run saves an -interrupted file it can resume from
            if getattr(job, "status", "") in ("queued", "preparing", "training"):
                runner.stop(job.id)
        if hasattr(runner, "shutdown"):
            runner.shutdown(60.0)
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
