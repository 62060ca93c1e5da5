"""The tab in a real browser: ``python -m lora_trainer.ui`` serves it with a tiny SD1 checkpoint, Debian's
Chromium (driven by Playwright, no browser download) fills the form, starts a run, watches the numbers and
the chart, reloads the page mid-run and finds the run again, and sees the saved files and a preview.

A screenshot of the finished page is written to the test's temp folder (or ``$LORA_TRAINER_SCREENSHOTS``).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("torch")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "lora_trainer" / "demo_data" / "train" / "8_zkz shapes"
SETTINGS = """resolution = "64"
min_bucket_reso = 64
max_bucket_reso = 128
bucket_reso_steps = 64
mixed_precision = "no"
learning_rate = 0.002
"""

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"browser tests drive the system Chromium at {CHROMIUM}; "
                                       "install it with: apt-get install chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def standalone_server(tmp_path: Path, models: str, output_dir: str, extra_args=()):
    """``python -m lora_trainer.ui`` on a free port, stopped afterwards; yields (url, log path)."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", LORA_TRAINER_JOBS_DIR=str(tmp_path / "jobs"),
               LORA_TRAINER_PRESETS_DIR=str(tmp_path / "presets"), PYTHONPATH=str(ROOT),
               GRADIO_ANALYTICS_ENABLED="False")
    log_path = tmp_path / "server.log"
    log = open(log_path, "w+", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "lora_trainer.ui", "--models", models, "--output-dir",
                                output_dir, "--port", str(port), *extra_args], cwd=str(tmp_path), env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while "running at" not in log_path.read_text(encoding="utf-8"):
            assert process.poll() is None, log_path.read_text(encoding="utf-8")
            assert time.time() < deadline, "the server did not start in 2 minutes"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def demo_server(tmp_path):
    from lora_trainer.cli.demo import write_demo_base

    base = write_demo_base(str(tmp_path))
    data = tmp_path / "train" / "2_zkz shapes"   # 3 images × 2 repeats ÷ batch 2 = 3 steps per epoch
    data.mkdir(parents=True)
    for image in sorted(DEMO.glob("*.png"))[:3]:
        shutil.copy(image, data)
        shutil.copy(image.with_suffix(".txt"), data)
    settings = tmp_path / "tiny.toml"
    settings.write_text(SETTINGS, encoding="utf-8")
    with standalone_server(tmp_path, base, str(tmp_path / "loras")) as (url, log_path):
        yield {"url": url, "data": str(data.parent), "settings": str(settings), "loras": tmp_path / "loras",
               "shots": Path(os.environ.get("LORA_TRAINER_SCREENSHOTS") or tmp_path), "log": log_path}


def open_subtab(page, name: str) -> None:
    page.locator("button").filter(has_text=re.compile(rf"^\s*{name}\s*$")).first.click()


def field(page, elem_id: str):
    """The text or number input of a component (gradio renders one-line text boxes as input or textarea)."""
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text], #{elem_id} input[type=number]").first


def type_into(page, elem_id: str, value: str) -> None:
    box = field(page, elem_id)
    box.fill(value)
    box.press("Tab")


def text_of(page, elem_id: str) -> str:
    return page.evaluate(f"() => (document.querySelector('#{elem_id}') || {{}}).textContent || ''")


def wait_for_text(page, elem_id: str, pattern: str, timeout: float = 90) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = text_of(page, elem_id)
        if re.search(pattern, text):
            return text
        page.wait_for_timeout(300)
    raise AssertionError(f"#{elem_id} never showed {pattern!r}; it shows: {text_of(page, elem_id)[:300]!r}")


# javascript/lora_trainer.js meets a browser whose notifications are allowed and a WebUI page with its
# notification.mp3 element, and the page is in the background: both are recorded instead of shown and played,
# for the browser tab's session (a run may end just before a reload: its one notification is on the old page)
NOTIFICATIONS = """
window.notesShown = JSON.parse(sessionStorage.getItem("test_notes") || "[]");
window.soundsPlayed = Number(sessionStorage.getItem("test_sounds") || 0);
window.Notification = class {
    constructor(title, options) {
        window.notesShown.push([title, options.body]);
        sessionStorage.setItem("test_notes", JSON.stringify(window.notesShown));
    }
    static get permission() { return "granted"; }
    static requestPermission() { return Promise.resolve("granted"); }
};
document.hasFocus = () => false;
window.titlesShown = [];
setInterval(() => { if (!window.titlesShown.includes(document.title)) window.titlesShown.push(document.title); }, 50);
document.addEventListener("DOMContentLoaded", () => {
    const box = document.createElement("div");
    box.id = "audio_notification";
    const audio = document.createElement("audio");
    audio.play = () => {
        window.soundsPlayed += 1;
        sessionStorage.setItem("test_sounds", String(window.soundsPlayed));
        return Promise.resolve();
    };
    box.appendChild(audio);
    document.body.appendChild(box);
});
"""


def wait_for_title(page, pattern: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while not re.search(pattern, page.title()):
        assert time.time() < deadline, f"the window title never matched {pattern!r}: {page.title()!r}"
        page.wait_for_timeout(200)
    return page.title()


def test_train_in_the_browser_reload_and_find_the_run(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(NOTIFICATIONS)
        page.goto(server["url"])
        page.wait_for_selector("#lora_trainer_train_data_dir")

        open_subtab(page, "Dataset")
        type_into(page, "lora_trainer_train_data_dir", server["data"])
        wait_for_text(page, "lora_trainer_dataset_summary", r"2_zkz shapes")

        open_subtab(page, "Train")
        page.locator("#lora_trainer_settings_io").click()
        page.locator("#lora_trainer_load_file input[type=file]").set_input_files(server["settings"])
        wait_for_text(page, "lora_trainer_settings_message", "Settings loaded")
        for name, value in (("output_name", "shapes/browser"), ("max_train_epochs", "2"), ("train_batch_size", "2"),
                            ("network_dim", "4"), ("network_alpha", "4")):
            type_into(page, f"lora_trainer_{name}", value)
        page.locator("#lora_trainer_previews").click()
        type_into(page, "lora_trainer_preview_steps", "2")
        wait_for_text(page, "lora_trainer_plan_line", "3 images × 2 repeats × 2 epochs ÷ batch 2 = 6 steps")

        page.locator("#lora_trainer_start").click()
        wait_for_text(page, "lora_trainer_start_message", "Training starts")
        assert field(page, "lora_trainer_output_name").input_value() == "shapes_browser"
        before = wait_for_text(page, "lora_trainer_progress", r"Step\s*[1-9]\d* / 6")
        wait_for_text(page, "lora_trainer_progress", r"Loss\s*\d+\.\d{4}")
        page.wait_for_selector("#lora_trainer_chart svg polyline")
        shown = page.evaluate("window.titlesShown")   # while it trains: its progress in the window title
        assert any(re.fullmatch(r"\[LoRA \d+%\] LoRA Trainer", t) for t in shown), shown

        page.reload()   # the run lives in the server, not in the page
        page.wait_for_selector("#lora_trainer_train_data_dir")
        open_subtab(page, "Train")
        again = wait_for_text(page, "lora_trainer_progress", r"shapes_browser")
        step = lambda text: int(re.search(r"Step\s*(\d+) /", text).group(1))  # noqa: E731
        assert step(again) >= step(before)
        assert field(page, "lora_trainer_output_name").input_value() == "shapes_browser" or \
            "Finished" in again   # while it trains, its settings are back in the form

        wait_for_text(page, "lora_trainer_progress", r"Finished", timeout=100)
        assert wait_for_title(page, r"^LoRA Trainer$", timeout=10) == "LoRA Trainer"   # restored after the run
        page.wait_for_timeout(500)
        assert page.evaluate("window.notesShown") == [["LoRA Trainer", "shapes_browser: Finished"]]
        assert page.evaluate("window.soundsPlayed") == 1
        files = wait_for_text(page, "lora_trainer_files", r"shapes_browser\.safetensors")
        assert "shapes_browser-000001.safetensors" in files
        log = wait_for_text(page, "lora_trainer_log", r"Finished after \d+ steps")
        assert "Run log" in log and "Epoch 1: mean loss" in log
        # the newest line is at the bottom of the box, which starts scrolled to its end
        assert page.evaluate("""() => { const box = document.querySelector('#lora_trainer_log .lt-log-lines');
            const last = [...box.children].reduce((a, b) => a.getBoundingClientRect().top >
                b.getBoundingClientRect().top ? a : b);
            return last.textContent; }""").startswith("Finished after")
        page.wait_for_selector("#lora_trainer_gallery img", timeout=20000)
        assert (server["loras"] / "shapes_browser.safetensors").is_file()

        page.reload()   # after the run: the form shows its settings, not the defaults
        page.wait_for_selector("#lora_trainer_train_data_dir")
        open_subtab(page, "Train")
        wait_for_text(page, "lora_trainer_progress", r"Finished")
        deadline = time.time() + 20
        while field(page, "lora_trainer_output_name").input_value() != "shapes_browser" and time.time() < deadline:
            page.wait_for_timeout(300)
        assert field(page, "lora_trainer_output_name").input_value() == "shapes_browser"
        assert field(page, "lora_trainer_max_train_epochs").input_value() == "2"
        assert field(page, "lora_trainer_network_dim").input_value() == "4"
        assert field(page, "lora_trainer_preview_steps").input_value() == "2"
        page.wait_for_selector("#lora_trainer_gallery img", timeout=20000)
        page.wait_for_timeout(500)
        server["shots"].mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(server["shots"] / f"lora_trainer_tab_gradio{page_gradio_major()}.png"),
                        full_page=True)
        browser.close()


def page_gradio_major() -> str:
    import gradio

    return gradio.__version__.split(".")[0]
