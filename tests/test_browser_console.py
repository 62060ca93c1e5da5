"""The browser console stays quiet: the tab in Chromium (``python -m lora_trainer.ui``, gradio 3.41 and 4.40)
is opened, left polling, its sub-tabs and sections opened, and every console warning or error and every failed
request is collected. Forge's console logged 14 "Too many arguments provided for the endpoint." warnings on
page load (2 without the extension), and more at every poll.

Two messages come from gradio 4.40 itself, whatever an app does, and are counted rather than refused:
- its client looks each event up among the API's unnamed endpoints, which 4.40 never lists, and warns
  "Too many arguments provided for the endpoint." for every event that sends a value: the tab's page load
  and polls send none, so only a user's own actions may cause it, one per event that sent values;
- its Tabs component warns "Attempted to select a non-interactive or hidden tab." as it mounts, before its
  first tab registers (Forge's own page logs 32): once per set of tabs that names its selected tab (one that
  names none warns twice, so ours name theirs).
Anything else fails the test, on both gradio versions.
"""
from __future__ import annotations

import json
import os
import re
import time

import pytest

pytest.importorskip("gradio")
pytest.importorskip("torch")
sync_api = pytest.importorskip("playwright.sync_api")

from test_browser import CHROMIUM, open_subtab, page_gradio_major, type_into  # noqa: E402
from test_ui_localization import ZH_CN_TEXTS as ZH_CN, script_hints  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"browser tests drive the system Chromium at {CHROMIUM}; "
                                       "install it with: apt-get install chromium")

CLIENT_WARNING = "Too many arguments provided for the endpoint."
TABS_WARNING = "Attempted to select a non-interactive or hidden tab."
# gradio's own page template loads this from a CDN (unreachable offline); the tab loads nothing from outside
GRADIO_TEMPLATE_URL = re.compile(r"^https://cdnjs\.cloudflare\.com/ajax/libs/iframe-resizer/")


class Console:
    """Console messages, failed requests and the events sent to the server, in order."""

    def __init__(self, page) -> None:
        self.entries: list[tuple[str, str]] = []
        self.closing = False
        page.on("console", lambda m: self.entries.append((m.type, m.text)))
        page.on("requestfailed", self._failed)
        page.on("request", self._request)

    def _failed(self, request) -> None:
        """A request that could not load (gradio 4's client closing its own event stream is no failure)."""
        if not self.closing and "ERR_ABORTED" not in str(request.failure or ""):
            self.entries.append(("failed", f"{request.url} ({request.failure})"))

    def _request(self, request) -> None:
        if re.search(r"/(queue/join|run/predict|api/predict)", request.url):
            try:
                data = json.loads(request.post_data or "{}").get("data") or []
            except ValueError:
                data = []
            self.entries.append(("event", str(len(data))))

    def mark(self) -> int:
        return len(self.entries)

    def since(self, mark: int) -> list[tuple[str, str]]:
        return self.entries[mark:]


def problems(entries, tabs: int) -> list[str]:
    """Every warning, error or failed request that is not one of gradio's own (see the module's text)."""
    out, tab_warnings, client_warnings = [], 0, 0
    sent = sum(1 for kind, text in entries if kind == "event" and int(text) > 0)
    for kind, text in entries:
        if kind == "failed":
            if not GRADIO_TEMPLATE_URL.search(text):
                out.append(f"request failed: {text}")
        elif kind in ("warning", "error"):
            if text == TABS_WARNING:
                tab_warnings += 1
            elif text == CLIENT_WARNING:   # the client warns just before it sends the event
                client_warnings += 1
            elif kind == "error" and "ERR_NAME_NOT_RESOLVED" in text:
                continue   # the failed request itself is judged above, by its address
            else:
                out.append(f"{kind}: {text}")
    if tab_warnings > tabs:
        out.append(f"{tab_warnings} × {TABS_WARNING!r} for {tabs} set(s) of tabs")
    if client_warnings > sent:
        out.append(f"{client_warnings} × {CLIENT_WARNING!r} for {sent} event(s) that sent values")
    return out


def tabs_in_page(page) -> int:
    config = page.evaluate("async () => (await fetch('config')).json()")
    return sum(1 for c in config.get("components", []) if c.get("type") == "tabs")


def test_the_console_stays_quiet_on_load_while_polling_and_opening_sections(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(f"window.localization = {json.dumps(ZH_CN, ensure_ascii=False)};")   # as the WebUI does
        console = Console(page)
        page.goto(server["url"])
        page.wait_for_selector("#lora_trainer_train_data_dir")
        tabs = tabs_in_page(page)
        # javascript/lora_trainer.js: hover hints, in the page's language
        hints = script_hints()
        title = lambda selector: page.locator(selector).first.get_attribute("title")  # noqa: E731
        deadline = time.time() + 10
        while title("#lora_trainer_start") is None and time.time() < deadline:
            page.wait_for_timeout(200)
        assert title("#lora_trainer_start") == ZH_CN[hints["lora_trainer_start"]]
        assert title("#lora_trainer_tabs > .tab-nav > button:nth-child(3)") == ZH_CN[hints["tabs"][2]]

        page.wait_for_timeout(5000)   # three polls and more
        for name in ("Train", "Evaluate", "Dataset", "Train"):
            open_subtab(page, name)
            page.wait_for_timeout(700)
        for section in ("lora_trainer_user_presets", "lora_trainer_previews", "lora_trainer_advanced",
                        "lora_trainer_queue"):
            page.locator(f"#{section}").first.click()
            page.wait_for_timeout(300)
        page.wait_for_timeout(2000)
        on_its_own = console.since(0)
        sent_values = [e for e in on_its_own if e[0] == "event" and e[1] != "0"]
        assert not sent_values, f"events that ran by themselves sent values: {sent_values}"
        assert not problems(on_its_own, tabs), "\n".join(problems(on_its_own, tabs))
        if page_gradio_major() == "4":
            assert sum(e == ("event", "0") for e in on_its_own) >= 3   # the page load and the polls did run

        # a user's own actions: nothing but gradio 4.40's one client warning per event that sent values
        mark = console.mark()
        open_subtab(page, "Dataset")
        type_into(page, "lora_trainer_train_data_dir", server["data"])
        page.locator("#lora_trainer_scan").click()
        page.wait_for_timeout(1500)
        open_subtab(page, "Train")
        page.locator("#lora_trainer_apply_preset").click()   # "Choose a preset first": the form's values sent
        page.wait_for_timeout(2000)
        type_into(page, "lora_trainer_preset_name", "browser preset")
        page.locator("#lora_trainer_save_preset").click()      # saved into the server's own folder, listed
        page.wait_for_function("() => (document.querySelector('#lora_trainer_preset_message') || {}).innerText"
                               "?.includes('browser preset')", timeout=15000)
        page.wait_for_timeout(1000)
        acted = console.since(mark)
        assert not problems(acted, 0), "\n".join(problems(acted, 0))
        if page_gradio_major() == "3":
            assert not [e for e in acted if e[0] in ("warning", "error")]
        console.closing = True
        browser.close()
