"""The Dataset sub-tab: the workbench that makes a dataset (``ui/dataset/``), then the training and
regularization folders, the concept folders found in them, and the step maths, which every edit of a
setting they depend on (in either sub-tab) redraws."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..errors import ConfigError
from .dataset_view import dataset_summary
from .status import message_html

DATASET_FIELDS = ("train_data_dir", "reg_data_dir", "caption_extension")
PLAN_FIELDS = ("train_batch_size", "max_train_epochs", "max_train_steps", "gradient_accumulation_steps",
               "enable_bucket", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale",
               "prior_loss_weight")
PLAN_TEXT_FIELDS = ("resolution",) + DATASET_FIELDS


@dataclass
class DatasetTab:
    summary_box: Any
    scan_button: Any
    workbench: Any


def build_dataset(ctx) -> DatasetTab:
    """The sub-tab's components in the current gradio context; its folder fields belong to the shared form."""
    from .dataset.tab import build_workbench

    workbench = build_workbench(ctx)
    with gr.Accordion("Training folders and step maths", open=True, elem_id="lora_trainer_training_folders"):
        with gr.Row():
            ctx.form.render(DATASET_FIELDS[:2])
        with gr.Row(equal_height=False):
            ctx.form.render(DATASET_FIELDS[2:])
            scan_button = gr.Button("Scan the folders", elem_id="lora_trainer_scan", scale=0, min_width=200)
        summary_box = gr.HTML(dataset_summary(ctx.defaults)[0], elem_id="lora_trainer_dataset_summary")
    return DatasetTab(summary_box, scan_button, workbench)


def step_maths(ctx, *values: Any) -> tuple[str, str]:
    """(dataset summary, step maths line) of the form's values, or the settings to fix first."""
    try:
        cfg = ctx.current_config(list(values))
    except ConfigError as err:
        box = message_html("error", "Fix these settings first", err.problems, err.advice)
        return box, box
    return dataset_summary(cfg)


def wire_step_maths(ctx, dataset: DatasetTab, train) -> None:
    """Redraw the summary and the step maths on a scan, on an edit of a setting they depend on, and
    after the Train tab changed the form (page load, preset, loaded settings)."""
    inputs, outputs = ctx.form.inputs, [dataset.summary_box, train.plan_box]

    def update(*values: Any):
        return step_maths(ctx, *values)

    dataset.scan_button.click(update, inputs, outputs)
    for name in PLAN_TEXT_FIELDS:
        ctx.form.components[name].blur(update, inputs, outputs)
        ctx.form.components[name].submit(update, inputs, outputs)
    for name in PLAN_FIELDS:
        ctx.form.components[name].input(update, inputs, outputs)
    dataset.workbench.wire()
    for event, options in train.form_changed + dataset.workbench.form_changed:
        event.then(update, inputs, outputs, **options)
