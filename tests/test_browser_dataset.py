"""The Dataset workbench in a real browser, on the standalone server: import a folder, fix a check, crop to the
training size, tag with a tiny WD14 model, edit tags in a batch, fold a trait with preview and undo, hand the
project to the Train tab and train the tiny model from it."""
from __future__ import annotations

import shutil

import pytest

from test_browser import (CHROMIUM, DEMO, SETTINGS, field, open_subtab, page_gradio_major, standalone_server,  # noqa
                          type_into, wait_for_text)
from test_dataset_tagging import HAVE_ONNX, HAVE_ORT, build_tiny_tagger

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not (HAVE_ONNX and HAVE_ORT), reason="the tiny WD14 tagger needs onnx and onnxruntime")


def choose(page, elem_id: str, text: str) -> None:
    """Pick ``text`` in a dropdown (typing works on both gradio versions; custom values are allowed)."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(text)
    option = page.locator(f"#{elem_id} ul.options li").filter(has_text=text)
    page.wait_for_timeout(300)
    if option.count():
        option.first.click()
    else:
        box.press("Enter")
    page.wait_for_timeout(400)


def click(page, elem_id: str) -> None:
    page.locator(f"#{elem_id}").click()


def step(page, name: str) -> None:
    page.locator("#lora_trainer_ds_steps button").filter(has_text=name).first.click()


def test_make_a_dataset_in_the_browser_and_train_from_it(tmp_path):
    from lora_trainer.cli.demo import write_demo_base

    write_demo_base(str(tmp_path))
    build_tiny_tagger(tmp_path / "base" / "wd14" / "tiny tagger")
    pictures = tmp_path / "我的 图片"
    pictures.mkdir()
    for image in sorted(DEMO.glob("*.png"))[:4]:
        shutil.copy(image, pictures)
        (pictures / image.with_suffix(".txt").name).write_text("1girl, blue hair, smile", encoding="utf-8")
    settings = tmp_path / "tiny.toml"
    settings.write_text(SETTINGS, encoding="utf-8")
    with standalone_server(tmp_path, str(tmp_path / "base"), str(tmp_path / "loras")) as (url, log_path):
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            errors = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(url)
            page.wait_for_selector("#lora_trainer_ds_project")
            open_subtab(page, "Dataset")
            choose(page, "lora_trainer_ds_project", "browser project")
            wait_for_text(page, "lora_trainer_ds_project_box", "browser project")

            type_into(page, "lora_trainer_ds_source", str(pictures))
            type_into(page, "lora_trainer_ds_trigger", "zkz")
            type_into(page, "lora_trainer_ds_repeats", "1")
            click(page, "lora_trainer_ds_look")
            wait_for_text(page, "lora_trainer_ds_import_box", "4 picture")
            click(page, "lora_trainer_ds_import")
            wait_for_text(page, "lora_trainer_ds_import_box", r"4 picture\(s\) and 4 caption")

            step(page, "Checks")
            click(page, "lora_trainer_ds_run_checks")
            wait_for_text(page, "lora_trainer_ds_checks_box", "lack the trigger word")
            choose(page, "lora_trainer_ds_fix_pick", "Put 'zkz' first")
            click(page, "lora_trainer_ds_fix")
            wait_for_text(page, "lora_trainer_ds_fix_box", "zkz, 1girl, blue hair, smile")

            step(page, "Crop and resize")
            type_into(page, "lora_trainer_ds_prep_size", "64")
            click(page, "lora_trainer_ds_prep_show")
            wait_for_text(page, "lora_trainer_ds_prep_box", "4 to prepare")
            click(page, "lora_trainer_ds_prep_run")
            wait_for_text(page, "lora_trainer_ds_prep_box", r"Prepared 4 picture")

            step(page, "Tagging")
            click(page, "lora_trainer_ds_tag_refresh")
            page.wait_for_timeout(800)
            choose(page, "lora_trainer_ds_tagger", "tiny tagger")
            click(page, "lora_trainer_ds_tag_run")
            wait_for_text(page, "lora_trainer_ds_tag_box", "Tagged")

            step(page, "Captions")
            click(page, "lora_trainer_ds_show")
            wait_for_text(page, "lora_trainer_ds_captions_box", "4 of 4")
            type_into(page, "lora_trainer_ds_tags", "smile")
            page.locator("#lora_trainer_ds_operation label").filter(has_text="remove").click()
            click(page, "lora_trainer_ds_preview_batch")
            wait_for_text(page, "lora_trainer_ds_edit_box", "4 caption")
            click(page, "lora_trainer_ds_apply")
            wait_for_text(page, "lora_trainer_ds_edit_box", r"4 caption\(s\) written")
            page.wait_for_selector("#lora_trainer_ds_traits label")
            page.locator("#lora_trainer_ds_traits label").filter(has_text="blue hair").click()
            click(page, "lora_trainer_ds_preview_fold")
            wait_for_text(page, "lora_trainer_ds_edit_box", "would change")
            click(page, "lora_trainer_ds_apply")
            wait_for_text(page, "lora_trainer_ds_edit_box", "fold blue hair into zkz")
            click(page, "lora_trainer_ds_undo")
            wait_for_text(page, "lora_trainer_ds_edit_box", "Undone: fold blue hair")

            click(page, "lora_trainer_ds_handoff")
            wait_for_text(page, "lora_trainer_ds_project_box", "The Train tab is filled in")
            img = tmp_path / "lora_trainer_datasets" / "browser project" / "img"
            assert field(page, "lora_trainer_train_data_dir").input_value() == str(img)

            open_subtab(page, "Train")
            page.locator("#lora_trainer_settings_io").click()
            page.locator("#lora_trainer_load_file input[type=file]").set_input_files(str(settings))
            wait_for_text(page, "lora_trainer_settings_message", "Settings loaded")
            for name, value in (("output_name", "from_dataset"), ("max_train_epochs", "1"), ("train_batch_size", "2"),
                                ("network_dim", "4"), ("network_alpha", "4")):
                type_into(page, f"lora_trainer_{name}", value)
            page.locator("#lora_trainer_previews").click()
            page.locator("#lora_trainer_preview_on input").uncheck()
            wait_for_text(page, "lora_trainer_plan_line", r"4 images × 1 repeats × 1 epochs ÷ batch 2 = 2 steps")
            click(page, "lora_trainer_start")
            wait_for_text(page, "lora_trainer_start_message", "Training starts")
            wait_for_text(page, "lora_trainer_progress", "Finished", timeout=120)
            browser.close()
    captions = sorted((img / "1_zkz").glob("*.txt"))
    texts = [c.read_text(encoding="utf-8").strip() for c in captions]
    assert texts and all(t.startswith("zkz, ") and "smile" not in t and "blue hair" in t for t in texts), texts
    assert (tmp_path / "loras" / "from_dataset.safetensors").is_file()
    assert errors == [], errors
    assert page_gradio_major() in ("3", "4")
