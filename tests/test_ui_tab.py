"""The tab as the WebUI builds it: the scripts file executed by path, on_ui_tabs recorded by the fake host,
rendered in a parent Blocks inside a TabItem, its events run the way gradio runs them (gradio 3.41 on the
A1111 stack, 4.40 on Forge's). The runner is real; the training loop is the scripted one."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("fastapi")

import fake_host  # noqa: E402
from fake_host import scripted  # noqa: E402
from lora_trainer.ui.fields import field_specs  # noqa: E402

WAIT = 30

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "lora_trainer_tab.py"
DEMO = ROOT / "lora_trainer" / "demo_data" / "train"


def run_tab_script():
    """Execute the scripts file as the WebUI does: by path, as ``<file>.py``, not kept in sys.modules."""
    spec = importlib.util.spec_from_file_location(SCRIPT.name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_page(tabs):
    """The tabs from on_ui_tabs rendered the way the WebUI renders them: one TabItem each, in a parent Blocks."""
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Tabs():
            for blocks, title, elem_id in tabs:
                with gr.TabItem(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    blocks.render()
    return demo


def dependencies(demo) -> list[dict]:
    """index, targets [(block id, event)], input/output ids, fn, trigger_after: both gradio versions."""
    out = []
    if isinstance(demo.fns, dict):   # gradio 4
        for fn in demo.fns.values():
            out.append({"index": fn._id, "targets": [tuple(t) for t in fn.targets],
                        "inputs": [c._id for c in fn.inputs], "outputs": [c._id for c in fn.outputs],
                        "fn": fn.fn, "after": fn.trigger_after})
    else:                            # gradio 3
        for index, (dep, fn) in enumerate(zip(demo.dependencies, demo.fns)):
            targets = [(t, dep["trigger"]) for t in dep["targets"]] or [(None, dep["trigger"])]
            out.append({"index": index, "targets": targets,
                        "inputs": list(dep["inputs"]), "outputs": list(dep["outputs"]), "fn": fn.fn,
                        "after": dep.get("trigger_after")})
    return out


class Page:
    """One open page: component values and properties, events fired like the browser would (a function that
    asks for the request gets one with the page's own session hash, as gradio 4 gives it)."""

    def __init__(self, demo) -> None:
        import uuid

        self.demo = demo
        self.deps = dependencies(demo)
        self.values = {i: getattr(b, "value", None) for i, b in demo.blocks.items()}
        self.props: dict[int, dict] = {}
        self.request = types.SimpleNamespace(session_hash=uuid.uuid4().hex)

    def block(self, elem_id: str):
        for block in self.demo.blocks.values():
            if getattr(block, "elem_id", None) == elem_id:
                return block
        raise KeyError(elem_id)

    def labelled(self, label: str):
        found = [b for b in self.demo.blocks.values() if getattr(b, "label", None) == label]
        assert len(found) == 1, f"{len(found)} components labelled {label!r}"
        return found[0]

    def __getitem__(self, elem_id: str):
        return self.values[self.block(elem_id)._id]

    def __setitem__(self, elem_id: str, value) -> None:
        self.values[self.block(elem_id)._id] = value

    def prop(self, elem_id: str, name: str, default=None):
        return self.props.get(self.block(elem_id)._id, {}).get(name, default)

    def _run(self, dep) -> None:
        import inspect

        args = [self.values[i] for i in dep["inputs"]]
        wants = [p for p in inspect.signature(dep["fn"]).parameters.values() if "Request" in str(p.annotation)]
        result = dep["fn"](*args, *([self.request] if wants else []))
        outputs = dep["outputs"]
        if len(outputs) == 1:
            result = [result]
        for block_id, value in zip(outputs, result or []):
            if isinstance(value, dict) and value.get("__type__") in ("update", "generic_update"):
                props = {k: v for k, v in value.items() if k != "__type__"}
                if "value" in props:
                    self.values[block_id] = props.pop("value")
                self.props.setdefault(block_id, {}).update(props)
            else:
                self.values[block_id] = value
        for follow in self.deps:
            if follow["after"] == dep["index"]:
                self._run(follow)

    def fire(self, elem_id: str, event: str) -> None:
        target = (self.block(elem_id)._id, event)
        matched = [d for d in self.deps if target in d["targets"]]
        assert matched, f"nothing listens to {event} of {elem_id}"
        for dep in matched:
            self._run(dep)

    def open(self) -> None:
        """What runs when the page opens in a browser."""
        for dep in self.deps:
            if any(event == "load" for _, event in dep["targets"]):
                self._run(dep)


# --------------------------------------------------------------------------------------------------------
# the tab as the WebUI builds it: the scripts file, the fake A1111 host, the real runner with a scripted loop

def webui_session(tmp_path, monkeypatch):
    from lora_trainer.runner import runner as runner_module

    root = tmp_path / "webui"
    base = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "base.safetensors", "sd1")
    fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "xl.safetensors", "sdxl")
    data = tmp_path / "data"
    shutil.copytree(DEMO, data)
    fake = fake_host.activate("a1111", root=root, loaded=base)
    monkeypatch.setattr(runner_module, "_RUNNER", None)
    monkeypatch.setenv("LORA_TRAINER_JOBS_DIR", str(tmp_path / "jobs"))
    script = scripted.install(monkeypatch)
    from modules import script_callbacks
    script_callbacks.clear_callbacks()
    yield types.SimpleNamespace(fake=fake, callbacks=script_callbacks, script=script, base=str(base), data=str(data),
                                tmp=tmp_path, runner=lambda: runner_module._RUNNER)
    if runner_module._RUNNER is not None:
        runner_module._RUNNER.shutdown(WAIT)
    fake_host.deactivate()


def open_tab(webui) -> Page:
    run_tab_script()
    tabs = webui.callbacks.ui_tabs_callback()
    assert [(title, elem_id) for _, title, elem_id in tabs] == [("LoRA Trainer", "lora_trainer")]
    page = Page(host_page(tabs))
    page.open()
    return page


def form_value(page: Page, name: str):
    return page[f"lora_trainer_{name}"]


def test_version_differences_are_bridged():
    import gradio as gr

    from lora_trainer.ui.compat import GR_MAJOR, as_path, js_kw

    assert GR_MAJOR == int(gr.__version__.split(".")[0])
    assert list(js_kw("() => 1")) == (["_js"] if GR_MAJOR < 4 else ["js"])
    assert as_path(types.SimpleNamespace(name="/tmp/a.toml")) == "/tmp/a.toml"   # 3.41's temp-file wrapper
    assert as_path("/tmp/b.toml") == "/tmp/b.toml"
    assert as_path({"path": "/tmp/c.json"}) == "/tmp/c.json" and as_path(None) is None


def test_the_script_registers_each_callback_once_even_when_run_twice(webui, monkeypatch):
    def remove(callback):   # what A1111's script_callbacks offers and the script uses
        for items in webui.callbacks.callbacks.values():
            while callback in items:
                items.remove(callback)
    monkeypatch.setattr(webui.callbacks, "remove_callbacks_for_function", remove, raising=False)
    from lora_trainer.hosts import xyz_axes
    axes = []
    monkeypatch.setattr(xyz_axes, "register_axes", lambda get_lora_dir, language=None: axes.append(get_lora_dir()))
    run_tab_script()
    run_tab_script()
    counts = {k: len(v) for k, v in webui.callbacks.callbacks.items()}
    assert counts == {"ui_tabs": 1, "app_started": 1, "script_unloaded": 1, "ui_settings": 1}
    assert str(ROOT) in sys.path
    from modules import shared
    assert axes == [shared.cmd_opts.lora_dir] * 2   # the X/Y/Z axes, added at every execution of the file


def test_the_tab_is_generated_from_the_config_with_the_basic_view_first(webui):
    page = open_tab(webui)
    labels = [b.label for b in page.demo.blocks.values() if getattr(b, "label", None)]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    assert not twice, f"a label twice in one tab collides in the WebUI's ui-config.json: {twice}"
    for spec in field_specs():
        if spec.widget == "block_table":   # kohya's seven per-block settings: one table
            assert page.block("lora_trainer_block_table").headers[:3] == ["Block", "LR weight", "Rank"]
        elif spec.name != "pretrained_model_name_or_path":
            assert page.block(f"lora_trainer_{spec.name}").label == spec.label
    assert all(getattr(b, "do_not_save_to_config", False) for b in page.demo.blocks.values()
               if getattr(b, "label", None) and b.label != "LoRA Trainer")
    assert page["lora_trainer_base_model"].startswith("base.safetensors")   # the host's loaded checkpoint
    assert "xl.safetensors" in str(page.block("lora_trainer_base_model").choices)
    from modules import shared
    assert form_value(page, "output_dir") == shared.cmd_opts.lora_dir
    assert page.block("lora_trainer_start").interactive is not False


def test_form_values_survive_the_browser_round_trip(webui):
    page = open_tab(webui)
    from lora_trainer.ui.fields import widget_values
    from test_ui_fields import NON_DEFAULT

    from lora_trainer.ui.block_table import TABLE
    names = [s.name for s in field_specs() if s.name != "pretrained_model_name_or_path"
             and s.widget != "block_table"] + [TABLE]
    sent = []
    for name, shown in zip(names, widget_values(NON_DEFAULT, names)):
        component = page.block(f"lora_trainer_{name}")
        sent.append(component.preprocess(component.postprocess(shown)))
    from lora_trainer.ui.fields import config_from_widgets
    cfg, _ = config_from_widgets(names, sent, base=NON_DEFAULT.replace(output_dir="x"))
    assert cfg == NON_DEFAULT


def test_presets_fill_the_form_and_say_what_changed(webui):
    page = open_tab(webui)
    page["lora_trainer_preset_subject"] = "Style"
    page["lora_trainer_preset_vram"] = "SDXL · 12 GB"
    page.fire("lora_trainer_apply_preset", "click")
    assert form_value(page, "network_dim") == 64 and form_value(page, "train_batch_size") == 2
    assert form_value(page, "resolution") == "1024" and form_value(page, "gradient_checkpointing") is True
    message = page["lora_trainer_preset_message"]
    assert "Preset applied" in message and "Style + SDXL · 12 GB" in message and "network_dim: 32 → 64" in message


def test_settings_save_as_toml_and_load_from_toml_and_kohya_json(webui, tmp_path):
    page = open_tab(webui)
    page["lora_trainer_network_dim"] = 12
    page.fire("lora_trainer_save", "click")
    saved = page["lora_trainer_saved_file"]
    assert saved.endswith("lora.toml") and "network_dim = 12" in Path(saved).read_text(encoding="utf-8")
    assert "base.safetensors" in Path(saved).read_text(encoding="utf-8")

    from test_kohya_gui import KOHYA_GUI_SAMPLE
    gui = tmp_path / "ningguang.json"
    gui.write_text(json.dumps(dict(KOHYA_GUI_SAMPLE, pretrained_model_name_or_path=webui.base)), encoding="utf-8")
    page["lora_trainer_load_file"] = str(gui)
    page.fire("lora_trainer_load_file", "upload")
    assert form_value(page, "max_train_epochs") == "12" and form_value(page, "optimizer_type") == "AdamW8bit"
    assert form_value(page, "text_encoder_lr") == "5e-05"
    assert page["lora_trainer_base_model"].startswith("base.safetensors")
    assert "kohya_ss settings loaded" in page["lora_trainer_settings_message"]
    # the GUI passes multires_noise_discount on only with noise type "Multires": nothing left behind to name
    assert "multires_noise_discount" not in page["lora_trainer_settings_message"]

    page["lora_trainer_load_file"] = saved
    page.fire("lora_trainer_load_file", "upload")
    assert form_value(page, "network_dim") == 12 and "Settings loaded" in page["lora_trainer_settings_message"]
    broken = tmp_path / "broken.toml"
    broken.write_text("network_dim = = 3", encoding="utf-8")
    page["lora_trainer_load_file"] = str(broken)
    page.fire("lora_trainer_load_file", "upload")
    assert "could not be loaded" in page["lora_trainer_settings_message"] and form_value(page, "network_dim") == 12


def test_step_maths_follow_the_form(webui):
    page = open_tab(webui)
    page["lora_trainer_train_data_dir"] = webui.data
    page.fire("lora_trainer_train_data_dir", "blur")
    assert "8 images × 8 repeats × 10 epochs ÷ batch 1 = 640 steps" in page["lora_trainer_plan_line"]
    assert "8_zkz shapes" in page["lora_trainer_dataset_summary"]
    page["lora_trainer_train_batch_size"] = 4
    page.fire("lora_trainer_train_batch_size", "input")
    assert "÷ batch 4 = 160 steps" in page["lora_trainer_plan_line"]
    page["lora_trainer_train_data_dir"] = webui.data + "/8_zkz shapes"
    page.fire("lora_trainer_train_data_dir", "submit")
    assert "points at the concept folder" in page["lora_trainer_dataset_summary"]


def test_start_checks_queues_trains_and_a_new_page_finds_the_run(webui):
    page = open_tab(webui)
    page.fire("lora_trainer_start", "click")
    assert "Fix these settings first" in page["lora_trainer_start_message"]
    assert "Training images folder (train_data_dir) is empty" in page["lora_trainer_start_message"]

    page["lora_trainer_train_data_dir"] = webui.data
    page["lora_trainer_output_name"] = "shapes/v1"
    page["lora_trainer_preview_prompts"] = "{trigger}, red\n{trigger}, blue"
    page["lora_trainer_preview_width"] = 100
    page.fire("lora_trainer_start", "click")
    assert "Fix these preview settings first" in page["lora_trainer_start_message"]
    assert "width is 100; use a multiple of 8" in page["lora_trainer_start_message"]
    page["lora_trainer_preview_width"] = 96   # the height stays empty: the training resolution
    page.fire("lora_trainer_start", "click")
    assert "Training starts" in page["lora_trainer_start_message"], page["lora_trainer_start_message"]
    assert page["lora_trainer_output_name"] == "shapes_v1"
    runner = webui.runner()
    job = runner.jobs()[0]
    assert job.preview_settings["prompts"] == ["{trigger}, red", "{trigger}, blue"]
    assert (job.preview_settings["width"], job.preview_settings["height"]) == (96, 512)
    assert runner.wait(job.id, WAIT).status == "finished"

    again = Page(page.demo)   # a reload: a fresh page of the same app
    again.open()
    assert "Finished" in again["lora_trainer_progress"] and "shapes_v1" in again["lora_trainer_progress"]
    # the finished run's settings are in the form, not the defaults
    assert again["lora_trainer_output_name"] == "shapes_v1" and again["lora_trainer_train_data_dir"] == webui.data
    assert again["lora_trainer_preview_prompts"] == "{trigger}, red\n{trigger}, blue"
    assert (again["lora_trainer_preview_width"], again["lora_trainer_preview_height"]) == (96, None)
    assert "shapes_v1-000001.safetensors" in again["lora_trainer_files"]
    assert "Run log" in again["lora_trainer_log"] and "Started shapes_v1" in again["lora_trainer_log"]
    # the run picker lists the runs as soon as the page opens (gradio 3 polls it only when the runs change)
    assert any("shapes_v1" in str(c) for c in again.prop("lora_trainer_pick_job", "choices", [])), \
        again.prop("lora_trainer_pick_job", "choices")
    assert "lt-epoch" in again["lora_trainer_chart"]
    assert "Finished" in again["lora_trainer_queue_table"]

    page.fire("lora_trainer_start", "click")   # same name again: files would be replaced
    assert "These files would be replaced" in page["lora_trainer_start_message"]
    assert page.prop("lora_trainer_confirm_overwrite", "visible") is True
    page["lora_trainer_confirm_overwrite"] = True
    page.fire("lora_trainer_start", "click")
    assert "Training starts" in page["lora_trainer_start_message"] or "Added" in page["lora_trainer_start_message"]
    assert runner.wait(runner.jobs()[0].id, WAIT).status == "finished"


def test_a_page_opened_while_a_run_trains_shows_it_with_its_settings_and_can_stop_it(webui):
    webui.script.pause_at = 1
    page = open_tab(webui)
    page["lora_trainer_train_data_dir"] = webui.data
    page["lora_trainer_network_dim"] = 6
    page.fire("lora_trainer_start", "click")
    assert webui.script.paused.wait(WAIT)
    fresh = Page(page.demo)
    fresh.open()
    assert "Training" in fresh["lora_trainer_progress"]
    assert fresh["lora_trainer_network_dim"] == 6 and fresh["lora_trainer_train_data_dir"] == webui.data
    fresh.fire("lora_trainer_stop", "click")
    assert "Stopping" in fresh["lora_trainer_start_message"]
    job = webui.runner().wait(webui.runner().jobs()[0].id, WAIT)
    assert job.status == "stopped"
    fresh.open()
    assert "-interrupted" in fresh["lora_trainer_files"]


def test_missing_libraries_show_a_banner_and_block_start(webui, monkeypatch):
    from lora_trainer.ui import entry

    monkeypatch.setattr(entry, "install_status", lambda root: {
        "ready": False, "summary": "Training is not available: peft is missing.", "problems": ["peft is missing"],
        "command": 'python -m pip install "peft>=0.9,<0.14"'})
    page = open_tab(webui)
    assert "peft is missing" in page["lora_trainer_install"] and "pip install" in page["lora_trainer_install"]
    assert page.block("lora_trainer_start").interactive is False


def test_a_broken_runner_becomes_a_tab_that_explains_and_the_api_is_added_once(webui, monkeypatch):
    import lora_trainer.runner as runner_package
    from fastapi import FastAPI

    run_tab_script()
    monkeypatch.setattr(runner_package, "get_runner", lambda host=None: (_ for _ in ()).throw(
        RuntimeError("no CUDA runtime")))
    [(blocks, title, _)] = webui.callbacks.ui_tabs_callback()
    text = host_page([(blocks, title, "lora_trainer")]).blocks
    html = " ".join(str(getattr(b, "value", "")) for b in text.values())
    assert "could not start" in html and "no CUDA runtime" in html
    monkeypatch.undo()
    app = FastAPI()
    webui.callbacks.app_started_callback(None, app)
    webui.callbacks.app_started_callback(None, app)   # after a "Reload UI"
    routes = [(r.path, tuple(sorted(r.methods))) for r in app.routes if r.path.startswith("/lora-trainer/")]
    assert routes and len(routes) == len(set(routes))
    webui.callbacks.script_unloaded_callback()


def test_the_evaluate_run_list_is_read_again_when_its_sub_tab_is_chosen(webui):
    page = open_tab(webui)
    from modules import shared
    from test_eval_report import make_run

    make_run(Path(shared.cmd_opts.lora_dir), epochs=2, steps_per_epoch=5)   # trained after the page was built
    page.fire("lora_trainer_tab_evaluate", "select")
    choices = page.prop("lora_trainer_eval_run", "choices")
    assert any(str(c).startswith("dreamgirl (") for c in choices), choices
    fresh = Page(page.demo)
    fresh.open()   # a page that opens chooses the newest run
    assert fresh["lora_trainer_eval_run"].startswith("dreamgirl (")


def test_with_several_gpus_the_tab_asks_which_and_the_job_gets_them(webui, monkeypatch):
    from lora_trainer.runner import gpus as gpu_module
    from lora_trainer.runner.runner import Runner

    seen = [("0", "0 · GPU A, 24 GB"), ("1", "1 · GPU B, 24 GB")]
    monkeypatch.setattr(gpu_module, "visible_gpus", lambda: seen)
    monkeypatch.setattr(gpu_module, "own_gpu", lambda: "0")
    submitted = []
    real_submit = Runner.submit
    monkeypatch.setattr(Runner, "submit", lambda self, cfg, previews=None, notes=(), gpus=(): (
        submitted.append(tuple(gpus)), real_submit(self, cfg, previews, notes, gpus))[1])
    from lora_trainer.runner import processes
    from lora_trainer.train import loop
    monkeypatch.setattr(processes, "trainer_for", lambda gpus: loop.train)   # these "GPUs" train here
    page = open_tab(webui)
    box = page.block("lora_trainer_gpus")
    assert box.visible and page["lora_trainer_gpus"] == ["0 · GPU A, 24 GB"]   # the WebUI's own by default
    page["lora_trainer_train_data_dir"] = webui.data
    page["lora_trainer_gpus"] = []
    page.fire("lora_trainer_start", "click")
    assert "choose at least one GPU to train on" in page["lora_trainer_start_message"] and submitted == []
    page["lora_trainer_gpus"] = ["1 · GPU B, 24 GB", "0 · GPU A, 24 GB"]
    page.fire("lora_trainer_start", "click")
    assert "Training starts" in page["lora_trainer_start_message"] and submitted == [("0", "1")]
    job = webui.runner().wait(webui.runner().jobs()[0].id, WAIT)
    assert job.gpus == ["0", "1"]
    again = Page(page.demo)   # a reload shows the run with the GPUs it was given
    again.open()
    assert again["lora_trainer_gpus"] == ["0 · GPU A, 24 GB", "1 · GPU B, 24 GB"]


def test_with_one_gpu_or_none_there_is_no_gpu_choice(webui):
    page = open_tab(webui)
    assert page.block("lora_trainer_gpus").visible is False
