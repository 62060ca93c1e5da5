"""The Evaluate sub-tab: pick a finished run, read its loss curve and diagnosis, render a grid of epochs ×
weights through the host, and keep the epoch you like under its final name.

``build_evaluate`` adds its components to the caller's current gradio context (inside the tab's
``gr.Tab("Evaluate")``); the work is done by the gradio-free ``evaluate_actions`` (runs, analysis),
``evaluate_grid``, ``evaluate_keep`` and ``evaluate_validation``.
"""
from __future__ import annotations

import threading
from typing import Any

import gradio as gr

from ...errors import TrainerError
from ...text.messages import sentence
from ..compat import QUIET_INPUTS, dropdown, in_order_kw, picker
from ..status import duration, message_html, tab_language
from . import actions as ea
from . import grid as eg
from . import grid_settings as gs
from . import keep as ek
from . import validation as evl
from .i18n import LANGUAGES

NO_KIND = "—"
ESTIMATED = ("width", "height", "steps", "hires_scale", "hires_steps")   # the render fields a grid's time follows


def findings_language() -> str:
    """The findings' language the sub-tab starts with: the WebUI's."""
    return "中文" if tab_language() == "zh_CN" else "English"


def _templates(language: str | None) -> dict | None:
    return LANGUAGES.get(language or "")


def _lora_root(host: Any) -> str | None:
    try:
        return host.lora_dir()
    except Exception:
        return None


def build_evaluate(runner: Any, host: Any, sub_tab: Any = None, page: Any = None) -> None:
    """Create the sub-tab's components and events in the current Blocks context; the run list is read again
    when the page opens (``page``: the tab's Blocks) and whenever ``sub_tab`` is selected, so a run trained
    meanwhile is there without ↻."""
    stop_flag = threading.Event()
    choices = [label for label, _ in ea.list_runs(host, runner)]
    options = ea.render_options(host)   # samplers, schedule types and upscalers the host renders with

    report_state = gr.State(None)   # the RunReport read by "Analyse"
    grid_state = gr.State(None)     # the rendered GridRun
    kept_state = gr.State("")       # path of the kept file
    plan_state = gr.State([])       # files "delete the other epochs" would remove
    trigger_state = gr.State("")

    # ---- 1. the run ------------------------------------------------------------------------------------
    with gr.Row(equal_height=False):
        run_pick = picker(choices, choices[0] if choices else None, label="Run",
                          info="Runs in the WebUI's Lora folder and runs trained here.",
                          elem_id="lora_trainer_eval_run", scale=6)
        refresh = gr.Button("↻", elem_id="lora_trainer_eval_refresh", scale=1, min_width=40)
        typed = gr.Textbox("", label="Or a folder or file", placeholder="D:\\models\\Lora\\dreamgirl-000005.safetensors",
                           info="The folder of the run's files, its log folder, or one of its .safetensors files.",
                           elem_id="lora_trainer_eval_path", scale=6)
    with gr.Row(equal_height=False):
        kind = dropdown([NO_KIND] + list(ea.KINDS), NO_KIND, label="What was trained",
                        info="Sets the usual loss range the curve is compared with.",
                        elem_id="lora_trainer_eval_kind")
        language = gr.Radio(list(LANGUAGES), value=findings_language(), label="Language of the findings",
                            elem_id="lora_trainer_eval_language")
        analyse_button = gr.Button("Analyse", variant="primary", elem_id="lora_trainer_eval_analyse")
    run_box = gr.HTML("", elem_id="lora_trainer_eval_message")
    chart_box = gr.HTML("", elem_id="lora_trainer_eval_chart")
    with gr.Row(equal_height=False):
        findings_box = gr.HTML("", elem_id="lora_trainer_eval_findings")
        diagnosis_box = gr.HTML("", elem_id="lora_trainer_eval_diagnosis")
    with gr.Row(equal_height=False):
        holdout = gr.Textbox("", label="Held-out images folder",
                             info="Optional: a few images NOT used for training, captions beside them. "
                                  "Empty: the training images.",
                             elem_id="lora_trainer_eval_holdout", scale=4)
        validate_button = gr.Button("Compute validation loss", elem_id="lora_trainer_eval_validate", scale=1)
    validation_box = gr.HTML("", elem_id="lora_trainer_eval_validation")

    # ---- 2. the grid -----------------------------------------------------------------------------------
    with gr.Accordion("Compare epochs and weights", open=True, elem_id="lora_trainer_eval_grid_section"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                prompts = gr.Textbox("{trigger}", lines=2, label="Prompts",
                                     info="One prompt per line. {trigger} becomes the trigger word.",
                                     elem_id="lora_trainer_eval_prompts")
                negative = gr.Textbox("", label="Grid negative prompt", elem_id="lora_trainer_eval_negative")
                with gr.Row():
                    epochs = gr.Textbox("", label="Epochs to compare",
                                        info="As on the X/Y/Z plot's LoRA epoch axis: 4, 6, final or 2-10 (+2).",
                                        elem_id="lora_trainer_eval_epochs")
                    weights = gr.Textbox(ea.DEFAULT_WEIGHTS, label="LoRA weights",
                                         info="Weight 0 is the picture without the LoRA, to measure its effect.",
                                         elem_id="lora_trainer_eval_weights")
                with gr.Row():   # no minimum: gradio 3.41 sends an emptied number as 0 (the grid checks it)
                    seed = gr.Number(1234, precision=0, label="Seed", elem_id="lora_trainer_eval_seed")
                    width = gr.Number(512, precision=0, label="Width", elem_id="lora_trainer_eval_width")
                    height = gr.Number(512, precision=0, label="Height", elem_id="lora_trainer_eval_height")
                    steps = gr.Number(20, precision=0, label="Grid sampling steps", elem_id="lora_trainer_eval_steps")
                with gr.Row():
                    sampler = dropdown(options.get("samplers") or ["Euler a"], None, label="Grid sampler",
                                       elem_id="lora_trainer_eval_sampler")
                    scheduler = dropdown(options.get("schedulers") or ["Automatic"], None, label="Grid schedule type",
                                         visible=bool(options.get("schedulers")), elem_id="lora_trainer_eval_scheduler")
                    cfg = gr.Number(7.0, label="Grid CFG scale", elem_id="lora_trainer_eval_cfg")
                with gr.Accordion("Hires fix", open=False, visible=bool(options.get("upscalers")),
                                  elem_id="lora_trainer_eval_hires"):
                    with gr.Row():
                        hires_scale = gr.Slider(1.0, 4.0, value=1.0, step=0.05, label="Upscale by (1: off)",
                                                elem_id="lora_trainer_eval_hires_scale")
                        hires_upscaler = dropdown(options.get("upscalers") or ["Latent"], None, label="Upscaler",
                                                  elem_id="lora_trainer_eval_hires_upscaler")
                    with gr.Row():
                        hires_steps = gr.Number(0, precision=0, label="Hires steps (0: as many as the grid's)",
                                                elem_id="lora_trainer_eval_hires_steps")
                        denoising = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Denoising strength",
                                              elem_id="lora_trainer_eval_denoising")
                with gr.Accordion("More", open=False, elem_id="lora_trainer_eval_more"):
                    base_model = gr.Textbox("", label="Base model file",
                                            info="The model the LoRA was trained on: the grid renders on it (in a "
                                                 "WebUI when it lists the file; else on its loaded model).",
                                            elem_id="lora_trainer_eval_base_model")
                    training_dir = gr.Textbox("", label="Training images folder (for the over-fit score)",
                                              info="Optional: finds grid images that copy a training image.",
                                              elem_id="lora_trainer_eval_training_dir")
                with gr.Row():
                    render_button = gr.Button("Render the grid", variant="primary",
                                              elem_id="lora_trainer_eval_render")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="lora_trainer_eval_stop")
                estimate_box = gr.HTML("", elem_id="lora_trainer_eval_estimate")
                progress_box = gr.HTML("", elem_id="lora_trainer_eval_progress")
            with gr.Column(scale=4):
                grid_image = gr.Image(label="Grid", type="pil", interactive=False, elem_id="lora_trainer_eval_grid")
                rec_box = gr.HTML("", elem_id="lora_trainer_eval_recommendation")
        xyz_text = gr.Textbox("", lines=10, label="The same grid with txt2img's X/Y/Z plot", interactive=False,
                              show_copy_button=True, elem_id="lora_trainer_eval_xyz")

    # ---- 3. keep ---------------------------------------------------------------------------------------
    with gr.Accordion("Keep the epoch you like", open=True, elem_id="lora_trainer_eval_keep_section"):
        with gr.Row(equal_height=False):
            keep_pick = dropdown([], None, label="Epoch to keep", elem_id="lora_trainer_eval_keep_epoch")
            keep_name = gr.Textbox("", label="Final name", info="What you write in <lora:NAME:weight>.",
                                   elem_id="lora_trainer_eval_keep_name")
            keep_weight = gr.Slider(0.0, 1.5, value=0.6, step=0.05, label="Preferred weight",
                                    elem_id="lora_trainer_eval_keep_weight")
        keep_notes = gr.Textbox("", lines=2, label="Notes", elem_id="lora_trainer_eval_keep_notes")
        with gr.Row():
            overwrite = gr.Checkbox(False, label="Replace a file with this name", elem_id="lora_trainer_eval_overwrite")
            keep_button = gr.Button("Keep", variant="primary", elem_id="lora_trainer_eval_keep")
        keep_box = gr.HTML("", elem_id="lora_trainer_eval_keep_message")
        with gr.Accordion("Delete the other epochs", open=False, elem_id="lora_trainer_eval_delete_section"):
            with gr.Row():
                states = gr.Checkbox(False, label="Also delete the saved training states",
                                     elem_id="lora_trainer_eval_states")
                plan_button = gr.Button("List the files", elem_id="lora_trainer_eval_plan")
            plan_box = gr.HTML("", elem_id="lora_trainer_eval_plan_list")
            with gr.Row():
                confirm = gr.Checkbox(False, label="Yes, delete these files", elem_id="lora_trainer_eval_confirm")
                delete_button = gr.Button("Delete", variant="stop", elem_id="lora_trainer_eval_delete")
            delete_box = gr.HTML("", elem_id="lora_trainer_eval_delete_message")

    # ---- handlers --------------------------------------------------------------------------------------
    def refresh_runs(current: str | None):
        labels = [label for label, _ in ea.list_runs(host, runner)]
        return gr.update(choices=labels, value=current if current in labels else (labels[0] if labels else None))

    def newest_run():
        """A page opens: the runs, the newest chosen (no inputs sent, see QUIET_INPUTS)."""
        return refresh_runs(None)

    def runs_again():
        """The sub-tab is chosen: the runs read again; the page keeps its choice while it is listed."""
        return gr.update(choices=[label for label, _ in ea.list_runs(host, runner)])

    # the grid's render fields as RenderSettings names them, filled from the run (or its last grid) by Analyse
    render_fields = {"seed": seed, "width": width, "height": height, "steps": steps, "sampler_name": sampler,
                     "scheduler": scheduler, "cfg_scale": cfg, "hires_scale": hires_scale,
                     "hires_upscaler": hires_upscaler, "hires_steps": hires_steps,
                     "denoising_strength": denoising, "negative_prompt": negative}
    analysis_outputs = [run_box, chart_box, findings_box, diagnosis_box, report_state, trigger_state, prompts,
                        epochs, weights, base_model, training_dir, xyz_text, keep_pick, keep_name, validation_box] \
        + list(render_fields.values()) + [estimate_box]

    def read_again(choice, path, kind_value, lang, report):
        """Another language of the findings: the run shown is read again in it (nothing when none is shown)."""
        if report is None:
            return [gr.update() for _ in analysis_outputs]
        return analyse(choice, path, kind_value, lang)

    def pick_run(choice, kind_value, lang):
        return analyse(choice, "", kind_value, lang) + [""]

    def analyse(choice, path, kind_value, lang):
        try:
            a = ea.analyse(choice, path, kind_value, host, runner, _templates(lang))
        except Exception as err:   # never a traceback into the page
            a = ea.Analysis(message=ea.error_box("The run could not be read", err))
        if a.report is None:
            return [a.message, "", "", "", None, ""] + [gr.update() for _ in range(8)] + [""] + \
                [gr.update() for _ in render_fields] + [""]
        xyz = eg.xyz_help(a.report, a.epochs, eg.parse_weights(a.weights), a.prompt)
        last = ea.last_stem(a.report, a.epochs) or (a.stems[-1] if a.stems else None)
        values = [a.render.get(name) for name in render_fields]
        return [a.message, a.chart, a.findings, a.diagnosis, a.report, a.trigger, a.prompt, a.epochs, a.weights,
                a.base_model, a.training_dir, xyz, gr.update(choices=a.stems, value=last),
                a.report.run.name, ""] + values + \
            [estimate(a.report, a.prompt, a.epochs, a.weights, *[a.render.get(n) for n in ESTIMATED])]

    def estimate(report, prompt_text, epoch_text, weight_text, *values):
        """How many images the grid has and, once this computer's speed is known, how long it takes."""
        if report is None:
            return ""
        try:
            settings = eg.GridSettings.from_inputs(prompt_text, epoch_text, weight_text, None, values[0], values[1],
                                                   values[2], hires_scale=values[3], hires_steps=values[4])
            images = len(eg.plan_grid(report, settings))
        except TrainerError as err:
            return message_html("info", "Before you render", [err.message], err.advice)
        rate = gs.seconds_per_work(getattr(host, "render_clock", None), ea.job_for(runner, report))
        return message_html("info", "Before you render", gs.estimate_lines(images, settings, rate))

    def validate(report, folder, model, train_dir, lang):
        """The validation loss of every saved epoch: a message with the table, and the chart drawn again."""
        try:
            v = evl.compute_validation(report, folder, model, train_dir, host, runner, _templates(lang))
        except Exception as err:   # never a traceback into the page
            v = evl.ValidationView(ea.error_box("No validation loss", err))
        if v.report is None:
            return v.message, gr.update(), gr.update()
        return v.message + v.table, v.chart, v.report

    def render(report, prompt_text, negative_text, epoch_text, weight_text, seed_v, width_v, height_v, steps_v,
               model, train_dir, lang, trigger, sampler_v, scheduler_v, cfg_v, hires_scale_v, hires_upscaler_v,
               hires_steps_v, denoising_v):
        """A generator: the progress after every cell, then the grid, the recommendation and the X/Y/Z text."""
        keep_same = [gr.update(), gr.update(), gr.update()]
        if report is None:
            yield [message_html("info", "Analyse a run first"), gr.update(), gr.update(), None] + keep_same
            return
        stop_flag.clear()
        try:
            model = ea.confine(host, (model or "").strip(), "the base model file")
            train_dir = ea.confine(host, (train_dir or "").strip(), "the training images folder")
            settings = eg.GridSettings.from_inputs(
                prompt_text, epoch_text, weight_text, seed_v, width_v, height_v, steps_v, negative_text, model, trigger,
                sampler_name=sampler_v, scheduler=scheduler_v, cfg_scale=cfg_v, hires_scale=hires_scale_v,
                hires_upscaler=hires_upscaler_v, hires_steps=hires_steps_v, denoising_strength=denoising_v)
            xyz = eg.xyz_help(report, settings.epochs, settings.weights, prompt_text)
            for p in eg.render_grid(host, report, settings, stop_flag.is_set):
                if p.result is None:
                    clock = getattr(host, "render_clock", None)
                    left = clock.estimate(settings, p.total - p.done) if clock is not None else None
                    line = sentence("grid.rendering_left", done=p.done + 1, total=p.total, label=p.label,
                                    left=duration(left)) if left else \
                        sentence("grid.rendering", done=p.done + 1, total=p.total, label=p.label)
                    yield [message_html("info", "Rendering", [line]), gr.update(), gr.update(), None] + keep_same
                    continue
                grid = p.result
                judged, rec_html = eg.judge_grid(report, grid, train_dir, _templates(lang))
                lines = [grid.path] if grid.path else []
                title = "Stopped" if grid.stopped else "Grid rendered"
                box = p.message or message_html("ok" if not grid.stopped else "warning", title, lines)
                rec = judged.recommendation if judged else None
                pick = gr.update(value=rec.key) if rec and rec.key else gr.update()
                weight = gr.update(value=rec.weight) if rec and rec.weight is not None else gr.update()
                yield [box, grid.image if grid.image is not None else gr.update(), rec_html,
                       grid, pick, weight, xyz]
        except Exception as err:
            yield [ea.error_box("The grid cannot be rendered", err), gr.update(), gr.update(), None] + keep_same

    def stop():
        stop_flag.set()
        try:
            host.interrupt()
        except Exception:
            pass
        return message_html("info", "Stopping", ["The image being rendered is finished first."])

    def keep(report, stem, name, weight, notes, replace, grid):
        try:
            result, box = ek.keep(report, stem, name, weight, notes, replace, grid, _lora_root(host))
        except Exception as err:
            return ea.error_box("Not kept", err), "", gr.update()
        if result is None:
            return box, "", gr.update()
        try:
            host.refresh_loras()
        except Exception:
            pass
        return box, result.path, gr.update(value=False)

    def plan(report, kept, include):
        try:
            paths, box = ek.deletion_view(report, kept, bool(include))
        except Exception as err:
            return [], ea.error_box("The files could not be listed", err), gr.update(value=False)
        return paths, box, gr.update(value=False)

    def delete(report, kept, paths, yes, include):
        try:
            box = ek.delete_others(report, kept, paths, yes, bool(include))
        except Exception as err:
            box = ea.error_box("Nothing more was deleted", err)
        return box, gr.update(value=False)

    # ---- events ----------------------------------------------------------------------------------------
    refresh.click(refresh_runs, [run_pick], [run_pick])
    if page is not None:
        page.load(newest_run, None, [run_pick], show_progress="hidden")
    if sub_tab is not None:
        sub_tab.select(*((runs_again, None) if QUIET_INPUTS else (refresh_runs, [run_pick])), [run_pick],
                       show_progress="hidden")
    analyse_button.click(analyse, [run_pick, typed, kind, language], analysis_outputs)
    # a run picked from the list is read at once (the typed path is cleared: the pick is what is read);
    # a typed path is read on Enter
    run_pick.input(pick_run, [run_pick, kind, language], analysis_outputs + [typed])
    language.input(read_again, [run_pick, typed, kind, language, report_state], analysis_outputs)
    typed.submit(analyse, [run_pick, typed, kind, language], analysis_outputs)
    validate_button.click(validate, [report_state, holdout, base_model, training_dir, language],
                          [validation_box, chart_box, report_state])
    render_button.click(render, [report_state, prompts, negative, epochs, weights, seed, width, height, steps,
                                 base_model, training_dir, language, trigger_state, sampler, scheduler, cfg,
                                 hires_scale, hires_upscaler, hires_steps, denoising],
                        [progress_box, grid_image, rec_box, grid_state, keep_pick, keep_weight, xyz_text])
    estimate_inputs = [report_state, prompts, epochs, weights] + [render_fields[n] for n in ESTIMATED]
    ordered = in_order_kw("lora_trainer_eval_estimate")   # the last edit's estimate is the one left shown
    for component in (prompts, epochs, weights):
        component.blur(estimate, estimate_inputs, [estimate_box], show_progress="hidden", **ordered)
    for component in (width, height, steps, hires_steps):   # user edits (4.40's numbers have no blur)
        component.input(estimate, estimate_inputs, [estimate_box], show_progress="hidden", **ordered)
    hires_scale.release(estimate, estimate_inputs, [estimate_box], show_progress="hidden", **ordered)
    stop_button.click(stop, None, [progress_box], queue=False)
    keep_button.click(keep, [report_state, keep_pick, keep_name, keep_weight, keep_notes, overwrite, grid_state],
                      [keep_box, kept_state, overwrite])
    plan_button.click(plan, [report_state, kept_state, states], [plan_state, plan_box, confirm])
    delete_button.click(delete, [report_state, kept_state, plan_state, confirm, states], [delete_box, confirm])
