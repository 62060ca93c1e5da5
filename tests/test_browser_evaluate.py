"""The Evaluate sub-tab in a real browser: a tiny SD1 LoRA is trained for two epochs in the test process
(seconds on the CPU), ``python -m lora_trainer.ui`` serves the tab with the same checkpoint, and Debian's
Chromium (driven by Playwright, no browser download) picks the run, analyses it, computes its validation
loss, renders a small grid through the standalone generator, and keeps an epoch under a new name.

A screenshot of the finished page is written to the test's temp folder (or ``$LORA_TRAINER_SCREENSHOTS``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("torch")
sync_api = pytest.importorskip("playwright.sync_api")

from test_browser import (CHROMIUM, DEMO, field, open_subtab, page_gradio_major, standalone_server,  # noqa: E402
                          text_of, type_into, wait_for_text)


pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"browser tests drive the system Chromium at {CHROMIUM}; "
                                       "install it with: apt-get install chromium")


def train_tiny_run(tmp_path: Path) -> dict:
    """Two epochs of a rank-4 LoRA on three 64 px images: ``tiny-000001`` and the final ``tiny``."""
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.cli.demo import write_demo_base
    from lora_trainer.train.loop import train

    base = write_demo_base(str(tmp_path))
    data = tmp_path / "train" / "2_zkz shapes"
    data.mkdir(parents=True)
    for image in sorted(DEMO.glob("*.png"))[:3]:
        shutil.copy(image, data)
        shutil.copy(image.with_suffix(".txt"), data)
    loras = tmp_path / "loras"
    cfg = TrainConfig(pretrained_model_name_or_path=base, train_data_dir=str(data.parent), output_dir=str(loras),
                      output_name="tiny", resolution="64", min_bucket_reso=64, max_bucket_reso=128,
                      bucket_reso_steps=64, train_batch_size=2, max_train_epochs=2, save_every_n_epochs=1,
                      network_dim=4, network_alpha=4, learning_rate=2e-3, mixed_precision="no",
                      save_precision="float", seed=1)
    train(cfg, log=lambda *_: None)
    assert (loras / "tiny.safetensors").is_file() and (loras / "tiny-000001.safetensors").is_file()
    return {"base": base, "data": str(data.parent), "loras": loras}


@pytest.fixture
def server(tmp_path):
    run = train_tiny_run(tmp_path)
    with standalone_server(tmp_path, run["base"], str(run["loras"])) as (url, log_path):
        yield dict(run, url=url, shots=Path(os.environ.get("LORA_TRAINER_SCREENSHOTS") or tmp_path), log=log_path)


def open_accordion(page, elem_id: str, inner_id: str) -> None:
    """Open a closed accordion (clicking its title) until the component ``inner_id`` inside shows."""
    if not page.locator(f"#{inner_id}").first.is_visible():
        page.locator(f"#{elem_id}").first.get_by_text(re.compile(r"^\s*More\s*$")).first.click()
        page.locator(f"#{inner_id}").first.wait_for(state="visible")


def test_evaluate_a_trained_run_in_the_browser(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server["url"])
        page.wait_for_selector("#lora_trainer_train_data_dir")

        open_subtab(page, "Evaluate")
        page.locator("#lora_trainer_eval_refresh").click()
        picked = page.locator("#lora_trainer_eval_run input").first
        deadline = time.time() + 20
        while "tiny" not in (picked.input_value() or "") and time.time() < deadline:
            page.wait_for_timeout(300)
        assert picked.input_value().startswith("tiny ("), picked.input_value()

        page.locator("#lora_trainer_eval_analyse").click()
        wait_for_text(page, "lora_trainer_eval_message", r"Run read")
        page.wait_for_selector("#lora_trainer_eval_chart svg .lt-cand")
        assert page.locator("#lora_trainer_eval_chart svg .lt-cand").count() >= 1
        # the base model is found among the served checkpoints by the name in the run's metadata
        assert field(page, "lora_trainer_eval_base_model").input_value() == server["base"]

        # validation loss on the training images (the folder is typed: a run trained elsewhere)
        open_accordion(page, "lora_trainer_eval_more", "lora_trainer_eval_training_dir")
        type_into(page, "lora_trainer_eval_training_dir", server["data"])
        page.locator("#lora_trainer_eval_validate").click()
        shown = wait_for_text(page, "lora_trainer_eval_validation", r"Validation loss on training images")
        assert re.search(r"validation loss is lowest at epoch [12]", shown), shown
        assert page.locator("#lora_trainer_eval_validation tr").count() == 3   # head + epochs 1 and 2
        metrics = next(server["loras"].glob("logs/tiny-*/metrics.jsonl")).read_text(encoding="utf-8")
        assert [json.loads(line).get("kind") for line in metrics.splitlines()].count("validation") == 2

        # the grid starts from the run: its trained size (64), its trigger word and frequent tags, and says
        # how many images it renders before it starts
        assert (field(page, "lora_trainer_eval_width").input_value(),
                field(page, "lora_trainer_eval_height").input_value()) == ("64", "64")
        assert field(page, "lora_trainer_eval_prompts").input_value().startswith("zkz, ")
        assert "images at 64 × 64, 20 steps" in text_of(page, "lora_trainer_eval_estimate")

        # a 2 × 2 grid: epochs 1 and final (2) at weights 0 and 1, 64 px, 2 steps, another sampler and CFG
        # each edit's estimate shows before the next edit (as a person reads it): two fields' events sent 40 ms
        # apart can reach the server in either order on a loaded machine
        type_into(page, "lora_trainer_eval_epochs", "1, final")
        wait_for_text(page, "lora_trainer_eval_estimate", r"13 images at 64 × 64, 20 steps")   # 7 weights: 0 once
        type_into(page, "lora_trainer_eval_weights", "0, 1")
        wait_for_text(page, "lora_trainer_eval_estimate", r"3 images at 64 × 64, 20 steps")
        type_into(page, "lora_trainer_eval_steps", "2")
        wait_for_text(page, "lora_trainer_eval_estimate", r"3 images at 64 × 64, 2 steps")
        pick_option(page, "lora_trainer_eval_sampler", "DPM++ 2M")
        type_into(page, "lora_trainer_eval_cfg", "5")
        page.locator("#lora_trainer_eval_render").click()
        wait_for_text(page, "lora_trainer_eval_progress", r"Grid rendered", timeout=60)
        page.wait_for_selector("#lora_trainer_eval_grid img")
        assert "Recommendation" in wait_for_text(page, "lora_trainer_eval_recommendation", r"Recommendation")
        grids = list(server["loras"].glob("logs/tiny-*/grids/*/grid.png"))
        assert len(grids) == 1 and len(list(grids[0].parent.glob("*.png"))) == 4   # 3 cells + the grid
        stored = json.loads((grids[0].parent / "grid.json").read_text(encoding="utf-8"))
        assert (stored["sampler_name"], stored["cfg_scale"], stored["steps"]) == ("DPM++ 2M", 5.0, 2)

        # analysed again, the run's grid settings are back, and the time is known now
        page.locator("#lora_trainer_eval_analyse").click()
        wait_for_text(page, "lora_trainer_eval_estimate", r"About \d+:\d\d")
        assert field(page, "lora_trainer_eval_steps").input_value() == "2"
        assert page.locator("#lora_trainer_eval_sampler input").first.input_value() == "DPM++ 2M"

        type_into(page, "lora_trainer_eval_keep_name", "tiny_kept")
        page.locator("#lora_trainer_eval_keep").click()
        wait_for_text(page, "lora_trainer_eval_keep_message", r"Kept")
        kept = list(server["loras"].rglob("tiny_kept.safetensors"))
        assert len(kept) == 1 and kept[0].with_suffix(".json").is_file()
        sidecar = json.loads(kept[0].with_suffix(".json").read_text(encoding="utf-8"))
        assert isinstance(sidecar["preferred weight"], float) and "notes" in sidecar

        page.wait_for_timeout(500)
        server["shots"].mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(server["shots"] / f"lora_trainer_evaluate_gradio{page_gradio_major()}.png"),
                        full_page=True)
        browser.close()


def pick_option(page, elem_id: str, text: str, timeout: float = 20) -> None:
    """Open a dropdown and click the entry containing ``text``, as a user does (waiting until it is listed)."""
    option = page.locator(f"#{elem_id} ul.options li").filter(has_text=text).first
    deadline = time.time() + timeout
    while True:
        page.locator(f"#{elem_id} input").first.click()
        try:
            option.click(timeout=1000)
            break
        except sync_api.TimeoutError:
            listed = page.evaluate(f"() => Array.from(document.querySelectorAll('#{elem_id} ul.options li'))"
                                   ".map(e => e.textContent.trim())")
            assert time.time() < deadline, f"{elem_id} never listed {text!r}: {listed}"
            page.mouse.click(5, 5)   # closes the list (Escape would leave 4.40's list empty at the next opening)
            page.wait_for_timeout(500)
    page.wait_for_timeout(300)


def test_a_run_trained_while_the_page_is_open_is_listed_and_can_be_picked(server, tmp_path):
    """Runs were read once, when the WebUI built the page: a run trained since was missing until ↻, and on
    gradio 4 picking it after ↻ kept analysing the previous one (the list ticked the entry at the old index).
    A run picked from the list is read at once, without Analyse."""
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train.loop import train

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server["url"])
        page.wait_for_selector("#lora_trainer_train_data_dir")
        open_subtab(page, "Evaluate")
        picked = page.locator("#lora_trainer_eval_run input").first
        assert picked.input_value().startswith("tiny (")

        train(TrainConfig(pretrained_model_name_or_path=server["base"], train_data_dir=server["data"],
                          output_dir=str(server["loras"]), output_name="second", resolution="64", min_bucket_reso=64,
                          max_bucket_reso=128, bucket_reso_steps=64, train_batch_size=2, max_train_epochs=1,
                          network_dim=4, network_alpha=4, mixed_precision="no", seed=2), log=lambda *_: None)
        open_subtab(page, "Train")
        open_subtab(page, "Evaluate")   # no ↻: choosing the sub-tab reads the runs again
        pick_option(page, "lora_trainer_eval_run", "second (")
        assert picked.input_value().startswith("second ("), picked.input_value()
        assert "second: epoch" in wait_for_text(page, "lora_trainer_eval_message", r"Run read")

        type_into(page, "lora_trainer_eval_path", str(server["loras"] / "tiny-000001.safetensors"))
        field(page, "lora_trainer_eval_path").press("Enter")
        wait_for_text(page, "lora_trainer_eval_message", r"tiny: epoch")
        type_into(page, "lora_trainer_eval_path", str(server["loras"] / "second.safetensors"))
        pick_option(page, "lora_trainer_eval_run", "tiny (")   # the pick is read, not the typed path
        wait_for_text(page, "lora_trainer_eval_message", r"tiny: epoch")
        page.wait_for_timeout(500)
        assert "tiny: epoch" in text_of(page, "lora_trainer_eval_message")
        assert field(page, "lora_trainer_eval_path").input_value() == ""

        page.locator("#lora_trainer_eval_refresh").click()
        page.wait_for_timeout(1000)
        pick_option(page, "lora_trainer_eval_run", "second (")
        assert picked.input_value().startswith("second ("), picked.input_value()
        wait_for_text(page, "lora_trainer_eval_message", r"second: epoch")
        browser.close()
