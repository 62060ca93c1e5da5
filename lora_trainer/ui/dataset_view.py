"""The dataset summary and the step maths the tab shows while the user edits (the core's scan and plan).

Gradio-free and torch-free: ``steps.scan_and_plan`` reads image headers and caption files only.
"""
from __future__ import annotations

from html import escape

from ..config.schema import TrainConfig
from ..config.validation import validate
from ..config.steps import format_plan, scan_and_plan
from ..errors import ConfigError, TrainerError
from ..text.messages import localized, msg
from . import messages  # noqa: F401  (registers the sentences)
from .fields import with_label
from .status import message_html, tab_language

SKIPPED_SHOWN = 8


def plan_line(plan) -> str:
    """images × repeats × epochs ÷ batch = steps, in one line (the full table is in the Dataset tab)."""
    train = [r for r in plan.rows if not r.is_reg]
    if len(train) == 1 and not plan.reg_samples:
        samples = msg("ui.plan.one_concept", images=train[0].images, repeats=train[0].repeats)
    else:
        samples = msg("ui.plan.samples", samples=plan.samples_per_epoch)
    if plan.total_steps == plan.steps_per_epoch * plan.epochs:
        accumulation = msg("ui.plan.accumulation", count=plan.gradient_accumulation_steps) \
            if plan.gradient_accumulation_steps > 1 else ""
        partly = msg("ui.plan.partly") if plan.batch_size > 1 and plan.samples_per_epoch < \
            plan.steps_per_epoch * plan.batch_size * plan.gradient_accumulation_steps else ""
        text = msg("ui.plan.epochs", samples=samples, epochs=plan.epochs, batch=plan.batch_size,
                   accumulation=accumulation, steps=plan.total_steps, partly=partly)
    else:
        text = msg("ui.plan.by_steps", steps=plan.total_steps, epochs=plan.epochs, samples=samples)
    text = text.format(tab_language())
    return f'<div class="lt-plan-line"><span class="lt-label">Step maths</span> <code>{escape(text)}</code></div>'


def _concepts_table(scan) -> str:
    rows = []
    for concept in scan.concepts:
        missing = sum(1 for img in concept.images if img.caption_from_fallback)
        kind = "regularization" if concept.is_reg else "training"
        rows.append(f"<tr><td>{escape(concept.path.name)}</td><td>{escape(kind)}</td><td>{len(concept.images)}</td>"
                    f"<td>{concept.repeats}</td><td>{len(concept.images) * concept.repeats}</td>"
                    f"<td>{missing}</td></tr>")
    return ('<table class="lt-concepts"><thead><tr><th>Concept folder</th><th>Kind</th><th>Images</th>'
            '<th>Repeats</th><th>Images × repeats</th><th>Without caption</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def dataset_summary(cfg: TrainConfig) -> tuple[str, str]:
    """(full summary for the Dataset tab, one line for the Train tab)."""
    if not cfg.train_data_dir.strip():
        hint = message_html("info", "Choose the training images folder",
                            advice="Enter the folder that contains concept folders named <repeats>_<name>, "
                                   "for example 10_mychar.")
        line = '<div class="lt-plan-line"><span>Choose the training images folder in the Dataset tab.</span></div>'
        return hint, line
    try:
        scan, _items, plan = scan_and_plan(cfg)
    except TrainerError as err:
        box = message_html("error", "The dataset cannot be used as it is", [err.message], err.advice)
        return box, box
    try:
        warnings = validate(cfg, need_paths=False)
    except ConfigError as err:
        warnings = [with_label(p) for p in err.problems]
    notes = list(scan.warnings) + [with_label(w) for w in warnings]
    skipped = [msg("ui.skipped", path=path, reason=reason) for path, reason in scan.skipped[:SKIPPED_SHOWN]]
    if len(scan.skipped) > SKIPPED_SHOWN:
        skipped.append(msg("ui.and_more", count=len(scan.skipped) - SKIPPED_SHOWN))
    # the step maths once: the Train tab's one line is the last line of this table
    table = localized(format_plan(plan), tab_language())
    parts = [_concepts_table(scan), f'<pre class="lt-plan">{escape(table)}</pre>']
    if notes:
        parts.append(message_html("warning", "Check before training", notes))
    if skipped:
        parts.append(message_html("warning", "Images that will be skipped", skipped,
                                  "Open them in an image editor and save them again as PNG or JPEG, or remove them."))
    return "".join(parts), plan_line(plan)
