"""The few differences between gradio 3.41 (A1111, reForge) and 4.40 (Forge) the tab runs into.

Everything else in ``lora_trainer.ui`` uses the API both versions share: ``gr.update`` returned from
functions (never component instances), constructor keyword arguments (never ``.style()``).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

import gradio as gr

GR_MAJOR = int(gr.__version__.split(".")[0])
POLL_SECONDS = 1.5
# 4.40's browser client looks every event up among the API's unnamed endpoints, which 4.40 never lists, and
# warns "Too many arguments provided for the endpoint." for each event that sends any value. Events that
# run by themselves (page load, the poll) send none there: what a page must remember is kept on the server,
# by the page's session (PageMemory).
QUIET_INPUTS = GR_MAJOR >= 4


class PageMemory:
    """Small per-page values (the stamp of what a page shows, the run it picked) kept on the server, keyed by
    gradio 4's session hash; the newest ``size`` pages are remembered."""

    def __init__(self, size: int = 256) -> None:
        self._pages: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def page(self, request: Any) -> dict:
        key = str(getattr(request, "session_hash", "") or "")
        if not key:
            return {}   # no session (gradio 3.41 gives none): nothing is remembered
        with self._lock:
            values = self._pages.pop(key, None) or {}
            self._pages[key] = values
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)
            return values


def js_kw(code: str) -> dict:
    """Keyword for client-side code on an event: ``btn.click(fn, ..., **js_kw("() => ..."))``."""
    return {"_js": code} if GR_MAJOR < 4 else {"js": code}


def in_order_kw(group: str) -> dict:
    """Keywords that make the events given them run one at a time, in the order they came: on 4.40 each
    listener has its own concurrency group, so two quick edits could finish in the wrong order and leave the
    older answer shown; 3.41's queue already runs them in order."""
    return {} if GR_MAJOR < 4 else {"concurrency_id": group, "concurrency_limit": 1}


def as_path(value: Any) -> str | None:
    """The file path of a ``gr.File`` value: a temp-file wrapper on 3.41, a str subclass on 4.40."""
    if value is None:
        return None
    if isinstance(value, dict):  # gradio 4 FileData passed through as a dict
        return value.get("path") or value.get("name")
    return getattr(value, "name", value)


def keep_out_of_ui_config(*components: Any) -> None:
    """The host freezes every component's default in ui-config.json on first start; ours follow the
    trainer's defaults and the loaded checkpoint instead, so they opt out."""
    for component in components:
        component.do_not_save_to_config = True


def dropdown(choices: list, value: Any, **kwargs: Any) -> gr.Dropdown:
    """A dropdown that accepts a value outside ``choices`` on 4.40 too (a path typed by hand,
    a setting loaded from a file)."""
    return gr.Dropdown(choices=choices, value=value, allow_custom_value=True, **kwargs)


def picker(choices: list, value: Any, **kwargs: Any) -> gr.Dropdown:
    """A dropdown of listed entries only, for lists that change while the page is open (runs, jobs).

    4.40 keeps the *index* of the selected entry when the choices of a dropdown that takes custom values
    change: after a new entry is put at the top, the list ticks the new entry, shows the old one, and picking
    the new one changes nothing (the old one stays the value). Without custom values it looks the value up."""
    return gr.Dropdown(choices=choices, value=value, allow_custom_value=False, **kwargs)


def info_kw(text: str) -> dict:
    """Plain-words explanation under a component (both versions support ``info=`` on inputs)."""
    return {"info": text} if text else {}


def poll(fn: Callable, inputs: list, outputs: list, stamp: Callable[[], str], seconds: float = POLL_SECONDS,
         page_fn: Callable | None = None, page_outputs: list | None = None) -> Any:
    """Call ``fn(*inputs)`` every ``seconds`` while the page is open; returns the event to chain on.

    4.40 has ``gr.Timer``; its tick calls ``page_fn(request)`` with no inputs instead (see QUIET_INPUTS),
    updating ``page_outputs``. 3.41 has only polled values: a hidden HTML re-reads ``stamp()`` with
    ``every=`` and its ``change`` runs ``fn`` when the stamp moves. 4.40 cannot use that route: its HTML
    component fires ``change`` after every event of the page, not only when the value changes (measured:
    about 12 times a second).
    """
    quiet = {"show_progress": "hidden"}
    if hasattr(gr, "Timer"):
        if page_fn is not None and QUIET_INPUTS:
            return gr.Timer(seconds).tick(page_fn, None, page_outputs, **quiet)
        return gr.Timer(seconds).tick(fn, inputs, outputs, **quiet)
    beat = gr.HTML(value=lambda: f'<div hidden data-stamp="{stamp()}"></div>', every=seconds,
                   elem_id="lora_trainer_heartbeat")
    return beat.change(fn, inputs, outputs, **quiet)
