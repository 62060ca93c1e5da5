"""The Dataset workbench's components and events (inside the Dataset sub-tab): a project, its import, the
captions, the checks, regularization images, and the hand-off to the Train tab.

The work is done by the gradio-free ``project_actions``, ``caption_actions`` and ``check_actions``; this
module only lays out components and wires them.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..compat import as_path, dropdown
from ..status import message_html
from . import caption_actions as ca
from . import check_actions as cka
from . import prepare_actions as ppa
from . import project_actions as pa
from . import tag_actions as ta

GOAL_CHOICES = ["character", "style", "concept"]


@dataclass
class Workbench:
    project: Any
    wire: Any                                          # wires the events once every sub-tab's form fields exist
    form_changed: list = field(default_factory=list)   # (event, options): the form was filled from the project


def _uploads(files) -> list[tuple[str, str]]:
    out = []
    for value in files or []:
        path = as_path(value)
        if path:
            out.append((path, getattr(value, "orig_name", None) or os.path.basename(path)))
    return out


def build_workbench(ctx) -> Workbench:
    host = ctx.host
    stop_flag = threading.Event()
    plan_state = gr.State(None)
    pending_state = gr.State(None)
    images_state = gr.State([])
    freq_state = gr.State([])
    findings_state = gr.State([])
    picked_image = gr.State("")
    with gr.Row(equal_height=False):
        project = dropdown(pa.project_choices(host), None, label="Project",
                           info="A name (kept in the WebUI's dataset folder) or a folder. A new name makes a new "
                                "project.", elem_id="lora_trainer_ds_project", scale=6)
        refresh = gr.Button("↻", elem_id="lora_trainer_ds_refresh", scale=1, min_width=40)
        handoff = gr.Button("Use for training", variant="primary", elem_id="lora_trainer_ds_handoff", scale=2)
    project_box = gr.HTML("", elem_id="lora_trainer_ds_project_box")
    # a set of tabs without a selected one makes gradio 4 warn in the console twice as it mounts, not once
    with gr.Tabs(elem_id="lora_trainer_ds_steps", selected="import"):
        with gr.Tab("Import", id="import", elem_id="lora_trainer_ds_step_import"):
            with gr.Row(equal_height=False):
                source = gr.Textbox("", label="Pictures folder", info="Your pictures are only read, never changed.",
                                    elem_id="lora_trainer_ds_source", scale=3)
                uploads = gr.File(label="Or upload pictures", file_count="multiple", file_types=["image"],
                                  elem_id="lora_trainer_ds_uploads", scale=2)
            with gr.Row(equal_height=False):
                trigger = gr.Textbox("", label="Trigger word", info="A word the base model does not know, e.g. zkz.",
                                     elem_id="lora_trainer_ds_trigger")
                class_word = gr.Textbox("", label="Class word", info="What it is: woman, dog, style…",
                                        elem_id="lora_trainer_ds_class")
                goal = gr.Radio(GOAL_CHOICES, value="character", label="Goal", elem_id="lora_trainer_ds_goal")
                repeats = gr.Number(None, precision=0, label="Repeats per epoch", info="Empty: suggested from the count.",
                                    elem_id="lora_trainer_ds_repeats")
            with gr.Row():
                look = gr.Button("Look at the pictures", elem_id="lora_trainer_ds_look")
                keep_duplicates = gr.Checkbox(False, label="Import duplicates too", elem_id="lora_trainer_ds_keep_dup")
                do_import = gr.Button("Import", variant="primary", elem_id="lora_trainer_ds_import")
            import_box = gr.HTML("", elem_id="lora_trainer_ds_import_box")
        with gr.Tab("Crop and resize", elem_id="lora_trainer_ds_step_prepare"):
            with gr.Row(equal_height=False):
                prep_size = gr.Number(512, precision=0, minimum=64, maximum=4096, label="Training size",
                                      info="A multiple of 64: 512 for SD 1.5, 1024 for SDXL.",
                                      elem_id="lora_trainer_ds_prep_size")
                prep_buckets = gr.Checkbox(True, label="Keep aspect ratios (buckets)",
                                           elem_id="lora_trainer_ds_prep_buckets")
                prep_background = gr.ColorPicker("#ffffff", label="Background for transparent pixels",
                                                 elem_id="lora_trainer_ds_prep_background")
            with gr.Row():
                prep_show = gr.Button("Show what preparing will do", elem_id="lora_trainer_ds_prep_show")
                prep_focal = gr.Button("Find focal points", elem_id="lora_trainer_ds_prep_focal")
                prep_run = gr.Button("Prepare the pictures", variant="primary", elem_id="lora_trainer_ds_prep_run")
                prep_stop = gr.Button("Stop", variant="stop", elem_id="lora_trainer_ds_prep_stop")
            prep_box = gr.HTML("", elem_id="lora_trainer_ds_prep_box")
            with gr.Row(equal_height=False):
                prep_gallery = gr.Gallery(label="What the pictures become", columns=6, height=300,
                                          object_fit="contain", elem_id="lora_trainer_ds_prep_gallery")
                with gr.Column():
                    prep_pick = dropdown([], None, label="Picture", elem_id="lora_trainer_ds_prep_pick")
                    prep_view = gr.Image(label="Click the point the crop keeps", type="pil", interactive=False,
                                         elem_id="lora_trainer_ds_prep_view")
        with gr.Tab("Tagging", elem_id="lora_trainer_ds_step_tag"):
            tagger_labels, wd14_note = ta.tagger_choices(host)
            with gr.Row(equal_height=False):
                tagger = dropdown(tagger_labels, tagger_labels[0] if tagger_labels else None, label="Tagger",
                                  info="DeepBooru for anime art, CLIP for photos, or a WD14 model.",
                                  elem_id="lora_trainer_ds_tagger", scale=4)
                tag_refresh = gr.Button("↻", elem_id="lora_trainer_ds_tag_refresh", scale=1, min_width=40)
                tag_concept = dropdown([ca.ALL], ca.ALL, label="Concept to tag", elem_id="lora_trainer_ds_tag_concept",
                                       scale=3)
            wd14_box = gr.HTML(message_html("info", "WD14 tagger", [wd14_note]) if wd14_note else "",
                               elem_id="lora_trainer_ds_wd14_box")
            with gr.Row(equal_height=False):
                general = gr.Slider(0.05, 1.0, value=0.35, step=0.01, label="General tag threshold",
                                    info="WD14: lower gives more tags.", elem_id="lora_trainer_ds_general")
                character = gr.Slider(0.05, 1.0, value=0.85, step=0.01, label="Character tag threshold",
                                      elem_id="lora_trainer_ds_character")
                tag_mode = gr.Radio(list(ta.MODES), value="append", label="Existing captions",
                                    elem_id="lora_trainer_ds_tag_mode")
            with gr.Row(equal_height=False):
                exclude = gr.Textbox("", label="Leave out these tags", info="Comma-separated; * matches anything.",
                                     elem_id="lora_trainer_ds_exclude")
                underscores = gr.Checkbox(True, label="Underscores to spaces", elem_id="lora_trainer_ds_underscores")
            with gr.Row():
                tag_preview = gr.Button("Try on one picture", elem_id="lora_trainer_ds_tag_preview")
                tag_run = gr.Button("Tag the pictures", variant="primary", elem_id="lora_trainer_ds_tag_run")
                tag_stop = gr.Button("Stop", variant="stop", elem_id="lora_trainer_ds_tag_stop")
            tag_box = gr.HTML("", elem_id="lora_trainer_ds_tag_box")
            with gr.Accordion("WD14 models", open=False, elem_id="lora_trainer_ds_wd14"):
                with gr.Row(equal_height=False):
                    repo = dropdown(ta.repos(), ta.repos()[0], label="Model to download",
                                    info="Downloaded once into the WebUI's models folder (wd14).",
                                    elem_id="lora_trainer_ds_repo")
                    download = gr.Button("Download", elem_id="lora_trainer_ds_download")
                    install = gr.Button("Install onnxruntime", elem_id="lora_trainer_ds_install_onnx")
        with gr.Tab("Captions", elem_id="lora_trainer_ds_step_captions"):
            with gr.Row(equal_height=False):
                concept = dropdown([ca.ALL], ca.ALL, label="Concept", elem_id="lora_trainer_ds_concept")
                tag_filter = gr.Textbox("", label="Only pictures with the tag",
                                        info="Click a tag in the table to fill it in.", elem_id="lora_trainer_ds_filter")
                show = gr.Button("Show", elem_id="lora_trainer_ds_show")
            captions_box = gr.HTML("", elem_id="lora_trainer_ds_captions_box")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    gallery = gr.Gallery(label="Pictures and their captions", columns=5, height=420,
                                         object_fit="contain", elem_id="lora_trainer_ds_gallery")
                    with gr.Row(equal_height=False):
                        one_caption = gr.Textbox("", label="Caption of the picture clicked", lines=2,
                                                 elem_id="lora_trainer_ds_one_caption", scale=4)
                        save_one = gr.Button("Save caption", elem_id="lora_trainer_ds_save_one", scale=1)
                with gr.Column(scale=2):
                    freq = gr.Dataframe(headers=["Tag", "Pictures"], datatype=["str", "number"], interactive=False,
                                        label="Tag table", elem_id="lora_trainer_ds_freq")
            with gr.Accordion("Edit many captions", open=True, elem_id="lora_trainer_ds_batch"):
                with gr.Row(equal_height=False):
                    operation = gr.Radio(list(ca.OPERATIONS), value="add", label="Change",
                                         elem_id="lora_trainer_ds_operation")
                    tags = gr.Textbox("", label="Tags to change", info="Several: separate with commas.",
                                      elem_id="lora_trainer_ds_tags")
                    replacement = gr.Textbox("", label="Replace with", elem_id="lora_trainer_ds_replacement")
                    only_filtered = gr.Checkbox(False, label="Only the pictures with the tag above",
                                                elem_id="lora_trainer_ds_only_filtered")
                preview_batch = gr.Button("Preview", elem_id="lora_trainer_ds_preview_batch")
            with gr.Accordion("Fold traits into the trigger word", open=True, elem_id="lora_trainer_ds_fold"):
                traits = gr.CheckboxGroup([], label="Traits on most pictures",
                                          info="Their tags leave the captions; the LoRA learns them as the trigger word.",
                                          elem_id="lora_trainer_ds_traits")
                preview_fold = gr.Button("Preview the fold", elem_id="lora_trainer_ds_preview_fold")
            with gr.Row():
                apply_button = gr.Button("Apply", variant="primary", elem_id="lora_trainer_ds_apply")
                undo_button = gr.Button("Undo the last edit", elem_id="lora_trainer_ds_undo")
            edit_box = gr.HTML("", elem_id="lora_trainer_ds_edit_box")
        with gr.Tab("Checks", elem_id="lora_trainer_ds_step_checks"):
            run_checks = gr.Button("Run the checks", variant="primary", elem_id="lora_trainer_ds_run_checks")
            checks_box = gr.HTML("", elem_id="lora_trainer_ds_checks_box")
            with gr.Row(equal_height=False):
                fix_pick = dropdown([], None, label="Fix", elem_id="lora_trainer_ds_fix_pick")
                fix_button = gr.Button("Apply the fix", elem_id="lora_trainer_ds_fix")
            fix_box = gr.HTML("", elem_id="lora_trainer_ds_fix_box")
        with gr.Tab("Regularization", elem_id="lora_trainer_ds_step_reg"):
            with gr.Row(equal_height=False):
                reg_class = gr.Textbox("", label="Regularization class word", elem_id="lora_trainer_ds_reg_class")
                reg_prompt = gr.Textbox("", label="Class prompt", info="Empty: the class word.",
                                        elem_id="lora_trainer_ds_reg_prompt")
                reg_negative = gr.Textbox("", label="Regularization negative prompt", elem_id="lora_trainer_ds_reg_negative")
            with gr.Row(equal_height=False):
                reg_count = gr.Number(50, precision=0, minimum=1, maximum=2000, label="Pictures",
                                      elem_id="lora_trainer_ds_reg_count")
                reg_repeats = gr.Number(1, precision=0, minimum=1, label="Regularization repeats",
                                        elem_id="lora_trainer_ds_reg_repeats")
                reg_seed = gr.Number(1, precision=0, label="First seed", elem_id="lora_trainer_ds_reg_seed")
            with gr.Row():
                reg_generate = gr.Button("Generate with the loaded model", variant="primary",
                                         elem_id="lora_trainer_ds_reg_generate")
                reg_stop = gr.Button("Stop", variant="stop", elem_id="lora_trainer_ds_reg_stop")
            reg_source = gr.Textbox("", label="Or import a folder of class pictures", elem_id="lora_trainer_ds_reg_source")
            reg_import = gr.Button("Import them", elem_id="lora_trainer_ds_reg_import")
            reg_box = gr.HTML("", elem_id="lora_trainer_ds_reg_box")

    # ---- handlers -------------------------------------------------------------------------------------
    def open_it(choice):
        try:
            proj = pa.open_project(choice, host)
        except Exception as err:
            return [pa.error_box("The project cannot be opened", err)] + [gr.update()] * 5
        concepts = [ca.ALL] + [c.trigger for c in proj.concepts]
        prep = proj.preparation
        return [pa.project_html(proj), gr.update(choices=concepts, value=ca.ALL), prep.resolution, prep.buckets,
                prep.background, gr.update(choices=concepts, value=ca.ALL)]

    def refresh_projects(choice):
        return gr.update(choices=pa.project_choices(host), value=choice)

    def look_at(choice, folder, files, goal_value, repeats_value):
        shown = pa.look_at_pictures(choice, folder, _uploads(files), goal_value, host)
        suggest = shown.repeats and not repeats_value   # a number the user typed stays
        return shown.message, shown.plan, gr.update(value=shown.repeats) if suggest else gr.update()

    def import_it(choice, plan, trigger_word, class_value, goal_value, repeats_value, keep):
        return pa.run_import(choice, plan, trigger_word, class_value, goal_value, repeats_value, keep, host)

    def show_captions(choice, concept_value, filter_value):
        view = ca.caption_view(choice, concept_value, filter_value or "", host)
        return (view.message, view.gallery, view.images, view.frequency, view.frequency,
                gr.update(choices=view.fold_choices, value=[]))

    def pick_picture(images, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(images):
            return "", ""
        image = images[index]
        caption = [c for c in ca.ce.read_captions([os.path.dirname(image)]) if c.image == image]
        return image, caption[0].text if caption else ""

    def pick_tag(rows, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return rows[row][0] if 0 <= row < len(rows) else gr.update()

    def run_the_checks(choice, concept_value, goal_value, trigger_word, *values):
        try:
            cfg = ctx.current_config(list(values))
            folder = cfg.train_data_dir
            if choice:
                folder = str(pa.open_project(choice, host, create=False).img_dir)
        except Exception as err:
            return pa.error_box("The checks could not run", err), [], gr.update()
        word = cka.checks_trigger(choice, concept_value, trigger_word, host, ca.ALL)
        language = pa.language(host)
        box, findings = cka.run_checks(folder, cfg, goal_value, word, host, language)
        return box, findings, gr.update(choices=cka.fix_choices(findings, language), value=None)

    def fix_it(choice, findings, picked, concept_value, trigger_word, *values):
        try:
            cfg = ctx.current_config(list(values))
            folder = str(pa.open_project(choice, host, create=False).img_dir) if choice else cfg.train_data_dir
        except Exception as err:
            return [pa.error_box("The fix was not applied", err)] + [gr.update() for _ in values]
        word = cka.checks_trigger(choice, concept_value, trigger_word, host, ca.ALL)
        box, setting = cka.run_fix(folder, findings, picked, word, cfg, host, pa.language(host))
        if not setting:
            return [box] + [gr.update() for _ in values]
        return [box] + ctx.form.updates(cfg.replace(**setting))

    def generate(choice, class_value, prompt, negative, count, reg_reps, seed):
        stop_flag.clear()
        yield from cka.generate_reg(choice, class_value, prompt, negative, count, reg_reps, seed, host,
                                    stop_flag.is_set)

    def stop_generating():
        stop_flag.set()
        try:
            host.interrupt()
        except Exception:
            pass
        return message_html("info", "Stopping", ["The picture being made is finished first."])

    def hand_off(choice, *values):
        try:
            proj = pa.open_project(choice, host, create=False)
            cfg, changed = pa.training_config(proj, ctx.current_config(list(values)))
        except Exception as err:
            return [pa.error_box("The project cannot be used yet", err)] + [gr.update() for _ in values]
        box = message_html("ok", "The Train tab is filled in", changed or ["Nothing needed to change."],
                           "Check the step maths in the Train tab, then start.")
        return [box] + ctx.form.updates(cfg)

    def show_prep(choice, size, buckets, background):
        view = ppa.show_plan(choice, size, buckets, background, host)
        return view.message, view.previews, gr.update(choices=view.keys, value=view.keys[0] if view.keys else None)

    def view_picture(choice, key):
        image, box = ppa.show_picture(choice, key, host)
        return image, box if box else gr.update()

    def click_picture(choice, key, image, evt: gr.SelectData):
        if image is None or not key:
            return gr.update(), message_html("info", "Pick a picture first")
        x, y = evt.index[0], evt.index[1]
        return ppa.click_focal(choice, key, x, y, image.width, image.height, host)

    def prepare(choice, size, buckets, background):
        stop_flag.clear()
        yield from ppa.run_prepare(choice, size, buckets, background, host, stop_flag.is_set)

    tag_stop_flag = threading.Event()

    def refresh_taggers():
        labels, note = ta.tagger_choices(host)
        return gr.update(choices=labels, value=labels[0] if labels else None), \
            message_html("info", "WD14 tagger", [note]) if note else ""

    def tag(choice, concept_value, tagger_value, general_value, character_value, exclude_value, under, mode):
        tag_stop_flag.clear()
        yield from ta.run_tagging(choice, concept_value, tagger_value, general_value, character_value,
                                  exclude_value, under, mode, host, tag_stop_flag)

    def stop_tagging():
        tag_stop_flag.set()
        return message_html("info", "Stopping", ["The picture being tagged is finished first."])

    def install_runtime():
        from ..entry import EXTENSION_ROOT

        return ta.install_onnxruntime(EXTENSION_ROOT)

    # ---- events (once the Train tab's form fields exist too) ------------------------------------------
    def wire() -> None:
        form = ctx.form.inputs
        opened = [project_box, concept, prep_size, prep_buckets, prep_background, tag_concept]
        project.change(open_it, [project], opened)
        refresh.click(refresh_projects, [project], [project])
        look.click(look_at, [project, source, uploads, goal, repeats], [import_box, plan_state, repeats])
        do_import.click(import_it, [project, plan_state, trigger, class_word, goal, repeats, keep_duplicates],
                        [import_box]).then(open_it, [project], opened)
        prep_inputs = [project, prep_size, prep_buckets, prep_background]
        prep_show.click(show_prep, prep_inputs, [prep_box, prep_gallery, prep_pick])
        prep_pick.change(view_picture, [project, prep_pick], [prep_view, prep_box])
        prep_view.select(click_picture, [project, prep_pick, prep_view], [prep_view, prep_box])
        prep_focal.click(lambda c: ppa.find_focal_points(c, host), [project], [prep_box])
        prep_run.click(prepare, prep_inputs, [prep_box])
        prep_stop.click(stop_generating, None, [prep_box], queue=False)
        tag_inputs = [project, tag_concept, tagger, general, character, exclude, underscores, tag_mode]
        tag_refresh.click(refresh_taggers, None, [tagger, wd14_box])
        tag_preview.click(lambda *a: ta.preview(*a, host), tag_inputs, [tag_box])
        tag_run.click(tag, tag_inputs, [tag_box])
        tag_stop.click(stop_tagging, None, [tag_box], queue=False)
        download.click(lambda r: ta.download(r, host), [repo], [wd14_box])
        install.click(install_runtime, None, [wd14_box])
        caption_outputs = [captions_box, gallery, images_state, freq, freq_state, traits]
        show.click(show_captions, [project, concept, tag_filter], caption_outputs)
        concept.change(show_captions, [project, concept, tag_filter], caption_outputs)
        gallery.select(pick_picture, [images_state], [picked_image, one_caption])
        freq.select(pick_tag, [freq_state], [tag_filter]).then(show_captions, [project, concept, tag_filter],
                                                               caption_outputs)
        save_one.click(lambda c, i, t: ca.save_one(c, i, t, host), [project, picked_image, one_caption],
                       [edit_box]).then(show_captions, [project, concept, tag_filter], caption_outputs)
        preview_batch.click(lambda *a: ca.preview_batch(*a, host),
                            [project, concept, operation, tags, replacement, only_filtered, tag_filter],
                            [edit_box, pending_state])
        preview_fold.click(lambda c, k, t: ca.preview_fold(c, k, t, host), [project, concept, traits],
                           [edit_box, pending_state])
        apply_button.click(lambda c, p: (ca.apply_pending(c, p, host), None), [project, pending_state],
                           [edit_box, pending_state]).then(show_captions, [project, concept, tag_filter],
                                                           caption_outputs)
        undo_button.click(lambda c: ca.undo(c, host), [project], [edit_box]) \
            .then(show_captions, [project, concept, tag_filter], caption_outputs)
        run_checks.click(run_the_checks, [project, concept, goal, trigger] + form,
                         [checks_box, findings_state, fix_pick])
        fixed = fix_button.click(fix_it, [project, findings_state, fix_pick, concept, trigger] + form,
                                 [fix_box] + form)
        reg_generate.click(generate, [project, reg_class, reg_prompt, reg_negative, reg_count, reg_repeats, reg_seed],
                           [reg_box])
        reg_stop.click(stop_generating, None, [reg_box], queue=False)
        reg_import.click(lambda c, s, k, r: cka.import_reg(c, s, k, r, host),
                         [project, reg_source, reg_class, reg_repeats], [reg_box])
        handed = handoff.click(hand_off, [project] + form, [project_box] + form)
        bench.form_changed += [(handed, {}), (fixed, {})]

    bench = Workbench(project, wire)
    return bench
