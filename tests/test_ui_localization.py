"""zh_CN for every text the tab shows: labels, explanations, placeholders, buttons, choices, fixed messages.

The WebUI's localization replaces a whole text node (or a title/placeholder) whose trimmed text is a
key of the chosen localization file, so each fixed text of the tab must be a key. Texts made of data
(numbers, paths, names) are not translated and are left out here.
"""
from __future__ import annotations

import ast
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lora_trainer.config.presets import PRESETS
from lora_trainer.runner.job import Job
from lora_trainer.ui import status
from lora_trainer.ui.fields import EMPTY_HINT, SECTION_TITLES, field_specs

ROOT = Path(__file__).resolve().parents[1]
ZH_CN = ROOT / "localizations" / "zh_CN.json"
UI = ROOT / "lora_trainer" / "ui"
DATA = re.compile(r"^[\d\s.,:;/%×÷=+\-–·()|e→<>]*$|^[\d.]+ (it/s|GB|MB)$|^\d+_|^/|^\S*/\S*$|\.safetensors$")
SAMPLE = ("sample", "message from the core", "advice from the core", "summary of the install check",
          "python -m pip install peft")


class _Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "code", "pre"):
            self._skip += 1
        for name, value in attrs:
            if name in ("title", "placeholder") and value:
                self.texts.append(value)

    def handle_endtag(self, tag):
        if tag in ("style", "script", "code", "pre"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def html_texts(html: str) -> list[str]:
    parser = _Texts()
    parser.feed(html or "")
    return parser.texts


def message_literals() -> set[str]:
    """Titles, lines and advice written as literals (or either side of an ``if``) in calls to message_html, and
    the titles of error boxes, in every module of the tab."""
    found = set()
    for path in sorted(UI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node.func, "id", "") or getattr(node.func, "attr", "") if isinstance(node, ast.Call) else ""
            if name in ("message_html", "error_box"):
                parts = list(node.args[1:] if name == "message_html" else node.args[:1])
                parts += [k.value for k in node.keywords if k.arg in ("lines", "advice")]
                for part in parts:
                    items = part.elts if isinstance(part, (ast.List, ast.Tuple)) else [part]
                    items = [side for i in items for side in ((i.body, i.orelse) if isinstance(i, ast.IfExp) else (i,))]
                    found |= {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
    return {t for t in found if t}


def rendered_texts() -> set[str]:
    """Fixed words of the views, rendered with sample data (the data itself is filtered out)."""
    job = Job(id="x", output_name="sample", status="training", created_at=time.time(), started_at=time.time(),
              step=3, total_steps=9, epoch=1, epochs=3, it_per_s=1.0, eta_s=5, lr={"unet": 1e-4}, vram_gb=2.0,
              losses=[[1, 0.2]], epoch_losses=[[1, 1, 0.2]],
              error={"message": "message from the core", "advice": "advice from the core"},
              files=[{"path": "/o/sample-000001.safetensors", "epoch": 1, "step": 3, "kind": "epoch"}],
              log=["/o/sample-000001.safetensors"])   # a keyed line is in the tab's language already
    from lora_trainer.evaluate.loss_chart import loss_chart_svg
    from lora_trainer.ui.dataset_view import dataset_summary
    from lora_trainer.config.schema import TrainConfig

    demo = ROOT / "lora_trainer" / "demo_data" / "train"
    html = [status.progress_html(None), status.progress_html(job), status.error_html(job), status.files_html(job),
            status.log_html(job),
            status.queue_html([]), status.queue_html([job]), loss_chart_svg(job.losses, epochs=job.epoch_losses),
            dataset_summary(TrainConfig())[0], dataset_summary(TrainConfig())[1],
            dataset_summary(TrainConfig(train_data_dir=str(demo), resolution="64", min_bucket_reso=64,
                                        max_bucket_reso=128))[0]]   # the demo's own size: no warning of data
    texts = {t for h in html for t in html_texts(h)}
    texts |= set(status.STATUS_TEXT.values()) | set(status.FILE_KINDS.values()) | set(SECTION_TITLES.values())
    texts |= {EMPTY_HINT, "regularization", "training"}   # the dataset table's kinds of concept folder
    return texts


def component_texts(demo) -> set[str]:
    texts = set()
    for block in demo.blocks.values():
        for attr in ("label", "info", "placeholder"):
            value = getattr(block, attr, None)
            if isinstance(value, str) and value:
                texts.add(value)
        kind = type(block).__name__
        if kind == "Button" and isinstance(block.value, str):
            texts.add(block.value)
        if kind == "HTML" and isinstance(block.value, str):
            texts |= set(html_texts(block.value))
        if kind == "Dropdown":   # gradio 4 keeps (label, value) pairs
            shown = {str(c[0] if isinstance(c, (list, tuple)) else c) for c in block.choices}
            if block.elem_id in ("lora_trainer_preset_subject", "lora_trainer_preset_vram") or \
                    shown == {"auto", "on", "off"}:
                texts |= shown
    return texts


def needs_translation(text: str) -> bool:
    text = text.strip()
    return bool(text) and not DATA.search(text) and text not in SAMPLE + ("↻", "—", "LoRA Trainer")


ZH_CN_TEXTS = json.loads(ZH_CN.read_text(encoding="utf-8"))
SCRIPT = ROOT / "javascript" / "lora_trainer.js"


def script_hints() -> dict:
    """javascript/lora_trainer.js's hover hints: elem_id → text, and "tabs": the sub-tabs' hints in order."""
    script = SCRIPT.read_text(encoding="utf-8")
    tabs = re.search(r"TAB_HINTS = \[(.*?)\];", script, re.S).group(1)
    body = re.search(r"\bHINTS = \{(.*?)\};", script, re.S).group(1)
    hints = dict(re.findall(r'^\s*(lora_trainer_\w+): "([^"]+)",', body, re.M))
    hints["tabs"] = re.findall(r'"([^"]+)"', tabs)
    return hints


def test_the_scripts_hints_are_translated_and_name_elements_of_the_tab():
    hints = script_hints()
    texts = [t for k, t in hints.items() if k != "tabs"] + hints["tabs"]
    assert len(hints) > 15 and len(hints["tabs"]) == 3
    missing = sorted(t for t in texts if t not in ZH_CN_TEXTS)
    assert not missing, "add these to localizations/zh_CN.json:\n" + "\n".join(missing)
    code = "\n".join(p.read_text(encoding="utf-8") for p in UI.rglob("*.py"))
    unknown = [k for k in hints if k != "tabs" and f'"{k}"' not in code]
    assert not unknown, f"hints for elements the tab does not have: {unknown}"


def test_the_settings_warnings_written_as_fixed_texts_are_translated():
    from lora_trainer.config.option_checks import LION_WITH_REGULARIZATION

    assert LION_WITH_REGULARIZATION in ZH_CN_TEXTS


def test_the_notification_settings_are_translated():
    from lora_trainer.hosts.webui import NOTIFY_SETTINGS

    assert all(label in ZH_CN_TEXTS for _, label in NOTIFY_SETTINGS)


def test_the_file_is_what_the_webui_loads():
    data = json.loads(ZH_CN.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, str) and v for k, v in data.items())
    assert all(k == k.strip() for k in data), "keys are compared with the trimmed text of the page"


def test_every_fixed_text_of_the_tab_has_a_translation():
    pytest.importorskip("gradio")
    from lora_trainer.ui.tab import build_tab

    class Host:
        name = "standalone"

        def loaded_checkpoint(self):
            return None

        def list_checkpoints(self, refresh=False):
            return []

        def lora_dir(self):
            return "/tmp"

    class Runner:
        def jobs(self):
            return []

        def current(self):
            return None

        def get(self, job_id):
            return None

    tab = build_tab(Runner(), Host(), {"ready": False, "summary": SAMPLE[3], "problems": [], "command": SAMPLE[4]})
    texts = component_texts(tab) | rendered_texts() | message_literals()
    texts |= {p.title for p in PRESETS.values()} | {p.description for p in PRESETS.values()}
    texts |= {s.label for s in field_specs()} | {s.help for s in field_specs()}
    translations = json.loads(ZH_CN.read_text(encoding="utf-8"))
    missing = sorted(t for t in texts if needs_translation(t) and t not in translations)
    assert not missing, "add these to localizations/zh_CN.json:\n" + "\n".join(json.dumps(t, ensure_ascii=False)
                                                                           for t in missing)
