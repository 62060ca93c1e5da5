"""The Evaluate sub-tab: its gradio-free actions on a finished run (fabricated log and LoRA files) with a
fake host that renders deterministic pictures, and the sub-tab built inside a Blocks on the installed
gradio (3.41 on the A1111 stack, 4.40 on Forge's)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lora_trainer.errors import TrainerError
from lora_trainer.evaluate.report import evaluate_run
from lora_trainer.hosts.base import PreviewUnavailable
from lora_trainer.ui.evaluate import actions as ea
from lora_trainer.ui.evaluate import grid as eg
from lora_trainer.ui.evaluate import keep as ek
from lora_trainer.ui.evaluate import validation as evl
from lora_trainer.ui.evaluate import i18n as evaluate_i18n
from test_eval_report import META, picture, write_lora
from test_eval_report import make_run as make_eval_run

UI = Path(__file__).resolve().parents[1] / "lora_trainer" / "ui"
ZH_CN_JSON = json.loads((UI.parents[1] / "localizations" / "zh_CN.json").read_text(encoding="utf-8"))


def make_run(lora: Path, epochs: int = 6) -> Path:
    """A finished run of ``epochs`` epochs of 50 steps each."""
    return make_eval_run(lora, epochs=epochs, steps_per_epoch=50, decay=60.0, noise=0.003)


class FakeHost:
    """Renders a picture per (file, weight, prompt): weight 0 gives the same picture for every file."""

    name = "fake"

    def __init__(self, lora: Path, fail_after: int | None = None) -> None:
        self.lora, self.requests, self.fail_after, self.interrupted = lora, [], fail_after, False

    def lora_dir(self) -> str:
        return str(self.lora)

    def generate_previews(self, req):
        self.requests.append(req)
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            raise PreviewUnavailable("no checkpoint is selected in the WebUI", "select the model")
        base = np.asarray(picture(7).resize((64, 64)), dtype=np.float32)
        other = np.asarray(picture(abs(hash(Path(req.lora_path).name)) % 1000).resize((64, 64)), dtype=np.float32)
        mixed = base * (1 - min(req.weight, 1.0)) + other * min(req.weight, 1.0)
        return [Image.fromarray(mixed.astype(np.uint8))]

    def interrupt(self) -> None:
        self.interrupted = True


class Runner:
    def __init__(self, jobs=()):
        self._jobs = list(jobs)

    def jobs(self):
        return self._jobs


@pytest.fixture
def lora(tmp_path):
    make_run(tmp_path / "Lora")
    return tmp_path / "Lora"


def test_runs_are_listed_from_the_lora_folder_and_the_runner(lora, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    job_file = write_lora(other / "cat-000001.safetensors", META)

    class Job:
        status, output_name, run_dir = "finished", "cat", ""
        files = [{"path": job_file}]

    class Running(Job):
        status = "training"

    choices = ea.list_runs(FakeHost(lora), Runner([Job(), Running()]))
    values = [value for _, value in choices]
    assert len(choices) == 2 and job_file in values
    assert any(value.endswith("dreamgirl-20250101-120000") for value in values)   # our log folder


def test_runs_whose_logs_the_webui_keeps_outside_its_lora_folder_are_found(lora, tmp_path):
    """A WebUI keeps run folders in <data>/lora_trainer/runs: the run is listed with its log, and a grid of a
    run without our log (kohya's) goes there too, never into the Lora folder."""
    import shutil

    runs = tmp_path / "webui" / "lora_trainer" / "runs"
    runs.mkdir(parents=True)
    shutil.move(str(lora / "logs" / "dreamgirl-20250101-120000"), str(runs))
    (lora / "logs").rmdir()

    class WebUIHost(FakeHost):
        def runs_dir(self) -> str:
            return str(runs)

    host = WebUIHost(lora)
    assert [value for _, value in ea.list_runs(host, Runner())] == [str(runs / "dreamgirl-20250101-120000")]
    kohya = tmp_path / "kohya"
    kohya.mkdir()
    for e in (1, 2):
        write_lora(kohya / f"style-{e:06d}.safetensors", {**META, "ss_epoch": str(e)})
    report = evaluate_run(kohya)
    settings = eg.GridSettings.from_inputs("{trigger}", "1, 2", "1", 1, 64, 64, 4)
    result = list(eg.render_grid(host, report, settings))[-1].result
    assert Path(result.path).is_relative_to(runs / "style") and not (kohya / "logs").exists()


def test_analyse_shows_chart_sentences_diagnosis_and_the_suggested_grid(lora):
    choice = ea.list_runs(FakeHost(lora), Runner())[0][1]
    a = ea.analyse(choice, "", "character")
    assert a.report is not None and "<svg" in a.chart and "Run read" in a.message
    assert "What the loss curve says" in a.findings and "<li>" in a.findings
    assert "What you see" in a.diagnosis and "Under-fitting" in a.diagnosis
    assert a.trigger == "dreamgirl" and a.prompt == "dreamgirl, smile"   # the trigger and the run's frequent tags
    assert a.epochs.endswith("dreamgirl") and "dreamgirl-000001" not in a.epochs   # the earliest are skipped
    assert eg.parse_weights(a.weights) == [0, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
    chinese = ea.analyse("", str(lora), "character", templates=evaluate_i18n.ZH_CN_MESSAGES)
    assert re.search("[\u4e00-\u9fff]", chinese.findings + chinese.diagnosis)


def test_analyse_errors_are_plain_words(tmp_path):
    missing = ea.analyse("", str(tmp_path / "nope"), None)
    assert missing.report is None and "What to do" in missing.message and "Traceback" not in missing.message
    assert "Choose a run first" in ea.analyse(None, None, None).message


def test_the_grid_starts_from_the_run_and_keeps_what_was_chosen(lora):
    """Defaults from the run (its trained size, trigger and frequent tags, the host's samplers); the render
    fields reach the host; the grid stores them and the next analysis of the run starts from them."""
    from test_eval_report import make_run as make_sized_run

    sized = lora.parent / "sized"
    make_sized_run(sized, epochs=4, steps_per_epoch=20)
    from lora_trainer.io.safetensors_header import read_header

    for path in sized.glob("*.safetensors"):   # a run trained at 128 × 64
        header, _ = read_header(str(path))
        meta = dict(header.get("__metadata__") or {}, ss_resolution="(128, 64)")
        write_lora(path, meta)

    class Host(FakeHost):
        def render_options(self):
            return {"samplers": ["DPM++ 2M", "Euler"], "schedulers": ["Automatic", "Karras"], "upscalers": ["Latent"]}

    host = Host(sized)
    a = ea.analyse("", str(sized), None, host)
    assert (a.render["width"], a.render["height"]) == (128, 64) and a.render["steps"] == 20
    assert a.render["sampler_name"] == "DPM++ 2M" and a.render["scheduler"] == "Automatic"
    assert a.prompt == "dreamgirl, smile"
    from lora_trainer.ui.evaluate.grid_settings import prompt_from_tags
    assert prompt_from_tags(a.report, "dream girl") == "dream girl, smile"   # the trigger's words only once
    settings = eg.GridSettings.from_inputs(a.prompt, "3, final", "0, 1", 5, 128, 64, 3, "", "", "dreamgirl",
                                           sampler_name="Euler", scheduler="Karras", cfg_scale=4.5,
                                           hires_scale=1.5, hires_upscaler="Latent", hires_steps=2,
                                           denoising_strength=0.4)
    result = list(eg.render_grid(host, a.report, settings))[-1].result
    req = host.requests[-1]
    assert (req.sampler_name, req.scheduler, req.cfg_scale, req.hires_scale, req.hires_steps) == \
        ("Euler", "Karras", 4.5, 1.5, 2) and (req.width, req.height) == (128, 64)
    stored = json.loads((Path(result.folder) / "grid.json").read_text(encoding="utf-8"))
    assert stored["scheduler"] == "Karras" and stored["epochs"] == "3, final" and stored["weights"] == [0, 1]
    again = ea.analyse("", str(sized), None, host)
    assert again.render["sampler_name"] == "Euler" and again.render["cfg_scale"] == 4.5
    assert again.render["hires_scale"] == 1.5 and again.render["denoising_strength"] == 0.4
    assert again.epochs == "3, final" and again.weights == "0, 1"


def test_the_grid_says_how_long_it_takes_before_it_starts(lora):
    from lora_trainer.hosts.base import RenderClock, RenderSettings, render_work
    from lora_trainer.ui.evaluate import grid_settings as gs

    report = evaluate_run(lora)
    settings = eg.GridSettings.from_inputs("{trigger}", "5, 6", "0, 0.5, 1", 1, 64, 64, 10)
    images = len(eg.plan_grid(report, settings))
    assert images == 5
    unknown = gs.estimate_lines(images, settings, gs.seconds_per_work(RenderClock()))
    assert unknown[0] == "5 images at 64 × 64, 10 steps" and "after the first image" in unknown[1]
    clock = RenderClock()
    clock.record(RenderSettings(width=64, height=64, steps=10), images=2, seconds=4.0)   # 2 s per image
    lines = gs.estimate_lines(images, settings, gs.seconds_per_work(clock))
    assert lines[1].startswith("About 0:10 (2.0 s per image")
    bigger = eg.GridSettings.from_inputs("{trigger}", "5, 6", "0, 0.5, 1", 1, 128, 128, 10, hires_scale=2.0)
    assert gs.estimate_lines(images, bigger, gs.seconds_per_work(clock))[1].startswith("About 3:20")   # 4 + 16 × 2 s
    assert render_work(RenderSettings(width=100, height=100, steps=16)) == pytest.approx(0.2)   # 16 steps + 4

    class Job:   # after a restart: the speed of the run's own previews
        preview_settings = {"width": 64, "height": 64, "steps": 20}
        previews = [{"seconds": 3.0}, {"seconds": 5.0}, {"seconds": 4.0}]
    assert gs.seconds_per_work(RenderClock(), Job()) == pytest.approx(4.0 / render_work(RenderSettings(width=64, height=64, steps=20)))
    # a render that also switched the model does not swing the speed: the lower median of the measurements
    clock.record(RenderSettings(width=64, height=64, steps=10), images=1, seconds=30.0)
    assert gs.estimate_lines(images, settings, gs.seconds_per_work(clock))[1].startswith("About 0:10")


def test_parse_weights():
    assert eg.parse_weights("0, 0.5-1 [6]") == [0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert eg.parse_weights("0.6; 0.6, 1") == [0.6, 1.0]
    for bad in ("", "half", "9"):
        with pytest.raises(TrainerError):
            eg.parse_weights(bad)


def test_grid_renders_saves_and_recommends(lora):
    report = evaluate_run(lora)
    host = FakeHost(lora)
    settings = eg.GridSettings.from_inputs("{trigger}, smiling", "4, 5, final", "0, 0.6, 1", 42, 64, 64, 8)
    steps = list(eg.render_grid(host, report, settings))
    result = steps[-1].result
    assert [s.done for s in steps[:-1]] == list(range(7)) and steps[-1].done == steps[-1].total == 7
    assert not steps[-1].message and not result.stopped
    # weight 0 rendered once; the trigger and seed reach the host
    assert sum(r.weight == 0 for r in host.requests) == 1
    assert {r.trigger for r in host.requests} == {"dreamgirl"} and {r.seed for r in host.requests} == {42}
    assert Path(result.path).is_file() and len(list(Path(result.folder).glob("*.png"))) == 8
    assert Path(result.folder).is_relative_to(Path(report.run.log_dir))
    assert result.image.size[0] > 3 * 64 and result.image.size[1] > 3 * 64   # 3 weight columns, 3 epoch rows
    judged, html = eg.judge_grid(report, result)
    assert judged.recommendation.weight in (0.6, 1.0) and "Recommendation" in html and "Suggested" in html
    xyz = eg.xyz_help(report, settings.epochs, settings.weights, "{trigger}, smiling")
    assert "X type: LoRA epoch" in xyz and "X values: dreamgirl-000004, dreamgirl-000005, dreamgirl" in xyz
    assert "Y values: 0, 0.6, 1" in xyz and "X values: NUM,000004,000005" in xyz and "WEIG,0,0.6,1" in xyz
    assert "<lora:dreamgirl-NUM:WEIG>" in xyz and "final file" in xyz


def test_grid_stops_and_host_errors_are_shown(lora):
    report = evaluate_run(lora)
    settings = eg.GridSettings.from_inputs("{trigger}", "5, 6", "0, 0.5, 1", 1, 64, 64, 4)
    calls = []
    stopped = list(eg.render_grid(FakeHost(lora), report, settings, should_stop=lambda: len(calls.append(1) or calls) > 3))
    assert stopped[-1].result.stopped and len(stopped[-1].result.cells) == 3 and stopped[-1].result.image is not None
    failing = list(eg.render_grid(FakeHost(lora, fail_after=2), report, settings))
    assert "no checkpoint is selected" in failing[-1].message and "select the model" in failing[-1].message
    assert len(failing[-1].result.cells) == 2
    bad = list(eg.render_grid(FakeHost(lora), report, eg.GridSettings.from_inputs("x", "99", "1", 1, 64, 64, 4)))
    assert len(bad) == 1 and "names no saved file" in bad[0].message


def test_keep_refuses_to_overwrite_then_deletes_only_with_confirmation(lora):
    report = evaluate_run(lora)
    settings = eg.GridSettings.from_inputs("{trigger}", "4", "0, 0.6", 1, 64, 64, 4)
    grid = list(eg.render_grid(FakeHost(lora), report, settings))[-1].result
    result, box = ek.keep(report, "dreamgirl-000004", "dreamgirl", 0.6, "", False, grid, str(lora))
    assert result is None and "already used" in box and "overwrite" in box
    result, box = ek.keep(report, "dreamgirl-000004", "dreamgirl v2", 0.6, "nice", False, grid, str(lora))
    assert result is not None and "&lt;lora:dreamgirl v2:0.6&gt;" in box and Path(result.preview).is_file()
    sidecar = json.loads(Path(result.sidecar).read_text(encoding="utf-8"))
    assert sidecar["preferred weight"] == 0.6 and "nice" in sidecar["notes"]

    paths, plan_box = ek.deletion_view(report, result.path)
    assert str(lora / "dreamgirl-000001.safetensors") in paths and result.path not in paths
    assert all(Path(p).exists() for p in paths)
    refused = ek.delete_others(report, result.path, paths, False)
    assert "needs a confirmation" in refused and all(Path(p).exists() for p in paths)
    done = ek.delete_others(report, result.path, paths, True)
    assert "Deleted" in done and not any(Path(p).exists() for p in paths) and Path(result.path).is_file()
    assert "Analyse a run first" in ek.keep(None, "", "x", 0.6, "", False)[1]


# --- translations -------------------------------------------------------------------------------------

def _literals(path: Path) -> set[str]:
    """Texts passed to message_html and the constant texts the Evaluate modules show."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "message_html":
            parts = list(node.args[1:])
            for part in parts:
                items = part.elts if isinstance(part, (ast.List, ast.Tuple)) else [part]
                found |= {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
    return found


def test_every_fixed_text_has_a_chinese_translation():
    texts = _literals(UI / "evaluate" / "actions.py") | _literals(UI / "evaluate" / "tab.py")
    texts |= set(eg.VERDICT_TEXT.values()) | {"What you see", "Likely cause", "What to do", "This run",
                                               "Other findings", "What the loss curve says", "Recommendation",
                                               "Epoch", "Weight", "Verdict", "Effect", "Likeness to training"}
    if _has_gradio():   # the labels, explanations and buttons of the sub-tab too
        texts |= _component_texts(_build())
    missing = sorted(t for t in texts if t and t not in ZH_CN_JSON)
    assert missing == []


# --- the sub-tab in gradio ----------------------------------------------------------------------------

def _has_gradio() -> bool:
    try:
        import gradio  # noqa: F401
    except ImportError:
        return False
    return True


def _build(lora: Path | None = None):
    import gradio as gr

    from lora_trainer.ui.evaluate.tab import build_evaluate

    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Tabs():
            with gr.Tab("Evaluate"):
                build_evaluate(Runner(), FakeHost(lora or Path("/nonexistent")))
    return demo


def _component_texts(demo) -> set[str]:
    texts = set()
    for block in demo.blocks.values():
        for attr in ("label", "info"):   # the path placeholder is an example, not words
            value = getattr(block, attr, None)
            if isinstance(value, str) and value:
                texts.add(value)
        if type(block).__name__ == "Button" and isinstance(block.value, str):
            texts.add(block.value)
        if type(block).__name__ == "Radio":
            texts |= {str(c[0] if isinstance(c, (list, tuple)) else c) for c in block.choices}
    return texts - {"Evaluate", "↻"}


def test_the_sub_tab_builds_inside_a_blocks(lora):
    gr = pytest.importorskip("gradio")
    demo = _build(lora)
    kinds = {type(b).__name__ for b in demo.blocks.values()}
    assert {"Dropdown", "Button", "HTML", "Image", "Textbox", "Checkbox"} <= kinds
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"lora_trainer_eval_run", "lora_trainer_eval_analyse", "lora_trainer_eval_render",
            "lora_trainer_eval_stop", "lora_trainer_eval_keep", "lora_trainer_eval_delete"} <= ids
    picker = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "lora_trainer_eval_run")
    shown = [c[0] if isinstance(c, (list, tuple)) else c for c in picker.choices]
    assert len(shown) == 1 and shown[0].startswith("dreamgirl (epochs 1, 2")
    assert ea.choice_path(shown[0], FakeHost(lora), Runner()).endswith("dreamgirl-20250101-120000")
    assert ea.analyse(shown[0], "", None, FakeHost(lora), Runner()).report.run.name == "dreamgirl"
    assert gr.__version__.split(".")[0] in ("3", "4")


def _handler(demo, name: str):
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return next(f.fn for f in fns if getattr(f.fn, "__name__", "") == name)


def test_the_wired_handlers_analyse_render_and_keep(lora):
    pytest.importorskip("gradio")
    demo = _build(lora)
    label = ea.list_runs(FakeHost(lora), Runner())[0][0]
    shown = _handler(demo, "analyse")(label, "", "character", "中文")
    message, chart, _, diagnosis, report, trigger, prompt, epochs, weights = shown[:9]
    assert "<svg" in chart and report is not None and trigger == "dreamgirl" and "你看到的现象" not in diagnosis
    assert re.search("[\u4e00-\u9fff]", diagnosis) and "X type: LoRA epoch" in shown[11]
    steps = list(_handler(demo, "render")(report, prompt, "", "5, 6", "0, 0.6", 1, 64, 64, 4, "", "", "English",
                                          trigger, "Euler", "Karras", 6.0, 1.0, "Latent", 0, 0.5))
    progress, image, rec, grid, pick, weight, xyz = steps[-1]
    assert len(steps) == 4 and "Grid rendered" in progress and image is not None and "Recommendation" in rec
    assert len(grid.cells) == 3 and "NUM,000005,000006" in xyz
    box, kept, _ = _handler(demo, "keep")(report, "dreamgirl-000005", "dreamgirl", 0.6, "", False, grid)
    assert kept == "" and "already used" in box
    box, kept, _ = _handler(demo, "keep")(report, "dreamgirl-000005", "dreamgirl", 0.6, "", True, grid)
    assert Path(kept).is_file() and "Kept" in box
    nothing = list(_handler(demo, "render")(None, "", "", "", "", 1, 64, 64, 4, "", "", "English", "",
                                            None, None, None, None, None, None, None))
    assert "Analyse a run first" in nothing[-1][0]


# --- validation loss on a real tiny run -----------------------------------------------------------------

DEMO = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train" / "8_zkz shapes"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two epochs of a tiny SD1 LoRA trained on the CPU (seconds): base model, images, held-out images."""
    pytest.importorskip("torch")
    import shutil

    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.models.tiny import build_tiny_components, save_single_file
    from lora_trainer.train.loop import train

    root = tmp_path_factory.mktemp("tiny run")
    base = str(save_single_file(build_tiny_components("sd1", seed=0), root / "base" / "tiny sd1.safetensors", "sd1"))
    data, held = root / "train" / "2_zkz", root / "held out"
    data.mkdir(parents=True)
    held.mkdir()
    pictures = sorted(DEMO.glob("*.png"))
    for image in pictures[:2]:
        shutil.copy(image, data)
        shutil.copy(image.with_suffix(".txt"), data)
    shutil.copy(pictures[-1], held)
    cfg = TrainConfig(pretrained_model_name_or_path=base, train_data_dir=str(data.parent),
                      output_dir=str(root / "Lora"), output_name="tiny", resolution="64", min_bucket_reso=64,
                      max_bucket_reso=128, bucket_reso_steps=64, train_batch_size=2, max_train_epochs=2, save_every_n_epochs=1,
                      network_dim=4, network_alpha=4, learning_rate=2e-3, mixed_precision="no",
                      save_precision="float", seed=1)
    result = train(cfg, log=lambda *_: None)
    return {"base": base, "data": str(data.parent), "held": str(held), "lora": root / "Lora",
            "run_dir": result.run_dir, "config": cfg.to_dict()}


def test_validation_loss_of_a_trained_run_is_logged_charted_and_tabled(tiny_run):
    a = ea.analyse("", tiny_run["run_dir"], None)
    assert a.report is not None and a.report.log.validation == []
    missing = evl.compute_validation(a.report, "", "", "", FakeHost(tiny_run["lora"]), Runner())
    assert missing.report is None and "Base model file" in missing.message and "What to do" in missing.message

    class Job:
        status, run_dir, config, files = "finished", tiny_run["run_dir"], tiny_run["config"], []

    held = evl.compute_validation(a.report, tiny_run["held"], "", "", None, Runner([Job()]))
    assert held.report is not None, held.message
    assert [r.epoch for r in held.results] == [1, 2] and all(r.source == "holdout" for r in held.results)
    assert "Validation loss on held-out images" in held.message and "validation loss is lowest" in held.message
    assert held.table.count("<tr>") == 3 and f"{held.results[0].loss:.5f}" in held.table
    assert [e for e, _, _ in held.report.log.validation] == [1, 2]   # in the run's log, read back
    assert "validation" in held.chart and "<svg" in held.chart
    again = evaluate_run(tiny_run["run_dir"])
    assert [round(v, 6) for _, _, v in again.log.validation] == [round(r.loss, 6) for r in held.results]

    seen = {}

    def rising(cfg, files, holdout_dir=None):   # the training images, as typed; a loss that rises
        from lora_trainer.evaluate.validation import ValidationResult

        seen.update(model=cfg.pretrained_model_name_or_path, data=cfg.train_data_dir, holdout=holdout_dir)
        return [ValidationResult(f.path, f.stem, f.epoch, f.step, 0.1 + f.epoch / 10) for f in files]

    typed = evl.compute_validation(a.report, "", tiny_run["base"], tiny_run["data"], None, Runner(),
                                  evaluate_i18n.ZH_CN_MESSAGES, validate=rising)
    assert seen == {"model": tiny_run["base"], "data": tiny_run["data"], "holdout": None}
    assert "Validation loss on training images" in typed.message and "Choose a held-out images folder" in typed.message
    assert "验证损失在第 1 轮最低" in typed.message   # the trend, in the chosen language
    assert [round(v, 3) for _, _, v in typed.report.log.validation] == [0.2, 0.3]


def test_validation_loss_explains_what_is_missing(lora, tmp_path):
    report = evaluate_run(lora)   # a fabricated run: no job, no base model known to the host
    assert "Analyse a run first" in evl.compute_validation(None).message

    class Busy:
        status = "training"

    assert "A training run is going on" in evl.compute_validation(report, runner=Runner([Busy()])).message
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"x")
    no_data = evl.compute_validation(report, "", str(base), "", None, Runner())
    assert "Training images folder" in no_data.message and "held-out" in no_data.message
    gone = evl.compute_validation(report, "", str(tmp_path / "gone.safetensors"), "", None, Runner())
    assert "does not exist" in gone.message
    for text in (*evl.VALIDATION_TITLES.values(), evl.TRAINING_IMAGES_NOTE, "File", "Validation loss"):
        assert text in ZH_CN_JSON


def test_validation_trend_says_when_the_loss_rises():
    assert evl.validation_trend([(1, 0.2), (2, 0.1), (3, 0.12), (4, 0.15)]).key == "loss.val_rising"
    assert evl.validation_trend([(1, 0.2), (2, 0.15), (3, 0.1)]).key == "loss.val_best"
    assert evl.validation_trend([]) is None
