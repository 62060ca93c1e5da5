"""The evaluation's sentences as (stable key, parameters): the English templates, registered with
``text.messages`` (the Chinese ones are in ``text/zh_CN.json``, by the same keys and placeholders).
"""
from __future__ import annotations

from ..text.messages import Message, msg, register  # noqa: F401  (the evaluation's sentences are Messages)

TEMPLATES: dict[str, str] = {
    # --- loss analysis -----------------------------------------------------------------------
    "loss.no_data": "The run's log holds no loss values, so the curve cannot be judged.",
    "loss.few_points": "Only {count} loss values were logged: too few to tell phases apart.",
    "loss.steep": "Steep fall from step {start} to {end}: the loss went from {start_loss:.4f} to {end_loss:.4f}.",
    "loss.slow": "Slow fall from step {start} to {end}: {start_loss:.4f} → {end_loss:.4f}.",
    "loss.plateau": "The loss flattens out from step {step} (about {loss:.4f}); later epochs learn little "
                    "that the curve shows and may over-fit.",
    "loss.no_plateau": "The loss was still falling at the end (step {step}): the last epochs may still improve.",
    "loss.flat": "The loss shows no clear fall ({start_loss:.4f} → {end_loss:.4f}): the LoRA may not be "
                 "learning (learning rate too low, too few steps), or the fall is smaller than the noise "
                 "of a short log.",
    "loss.inflection": "Large drop around step {step}: {before:.4f} → {after:.4f}. Such drops often mean the "
                       "model found a better way to learn the images.",
    "loss.nan": "The loss became NaN (not a number) at step {step}: training broke there.",
    "loss.rising": "The loss rises again after step {step} (from {low:.4f} to {end:.4f}): training is diverging.",
    "loss.oscillating": "The loss swings up and down strongly (about ±{amplitude:.4f} around its trend): the "
                        "learning rate is probably too high.",
    "loss.near_zero": "The loss is near zero from step {step} ({loss:.4f}): the LoRA is likely copying the "
                      "training images (over-fitting).",
    "loss.band.inside": "Final loss {loss:.4f} is inside the usual band for a {kind} ({low}–{high}; a rule of "
                        "thumb, not a law).",
    "loss.band.below": "Final loss {loss:.4f} is below the usual band for a {kind} ({low}–{high}; a rule of "
                       "thumb): watch for over-fitting.",
    "loss.band.above": "Final loss {loss:.4f} is above the usual band for a {kind} ({low}–{high}; a rule of "
                       "thumb): the LoRA may be under-fitted.",
    "loss.band.none": "Final loss {loss:.4f}. There is no rule-of-thumb band for a {kind}.",
    "loss.band.weighted": "The loss is weighted by min-SNR (γ {gamma:g}), which makes it read lower than the "
                          "tutorials' numbers.",
    "loss.val_rising": "The validation loss is lowest at epoch {epoch} ({loss:.4f}) and rises to {last:.4f} by "
                       "epoch {last_epoch}: the later epochs are over-fitting.",
    "loss.val_best": "The validation loss is lowest at epoch {epoch} ({loss:.4f}).",
    "loss.candidates": "Epochs worth testing (lowest loss first): {epochs}.",
    "loss.no_candidates": "No saved epoch falls before the plateau; test the earliest saved ones.",
    # --- scores and recommendation ----------------------------------------------------------------
    "score.broken.black": "black or NaN image",
    "score.broken.uniform": "almost one flat colour",
    "score.broken.contrast": "extreme contrast (most pixels pure black or white)",
    "score.broken.noise": "looks like noise",
    "rec.choice": "Suggested: epoch {epoch} at weight {weight}.",
    "rec.robust": "Epoch {epoch} gives usable images at {good} of {total} weights tested ({weights}).",
    "rec.weight_preferred": "Weight {weight} is the tutorials' first choice and looks fine here.",
    "rec.weight_fallback": "Weight {weight} is the closest to the recommended 0.6 that looks fine here.",
    "rec.loss_candidate": "Epoch {epoch} is also a candidate from the loss curve.",
    "rec.weak": "{cells} look weak: the LoRA changes the picture little (effect {effect:.2f}, strongest "
                "{best:.2f}); those are under-fitted.",
    "rec.broken": "{cells} look broken ({why}).",
    "rec.overfit": "{cells} come very close to a training image (SSIM {ssim:.2f}, PSNR {psnr:.1f} dB, "
                   "nearest {image}): over-fitted.",
    "rec.none": "No cell passed the checks; test earlier epochs or lower weights, or see the diagnosis.",
    "rec.user_decides": "These are measurements, not taste: look at the grid and keep the one you like best.",
    # --- diagnosis ---------------------------------------------------------------------------------
    "diag.symptom.broken": "Many broken or deformed images",
    "diag.symptom.weak": "Weak likeness: few of the subject's features",
    "diag.symptom.rigid": "Cannot be steered: only reproduces the training images",
    "diag.cause.broken": "Low-quality or low-resolution training images, an output size much larger than "
                         "trained, or too few training steps.",
    "diag.cause.weak": "Under-fitting: too few images or steps, or caption problems.",
    "diag.cause.rigid": "Over-fitting: training images too similar or one-sided, or caption problems.",
    "diag.advice.broken": "Improve the images' quality and resolution, remove poor filler images, train more "
                          "steps; render at the trained size (use hires fix for larger images).",
    "diag.advice.weak": "Add training images, train more steps or epochs, fix the captions (trigger word first, "
                        "describe what should stay changeable).",
    "diag.advice.rigid": "Use more varied images (angles, poses, backgrounds), pick an earlier epoch or a lower "
                         "weight, fix the captions.",
    "diag.few_images": "{images} training images for a {kind}: the tutorials suggest {low}–{high}.",
    "diag.many_images": "{images} training images for a {kind}: more than the suggested {low}–{high}; similar "
                        "images make the LoRA rigid.",
    "diag.few_repeats": "Each image was seen {seen} times (repeats {repeats} × {epochs} epochs): fewer than "
                        "about {low}; the LoRA may be under-fitted.",
    "diag.many_repeats": "Each image was seen {seen} times (repeats {repeats} × {epochs} epochs): more than "
                         "about {high}; the later epochs may be over-fitted.",
    "diag.few_steps": "Only {steps} training steps: usually {low} or more are needed.",
    "diag.loss_high": "The final loss {loss:.4f} is above the {kind} band ({low}–{high}).",
    "diag.loss_low": "The final loss {loss:.4f} is below the {kind} band ({low}–{high}).",
    "diag.nan": "The loss became NaN at step {step}.",
    "diag.nan.advice": "Lower the UNet and text-encoder learning rates (now {unet_lr:g} / {te_lr:g}) a little; "
                       "if it happens again, lower them more. bf16 instead of fp16 also helps.",
    "diag.rising": "The loss rises again after step {step} (learning rate {unet_lr:g}).",
    "diag.oscillating": "The loss swings by about ±{amount:.4f} (learning rate {unet_lr:g}).",
    "diag.diverging.advice": "Lower the learning rate, e.g. to {suggested:g}, or add warm-up steps.",
    "diag.lr_high": "UNet learning rate {lr:g} is high for {optimizer} (usual: up to {high:g}).",
    "diag.lr_low": "UNet learning rate {lr:g} is low for {optimizer} (usual: {low:g} or more).",
    "diag.lr_adaptive": "{optimizer} sets its own step size and expects learning rate about 1.0, not {lr:g}.",
    "diag.te_lr_high": "The text-encoder learning rate {te_lr:g} is higher than the UNet's {unet_lr:g}; "
                       "this usually makes prompts hard to steer.",
    "diag.lr.advice": "Use a learning rate near {suggested:g}.",
    "diag.small_images": "{count} of {images} training images are smaller than the training resolution "
                         "{resolution} (smallest {smallest}).",
    "diag.small_images.advice": "Replace them with larger images or upscale them carefully first.",
    "diag.fixed_tags": "Tags in every caption besides the trigger: {tags}. They become part of the trigger and "
                       "cannot be changed by the prompt.",
    "diag.fixed_tags.advice": "Remove tags that describe the subject's fixed features; keep tags for what should "
                              "stay changeable.",
    "diag.early_plateau": "The loss flattened at step {step} of {total}: the epochs after it add little.",
    "diag.early_plateau.advice": "Pick an epoch before the plateau, or train fewer epochs next time.",
    "diag.scores.broken": "{count} of {total} grid images look broken.",
    "diag.scores.weak": "{count} of {total} grid images show little effect of the LoRA.",
    "diag.scores.overfit": "{count} of {total} grid images nearly copy a training image.",
    "diag.rule_of_thumb": "(rule of thumb)",
    # --- runs, keeping an epoch, the X/Y/Z axes ---------------------------------------------------------
    "eval.comma": ", ",
    "eval.saved.epoch": "epoch {epochs}",
    "eval.saved.epochs": "epochs {epochs}",
    "eval.saved.none": "no files",
    "eval.file.epoch": "epoch {epoch}",
    "eval.kind.final": "final",
    "eval.kind.interrupted": "interrupted",
    "eval.cannot_list": "cannot list the folder {folder}: {reason}",
    "eval.cannot_list.advice": "check that the folder exists and that you may read it",
    "eval.no_lora_folder": "the LoRA folder {folder} does not exist",
    "eval.no_lora_folder.advice": "choose the folder your LoRA files are saved in (the WebUI's models/Lora)",
    "eval.log_without_files": "the log in {folder} lists no saved file that still exists",
    "eval.log_without_files.advice": "the run saved nothing yet, or its files were moved: open the folder that "
                                     "holds the .safetensors files instead",
    "eval.not_safetensors": "{path} is not a .safetensors LoRA file",
    "eval.not_safetensors.advice": "pick a .safetensors file of the run",
    "eval.no_run": "no run in {folder}",
    "eval.no_run_named": "no run named {name} in {folder}",
    "eval.no_run.advice": "a run needs files named <name>-000001.safetensors (saved epochs) or our training log; "
                          "check the folder and the name",
    "eval.several_runs": "{folder} holds several runs: {names}",
    "eval.several_runs.advice": "choose one of them by name",
    "eval.range_step": "the epoch range {range} has step {step}",
    "eval.range_step.advice": "use a positive step, e.g. 2-10 (+2)",
    "eval.range_backwards": "the epoch range {range} runs backwards",
    "eval.range_backwards.advice": "write it as {end}-{start}",
    "eval.no_such_file": "'{token}' names no saved file of the run '{run}' in {folder} (it has {saved})",
    "eval.no_such_file.advice": "use one of those epoch numbers, 'final', or a file name from the list; a range like "
                                "2-10 (+2) skips epochs that were not saved",
    "eval.no_loss_log": "no loss log found for '{run}' (for a kohya run, choose its logging folder to see the loss "
                        "curve)",
    "eval.no_loss_log_given": "no loss log found for '{run}'",
    "keep.empty_name": "the final name is empty",
    "keep.empty_name.advice": "type a name, e.g. dreamgirl",
    "keep.bad_characters": "the final name {name} contains {characters}",
    "keep.bad_characters.advice": "use letters, digits, spaces, '-' or '_': the WebUI reads <lora:NAME:weight> and "
                                  "cannot find names with these characters",
    "keep.reserved_name": "{name} cannot be used as a file name",
    "keep.reserved_name.advice": "choose another name, e.g. dreamgirl",
    "keep.bad_preview": "the preview must be an image or an image file",
    "keep.bad_preview.advice": "pass the grid cell you chose (a PIL image) or the path of a PNG/JPEG",
    "keep.kept_from": "kept from {stem} ({label})",
    "keep.source_gone": "the chosen file {path} no longer exists",
    "keep.source_gone.advice": "refresh the run; the file may have been moved or deleted",
    "keep.name_taken": "the name '{name}' is already used by {paths}",
    "keep.name_taken.advice": "choose another final name, or tick 'overwrite' to replace the file",
    "keep.replaced": "replaced {paths}; the WebUI may keep using the old weights until you generate once without "
                     "this LoRA or restart it",
    "keep.copy_differs": "copying {path} produced a different file",
    "keep.copy_differs.advice": "check the free disk space and try again",
    "keep.sidecar_rewritten": "{path} was not valid JSON and was rewritten",
    "keep.delete_unconfirmed": "nothing was deleted: deleting files needs a confirmation",
    "keep.delete_unconfirmed.advice": "tick 'yes, delete these files' and press delete again",
    "keep.delete_foreign": "refusing to delete files that are not other epochs of the run '{run}': {paths}",
    "keep.delete_foreign.advice": "only files of the run shown can be deleted here; delete others by hand",
    "keep.delete_failed": "could not delete {path}: {reason}",
    "keep.delete_failed.advice": "close programs that use the file (an image viewer, the WebUI generating with it) "
                                 "and try again; already deleted: {count} file(s)",
    "xyz.with_advice": "{message}. {advice}",
    "xyz.no_runs": "none",
    "xyz.epoch.twice": "LoRA epoch: '{stem}' exists more than once ({places}); the WebUI can use only one of them. "
                       "Rename or remove the copies.",
    "xyz.epoch.which_run": "LoRA epoch: '{token}' does not say which run is meant (runs in {folder}: {names}). Put "
                           "the run's tag in the prompt, e.g. <lora:{name}:0.6>, or pick file names from the list.",
    "xyz.epoch.unknown": "LoRA epoch: '{token}' is not a saved file of a training run in {folder}. Use epoch numbers "
                         "(1-10, 4,6,8), 'final', or names from the list (📒 fills it).",
    "xyz.epoch.gone": "LoRA epoch: {path} no longer exists. Refresh the list of values.",
    "xyz.weight.not_number": "LoRA weight: {value} is not a number. Write weights like 0.4, 0.6, 0.8 or a range "
                             "0.4-1 [4].",
    "xyz.weight.no_tag": "LoRA weight: the prompt has no <lora:NAME:weight> tag to change. Add one, e.g. "
                         "<lora:mylora:1>, or add a \"LoRA epoch\" axis that adds it.",
    "xyz.no_script": "the WebUI has no X/Y/Z plot script",
    "xyz.no_script_img2img": "the WebUI has no X/Y/Z plot script for img2img",
    "xyz.no_script.advice": "check that scripts/xyz_grid.py exists in the WebUI folder and restart it",
    "xyz.no_axis": "the X/Y/Z plot script has no axis '{label}'",
    "xyz.no_axis.advice": "the LoRA Trainer extension adds 'LoRA epoch' and 'LoRA weight' when the WebUI starts; "
                          "restart the WebUI (or Reload UI) after installing or updating it",
    "xyz.unexpected_args": "the X/Y/Z plot script's arguments are not the expected ones",
    "xyz.unexpected_args.advice": "this WebUI version is not supported for grids through the API; render the grid "
                                  "in the tab",
}


register(TEMPLATES)
# a run's summary lines (the Evaluate box, a kept file's notes)
register({
    "chart.raw": "step loss", "chart.smoothed": "smoothed", "chart.epoch": "epoch end and mean loss",
    "chart.analysed": "loss (smoothed)", "chart.validation": "validation loss (right scale)",
    "chart.candidate": "candidate epoch", "chart.plateau": "plateau", "chart.drop": "large drop", "chart.nan": "NaN",
    "chart.steep": "steep", "chart.slow": "slow", "chart.rising": "rising",
    "eval.kind.character": "character", "eval.kind.style": "style", "eval.kind.concept": "concept",
    "summary.base": "base model: {model} ({version})",
    "summary.images": "images: {images}",
    "summary.images_repeats": "images: {images}, repeats {repeats}",
    "summary.images_reg": "images: {images}, regularization {reg}",
    "summary.images_repeats_reg": "images: {images}, repeats {repeats}, regularization {reg}",
    "summary.epoch": "epoch {epoch}",
    "summary.epoch_of": "epoch {epoch} of {epochs}",
    "summary.epoch_step": "epoch {epoch}, step {step}",
    "summary.epoch_of_step": "epoch {epoch} of {epochs}, step {step}",
    "summary.rank": "rank {rank}",
    "summary.rank_alpha": "rank {rank}, alpha {alpha:g}",
    "summary.lr": "{name} {value:g}",
    "summary.unet": "unet",
    "summary.te": "text encoder",
    "summary.resolution": "resolution {width}x{height}",
    "summary.resolution_batch": "resolution {width}x{height}, batch {batch}",
})
