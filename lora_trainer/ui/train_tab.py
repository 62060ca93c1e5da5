"""The Train sub-tab: presets (built-in and the user's own), the base model, the settings form, preview settings,
Start / Stop, and the live view of the runner's jobs (progress, loss chart, previews, files, queue), polled every
few seconds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..config.presets import SUBJECT, VRAM
from ..errors import ConfigError, TrainerError
from ..runner import gpus as runner_gpus
from ..text.messages import msg
from . import actions, preset_actions
from ..evaluate.loss_chart import chart_labels, loss_chart_svg
from .compat import QUIET_INPUTS, PageMemory, as_path, dropdown, picker, poll
from .dataset_tab import DATASET_FIELDS
from .dataset_view import dataset_summary
from .names import sanitize_output_name
from .status import (ACTIVE, error_html, files_html, job_choices, job_id_of, log_html, message_html, preview_items,
                     progress_html, queue_html, tab_language, view_stamp)
from .tab import install_banner

PLACED_ELSEWHERE = ("pretrained_model_name_or_path",) + DATASET_FIELDS
NO_PRESET = preset_actions.NO_PRESET
QUIET = {"show_progress": "hidden"}   # redraws run every few seconds: no loading overlay


@dataclass
class TrainTab:
    plan_box: Any
    form_changed: list = field(default_factory=list)   # (event, options): the form was filled anew


def build_train(ctx) -> TrainTab:
    """The sub-tab's components and events in the current gradio context."""
    runner, host, form, jobs = ctx.runner, ctx.host, ctx.form, ctx.jobs
    pages = PageMemory()   # gradio 4: what each open page shows and picked, kept here (see QUIET_INPUTS)
    base_title, _ = actions.default_checkpoint(host)
    shown = gr.State("")   # stamp of what this page shows, so unchanged parts are not resent
    listed = gr.State("")  # stamp of the runs in the picker
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=False):
                subject = dropdown(preset_actions.builtin_choices(SUBJECT), NO_PRESET, label="What you train",
                                   info="Fills rank, learning rates and caption settings for this "
                                        "kind of subject.", elem_id="lora_trainer_preset_subject")
                vram = dropdown(preset_actions.builtin_choices(VRAM), NO_PRESET, label="Graphics card memory",
                                info="Fills batch size and memory savers for the model type and "
                                     "your GPU's memory.", elem_id="lora_trainer_preset_vram")
                user_choices, broken = preset_actions.listing(host)
                mine = picker(user_choices, NO_PRESET, label="Your presets",
                              info="Saved from this form; applied first, the other two on top.",
                              elem_id="lora_trainer_preset_user")
                apply_button = gr.Button("Apply preset", elem_id="lora_trainer_apply_preset", scale=0,
                                         min_width=160)
            preset_box = gr.HTML("", elem_id="lora_trainer_preset_message")
            with gr.Accordion("Save the form as a preset", open=False, elem_id="lora_trainer_user_presets"):
                with gr.Row(equal_height=False):
                    preset_name = gr.Textbox("", label="Preset name", max_lines=1, scale=3,
                                             info="Every setting except the base model, the folders, the output "
                                                  "name and a file to continue from. The name of one of your "
                                                  "presets replaces it.", elem_id="lora_trainer_preset_name")
                    save_preset = gr.Button("Save as preset", elem_id="lora_trainer_save_preset", scale=0,
                                            min_width=160)
                    delete_preset = gr.Button("Delete the preset chosen in 'Your presets'", scale=0, min_width=160,
                                              elem_id="lora_trainer_delete_preset")
                presets_box = gr.HTML(broken, elem_id="lora_trainer_preset_list")
            with gr.Row(equal_height=False):
                base_model = dropdown(actions.checkpoint_titles(host), base_title, label="Base model",
                                      info=form.specs["pretrained_model_name_or_path"].help,
                                      elem_id="lora_trainer_base_model", scale=8)
                refresh_models = gr.Button("↻", elem_id="lora_trainer_refresh_models", scale=1, min_width=40)
            plan_box = gr.HTML(dataset_summary(ctx.defaults)[1], elem_id="lora_trainer_plan_line")
            form.render_basic(skip=PLACED_ELSEWHERE)
            with gr.Accordion("Preview images", open=False, elem_id="lora_trainer_previews"):
                preview_on = gr.Checkbox(True, label="Render previews for each saved epoch",
                                         elem_id="lora_trainer_preview_on")
                preview_prompts = gr.Textbox("{trigger}", lines=2, label="Preview prompts",
                                             info="One prompt per line. {trigger} becomes the trigger "
                                                  "word (the first concept folder's name).",
                                             elem_id="lora_trainer_preview_prompts")
                with gr.Row():
                    preview_weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="LoRA weight",
                                               elem_id="lora_trainer_preview_weight")
                    preview_seed = gr.Number(1234, precision=0, label="Preview seed",
                                             info="The same seed every epoch, so epochs compare.",
                                             elem_id="lora_trainer_preview_seed")
                with gr.Row():
                    preview_negative = gr.Textbox("", label="Negative prompt", elem_id="lora_trainer_preview_negative")
                    preview_steps = gr.Number(20, precision=0, minimum=1, maximum=150, label="Sampling steps",
                                              elem_id="lora_trainer_preview_steps")
                with gr.Row():   # no minimum: gradio 3.41 sends an emptied number as 0 (checked on Start)
                    preview_width = gr.Number(None, precision=0, label="Preview width",
                                              info="Empty: the training resolution.",
                                              elem_id="lora_trainer_preview_width")
                    preview_height = gr.Number(None, precision=0, label="Preview height",
                                               info="Empty: the training resolution.",
                                               elem_id="lora_trainer_preview_height")
            with gr.Accordion("Advanced", open=False, elem_id="lora_trainer_advanced"):
                form.render_advanced(skip=PLACED_ELSEWHERE)
            with gr.Accordion("Save or load settings", open=False, elem_id="lora_trainer_settings_io"):
                save_button = gr.Button("Save settings as TOML", elem_id="lora_trainer_save")
                saved_file = gr.File(label="Settings file", interactive=False, visible=False,
                                     elem_id="lora_trainer_saved_file")
                load_file = gr.File(label="Load settings (.toml, or a kohya_ss GUI .json)",
                                    file_types=[".toml", ".json"], elem_id="lora_trainer_load_file")
                settings_box = gr.HTML("", elem_id="lora_trainer_settings_message")

        with gr.Column(scale=2):
            with gr.Row():
                start_button = gr.Button("Start training", variant="primary", interactive=ctx.ready,
                                         elem_id="lora_trainer_start")
                stop_button = gr.Button("Stop", variant="stop", elem_id="lora_trainer_stop")
            confirm = gr.Checkbox(False, label="Replace the existing files", visible=False,
                                  elem_id="lora_trainer_confirm_overwrite")
            seen, own_index = runner_gpus.visible_gpus(), runner_gpus.own_gpu()
            gpu_labels = [label for _, label in seen]
            own = next((label for index, label in seen if index == own_index), None)
            gpus = gr.CheckboxGroup(gpu_labels, value=[own] if own else [], label="GPUs", visible=len(gpu_labels) > 1,
                                    info="The WebUI's own GPU trains inside the WebUI; several GPUs (or another "
                                         "one) train in processes of their own, one per GPU.",
                                    elem_id="lora_trainer_gpus")
            start_box = gr.HTML("", elem_id="lora_trainer_start_message")
            progress_box = gr.HTML(progress_html(None), elem_id="lora_trainer_progress")
            error_box = gr.HTML("", elem_id="lora_trainer_error")
            chart_box = gr.HTML("", elem_id="lora_trainer_chart")
            gallery = gr.Gallery(label="Previews of the saved epochs", columns=4, height=320,
                                 object_fit="contain", visible=False, elem_id="lora_trainer_gallery")
            files_box = gr.HTML("", elem_id="lora_trainer_files")
            log_box = gr.HTML("", elem_id="lora_trainer_log")
            with gr.Accordion("Queue", open=False, elem_id="lora_trainer_queue"):
                queue_box = gr.HTML(queue_html([]), elem_id="lora_trainer_queue_table")
                with gr.Row(equal_height=False):
                    picked = picker([""], "", label="Show run", elem_id="lora_trainer_pick_job",
                                    info="Empty: the run that trains now, else the latest one.", scale=2)
                    with gr.Column(scale=1, min_width=160):
                        cancel_button = gr.Button("Stop or cancel this run", size="sm", elem_id="lora_trainer_cancel")
                        remove_button = gr.Button("Remove from the list", size="sm", elem_id="lora_trainer_remove")

    # ---- handlers ------------------------------------------------------------------------------------
    n_form = len(form.inputs)

    def apply_presets(subject_title: str, vram_title: str, mine_name: str, *values: Any):
        if not preset_actions.chosen(subject_title, vram_title, mine_name):
            return [message_html("info", "Choose a preset first")] + [gr.update() for _ in range(n_form)]
        try:
            cfg = ctx.current_config(list(values))
        except ConfigError as err:
            return [message_html("error", "Fix these settings first", err.problems)] + \
                [gr.update() for _ in range(n_form)]
        box, cfg = preset_actions.apply(cfg, subject_title, vram_title, mine_name, host)
        return [box] + (form.updates(cfg) if cfg is not None else [gr.update() for _ in range(n_form)])

    def save_user_preset(name: str, *values: Any):
        """The form's settings under ``name`` (no path is stored, so paths a shared WebUI refuses do not
        matter here, and half-filled settings save as they are, as a settings file does)."""
        try:
            cfg, _ = form.to_config(list(values), base=ctx.defaults)
        except ConfigError as err:
            return message_html("error", "Fix these settings first", err.problems), gr.update(), gr.update()
        box, choices, chosen_name, broken_box = preset_actions.save(cfg, name, host)
        if choices is None:
            return box, gr.update(), gr.update()
        return box, gr.update(choices=choices, value=chosen_name), broken_box

    def delete_user_preset(name: str):
        box, choices, broken_box = preset_actions.delete(name, host)
        if choices is None:
            return box, gr.update(), gr.update()
        return box, gr.update(choices=choices, value=NO_PRESET), broken_box

    def list_user_presets():
        """A page opens: the presets saved since the tab was built (by this or another page)."""
        choices, broken_box = preset_actions.listing(host)
        return gr.update(choices=choices, value=NO_PRESET), broken_box

    def refresh_checkpoints(choice: str):
        titles = actions.checkpoint_titles(host, refresh=True)
        value = choice if choice else (titles[0] if titles else "")
        return gr.update(choices=titles, value=value)

    def tidy_output_name(name: str):
        clean, notes = sanitize_output_name(name)
        box = message_html("info", "Output name adjusted", notes) if notes else ""
        return gr.update(value=clean), box

    def start(model_choice, confirmed, gpu_choice, on, prompts, weight, seed, negative, steps, width, height, *values):
        hidden_confirm = gr.update(value=False, visible=False)
        if not ctx.ready:
            return install_banner(ctx.install), hidden_confirm, gr.update()
        try:
            cfg = ctx.current_config(list(values), model_choice)
            chosen = runner_gpus.chosen_gpus(list(gpu_choice or []))
            if gpu_choice is not None and not chosen and len(gpu_labels) > 1:
                raise ConfigError(msg("gpus.choose"))
        except ConfigError as err:
            return message_html("error", "Fix these settings first", err.problems, err.advice), \
                hidden_confirm, gr.update()
        check = actions.check_start(cfg, runner, bool(confirmed))
        if check.confirm_needed:
            return check.message, gr.update(value=False, visible=True), gr.update()
        if not check.ready:
            return check.message, hidden_confirm, gr.update(value=check.cfg.output_name)
        trained_width, trained_height = actions.preview_size(check.cfg)
        try:
            from ..runner import PreviewSettings

            previews = PreviewSettings(
                prompts=[p.strip() for p in str(prompts or "").splitlines() if p.strip()] or ["{trigger}"],
                weight=float(weight if weight is not None else 1.0), negative_prompt=str(negative or ""),
                seed=int(seed if seed is not None else 1234), width=int(width or trained_width),
                height=int(height or trained_height), steps=int(steps or 20), enabled=bool(on))
            problems = previews.render_problems() if previews.enabled else []
            if problems:
                return message_html("error", "Fix these preview settings first", problems), hidden_confirm, \
                    gr.update()
            job = runner.submit(check.cfg, previews, notes=check.warnings, gpus=chosen)
        except TrainerError as err:
            return message_html("error", "The run could not be added", [err.message], err.advice), \
                hidden_confirm, gr.update()
        jobs.forget()
        ahead = [j for j in runner.jobs() if j.id != job.id and getattr(j, "status", "") in ACTIVE]
        lines = [msg("ui.steps_epochs", steps=check.plan.total_steps, epochs=check.plan.epochs)] + check.warnings
        if ahead:
            lines.insert(0, msg("ui.runs_before", count=len(ahead)))
        title = "Added to the queue" if ahead else "Training starts"
        return message_html("ok", title, lines), hidden_confirm, gr.update(value=check.cfg.output_name)

    def stop(choice: str | None):
        jobs.forget()
        job = actions.view_job(runner, job_id_of(choice))
        if job is None or not runner.stop(job.id):
            return message_html("info", "Nothing to stop")
        return message_html("ok", "Stopping", ["The run stops after the current step and saves an "
                                               "-interrupted file you can resume from."])

    def remove(choice: str | None):
        jobs.forget()
        job_id = job_id_of(choice)
        if not job_id:
            return message_html("info", "Choose a run in 'Show run' first")
        if runner.remove(job_id):
            return message_html("ok", "Removed from the list")
        return message_html("warning", "Only finished, stopped or cancelled runs can be removed")

    def save_settings(model_choice, *values):
        try:
            cfg = ctx.current_config(list(values))
            try:
                cfg = cfg.replace(pretrained_model_name_or_path=actions.resolve_base_model(model_choice, host))
            except ConfigError:
                pass   # saving half-filled settings is fine
            return gr.update(value=actions.save_settings_file(cfg), visible=True), \
                message_html("ok", "Settings saved", ["Download the file above."])
        except (TrainerError, OSError) as err:
            return gr.update(), message_html("error", "The settings could not be saved", [str(err)])

    def load_settings(file, model_choice, *values):
        path = as_path(file)
        if not path:
            return [gr.update(), ""] + [gr.update() for _ in range(n_form)]
        try:
            base = ctx.current_config(list(values))
            cfg, box = actions.load_settings_file(path, base)
        except TrainerError as err:
            return [gr.update(), message_html("error", "The settings could not be loaded", [err.message],
                                              err.advice)] + [gr.update() for _ in range(n_form)]
        model = actions.title_for_path(cfg.pretrained_model_name_or_path, host) \
            if cfg.pretrained_model_name_or_path else model_choice
        return [gr.update(value=model), box] + form.updates(cfg)

    def redraw(last: str, choice: str | None):
        job_id = job_id_of(choice)
        listed_jobs = jobs.jobs()
        job = actions.view_job(jobs, job_id)
        stamp = view_stamp(job, listed_jobs) + f"|{job_id or ''}"
        if stamp == last:
            return [last] + [gr.update() for _ in range(7)]
        items = preview_items(job) if job is not None else []
        return [stamp, progress_html(job), error_html(job),
                loss_chart_svg(getattr(job, "losses", []) or [], epochs=getattr(job, "epoch_losses", []) or [],
                               validation=getattr(job, "validation", []) or [],
                               labels=chart_labels(tab_language())),
                gr.update(value=items, visible=bool(items)), files_html(job), log_html(job), queue_html(listed_jobs)]

    def open_page(request: gr.Request):
        """A page opens (or is reloaded): show the runs, and the settings of the run it shows (the one
        training or queued, else the latest) in the form, the preview fields and the step maths, so a reload
        loses nothing; without a run, the checkpoint the host has loaded now (the page may have been built
        before another one was chosen). Sends no inputs (QUIET_INPUTS): a fresh page has picked nothing."""
        jobs.forget()
        page = pages.page(request)
        page.clear()
        view = redraw("", None)
        page["shown"] = view[0]
        page["listed"], picker_update = refresh_picker("")   # gradio 3 polls it only when the runs change
        view += [page["listed"], picker_update]
        shown = jobs.current() or next((j for j in jobs.jobs() if getattr(j, "status", "") == "queued"), None) \
            or actions.view_job(jobs)
        cfg = actions.job_config(shown, ctx.defaults) if shown is not None else None
        if cfg is None:
            loaded, _ = actions.default_checkpoint(host)
            return view + [gr.update(value=loaded) if loaded else gr.update()] + \
                [gr.update() for _ in preview_inputs] + [gr.update() for _ in range(n_form)] + [gr.update()] * 3
        model = actions.title_for_path(cfg.pretrained_model_name_or_path, host)
        previews = actions.preview_values(getattr(shown, "preview_settings", None), cfg)
        summary, line = dataset_summary(cfg)
        chosen = [label for index, label in seen if index in (getattr(shown, "gpus", None) or [own_index])]
        return view + [gr.update(value=model)] + [gr.update(value=v) if v is not ... else gr.update()
                                                  for v in previews] + form.updates(cfg) + [summary, line] + \
            [gr.update(value=chosen) if len(gpu_labels) > 1 else gr.update()]

    def refresh_picker(last: str):
        """The run picker's list, only when runs were added, removed or changed status (an update of a
        dropdown counts as a change on gradio 4, so it must not come with every redraw)."""
        choices = job_choices(jobs.jobs())
        stamp = repr(choices)
        if stamp == last:
            return last, gr.update()
        return stamp, gr.update(choices=[""] + choices)

    def page_redraw(request: gr.Request):
        """The redraw of the page ``request`` comes from, with what it shows kept on the server (gradio 4)."""
        page = pages.page(request)
        view = redraw(page.get("shown", ""), page.get("picked"))
        page["shown"] = view[0]
        return view

    def page_tick(request: gr.Request):
        """The poll of one page (gradio 4): the redraw and, when the runs changed, the picker's list."""
        page = pages.page(request)
        listed_stamp, choices = refresh_picker(page.get("listed", ""))
        page["listed"] = listed_stamp
        return page_redraw(request) + [choices]

    def pick(choice: str | None, request: gr.Request):
        pages.page(request)["picked"] = choice
        return page_redraw(request) if QUIET_INPUTS else redraw("", choice)

    # ---- events --------------------------------------------------------------------------------------
    form_inputs = form.inputs
    applied = apply_button.click(apply_presets, [subject, vram, mine] + form_inputs, [preset_box] + form_inputs)
    save_preset.click(save_user_preset, [preset_name] + form_inputs, [preset_box, mine, presets_box])
    delete_preset.click(delete_user_preset, [mine], [preset_box, mine, presets_box])
    ctx.blocks.load(list_user_presets, None, [mine, presets_box], **QUIET)
    refresh_models.click(refresh_checkpoints, [base_model], [base_model])
    output_name = form.components["output_name"]
    output_name.blur(tidy_output_name, [output_name], [output_name, start_box])
    output_name.input(lambda: gr.update(value=False, visible=False), None, [confirm])
    view_outputs = [shown, progress_box, error_box, chart_box, gallery, files_box, log_box, queue_box]
    preview_inputs = [preview_on, preview_prompts, preview_weight, preview_seed, preview_negative, preview_steps,
                      preview_width, preview_height]
    # what the page shows is redrawn after a button: from the page's memory on gradio 4 (no inputs sent)
    redrawn = (page_redraw, None) if QUIET_INPUTS else (redraw, [shown, picked])
    start_button.click(start, [base_model, confirm, gpus] + preview_inputs + form_inputs,
                       [start_box, confirm, output_name]) \
        .then(*redrawn, view_outputs, **QUIET)
    stop_button.click(stop, [picked], [start_box]).then(*redrawn, view_outputs, **QUIET)
    cancel_button.click(stop, [picked], [start_box]).then(*redrawn, view_outputs, **QUIET)
    remove_button.click(remove, [picked], [start_box]).then(*redrawn, view_outputs, **QUIET)
    picked.input(pick, [picked], view_outputs, **QUIET)
    ctx.blocks.load(open_page, None, view_outputs + [listed, picked, base_model] + preview_inputs + form_inputs
                    + [ctx.dataset.summary_box, plan_box, gpus], **QUIET)
    ticked = poll(redraw, [shown, picked], view_outputs, lambda: view_stamp(actions.view_job(jobs), jobs.jobs()),
                  page_fn=page_tick, page_outputs=view_outputs + [picked])
    if not QUIET_INPUTS:
        ticked.then(refresh_picker, [listed], [listed, picked], **QUIET)
    save_button.click(save_settings, [base_model] + form_inputs, [saved_file, settings_box])
    loaded = load_file.upload(load_settings, [load_file, base_model] + form_inputs,
                              [base_model, settings_box] + form_inputs)
    return TrainTab(plan_box, [(applied, {}), (loaded, {})])
