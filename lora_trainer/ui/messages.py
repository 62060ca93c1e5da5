"""The Train tab's own sentences with numbers in them, by key (English; Chinese in ``text/zh_CN.json``); fixed
titles stay literals that the WebUI's localization (``localizations/zh_CN.json``) replaces."""
from __future__ import annotations

from ..text.messages import register

register({
    "ui.plan.one_concept": "{images} images × {repeats} repeats",
    "ui.plan.samples": "{samples} (images × repeats)",
    "ui.plan.epochs": "{samples} × {epochs} epochs ÷ batch {batch}{accumulation} = {steps} steps{partly}",
    "ui.plan.accumulation": " ÷ accumulation {count}",
    "ui.plan.partly": " (partly filled batches included)",
    "ui.plan.by_steps": "{steps} steps (max_train_steps) ≈ {epochs} epochs of {samples}",
    "ui.steps_epochs": "{steps} steps, {epochs} epochs",
    "ui.runs_before": "{count} run(s) before it",
    "ui.the_form": "the form",
    "ui.skipped": "{path}: {reason}",
    "ui.and_more": "… and {count} more",
    "ui.no_choice": "no base model is chosen",
    "ui.no_choice.advice": "choose the checkpoint to train on in 'Base model' (press ↻ if the list is empty)",
    "ui.no_base_model": "the base model '{choice}' was not found",
    "ui.no_base_model.advice": "choose one from the list (press ↻ to read the models folder again) or enter the full "
                               "path of a .safetensors file",
    "ui.name_in_folder": "{name} in {folder}",
    "ui.not_json": "{source} cannot be read as JSON ({error})",
    "ui.not_kohya": "{source} is not a kohya_ss GUI settings file",
    "ui.kohya_file.advice": "load a file saved by kohya_ss's 'Save' button, or a .toml settings file",
    "ui.not_used": "not used here: {names}",
    "name.extension": "the extension {suffix} is added by the trainer, so it was left out of the name",
    "name.folders": "an output name cannot contain folders (/ or \\); choose the folder with 'Output folder' instead",
    "name.characters": "characters that file systems refuse (< > : \" | ? *) were replaced by _",
    "name.dots": "dots at the start (hidden files) and dots or spaces at the end (refused by Windows) were removed",
    "name.reserved": "Windows reserves this name for a device, so _ was added",
    "name.shortened": "the name was shortened to {length} characters",
    "name.empty": "the output name was empty, so '{name}' is used",
})
