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
})
