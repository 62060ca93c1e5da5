"""The Train tab's own presets as the WebUI shows them (gradio 3.41 on the A1111 stack, 4.40 on Forge's): the form
saved under a name into the WebUI's data folder, listed, applied with the built-in ones (paths and names kept,
what changed listed), refused names said in the host's language, a broken file listed, deleted."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("fastapi")

from test_ui_tab import Page, form_value, open_tab  # noqa: E402


def checked(page: Page) -> Page:
    """Every event returns one value per output, as gradio 4.40 requires."""
    def wrap(fn, outputs):
        @functools.wraps(fn)
        def run(*args):
            result = fn(*args)
            assert len(outputs) == 1 or len(result) == len(outputs), f"{fn.__name__}: {len(result)} values"
            return result
        return run
    for dep in page.deps:
        dep["fn"] = wrap(dep["fn"], dep["outputs"])
    return page


def choices(page: Page) -> list[str]:
    shown = page.prop("lora_trainer_preset_user", "choices", page.block("lora_trainer_preset_user").choices)
    return [c[0] if isinstance(c, (list, tuple)) else c for c in shown]


def test_the_form_saves_as_a_preset_in_the_webuis_folder_and_applies_with_the_built_in_ones(webui):
    page = checked(open_tab(webui))
    assert choices(page) == ["—"] and page["lora_trainer_preset_list"] == ""
    page["lora_trainer_train_data_dir"] = webui.data
    page["lora_trainer_output_name"] = "first"
    page["lora_trainer_network_dim"] = 12
    page["lora_trainer_optimizer_type"] = "AdamW8bit"
    page["lora_trainer_preset_name"] = "my shapes"
    page.fire("lora_trainer_save_preset", "click")
    box = page["lora_trainer_preset_message"]
    assert "Preset saved" in box and "Saved as &#x27;my shapes&#x27;" in box and "output name" in box
    saved = webui.tmp / "webui" / "lora_trainer" / "presets" / "my shapes.toml"
    text = saved.read_text(encoding="utf-8")
    assert "network_dim = 12" in text and "first" not in text and webui.data not in text
    assert choices(page) == ["—", "my shapes"] and page["lora_trainer_preset_user"] == "my shapes"

    page["lora_trainer_network_dim"] = 99
    page["lora_trainer_output_name"] = "second"
    page["lora_trainer_preset_vram"] = "SDXL · 12 GB"
    page.fire("lora_trainer_apply_preset", "click")
    assert form_value(page, "network_dim") == 12 and form_value(page, "optimizer_type") == "AdamW"   # tier on top
    assert form_value(page, "train_batch_size") == 2 and form_value(page, "resolution") == "1024"
    assert form_value(page, "output_name") == "second" and form_value(page, "train_data_dir") == webui.data
    box = page["lora_trainer_preset_message"]
    assert "Preset applied" in box and "my shapes + SDXL · 12 GB" in box and "network_dim: 99 → 12" in box

    other = checked(Page(page.demo))   # another page finds it when it opens (the tab was built before)
    assert choices(other) == ["—"]
    other.open()
    assert choices(other) == ["—", "my shapes"]


def test_refusals_and_broken_files_are_said_in_the_hosts_language_and_delete_works(webui, monkeypatch):
    from modules import shared

    monkeypatch.setitem(shared.opts.data, "localization", "zh_CN")
    folder = webui.tmp / "webui" / "lora_trainer" / "presets"
    folder.mkdir(parents=True)
    (folder / "broken.toml").write_text("network_dim = = 3", encoding="utf-8")
    page = checked(open_tab(webui))
    assert "Presets that cannot be read" in page["lora_trainer_preset_list"]
    assert "无法读取 broken" in page["lora_trainer_preset_list"] and choices(page) == ["—", "broken"]
    page["lora_trainer_preset_user"] = "broken"
    page.fire("lora_trainer_apply_preset", "click")
    assert "The preset could not be applied" in page["lora_trainer_preset_message"]

    for name, said in (("Character", "内置预设"), ("../up", "不能包含"), ("", "没有名称")):
        page["lora_trainer_preset_name"] = name
        page.fire("lora_trainer_save_preset", "click")
        box = page["lora_trainer_preset_message"]
        assert "The preset could not be saved" in box and said in box, name
    assert sorted(p.name for p in folder.iterdir()) == ["broken.toml"]

    page["lora_trainer_preset_name"] = "mine"
    page.fire("lora_trainer_save_preset", "click")
    assert "已保存为 &#x27;mine&#x27;" in page["lora_trainer_preset_message"]
    page["lora_trainer_preset_user"] = "broken"
    page.fire("lora_trainer_delete_preset", "click")
    assert "Preset deleted" in page["lora_trainer_preset_message"] and page["lora_trainer_preset_list"] == ""
    assert choices(page) == ["—", "mine"] and page["lora_trainer_preset_user"] == "—"
    page.fire("lora_trainer_delete_preset", "click")
    assert "Choose one of your presets first" in page["lora_trainer_preset_message"]
    assert sorted(p.name for p in Path(folder).iterdir()) == ["mine.toml"]
