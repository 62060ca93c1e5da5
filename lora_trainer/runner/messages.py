"""The job queue's and the HTTP API's sentences by key (English; Chinese in ``text/zh_CN.json``); a job's error
is kept in every language, so that a caller reads it in its own after a restart too."""
from __future__ import annotations

from typing import Any

from ..text.language import language_from_accept
from ..text.messages import LANGUAGES, key_of, localized, normalize_language, register

register({
    "runner.import_failed": "a library the trainer needs could not be imported: {error}",
    "runner.import_failed.advice": "see the install status in the LoRA Trainer tab; install what it names into the "
                                   "WebUI's Python environment and restart the WebUI",
    "runner.unexpected": "{kind}: {error}",
    "runner.unexpected.advice": "this was not expected; the full error is in the console window. Files saved before "
                                "it are kept, and a run with save_state on can be resumed from its newest -state "
                                "folder",
    "processes.started": "training in {count} processes on the GPUs {gpus} (accelerate launch); their output goes "
                         "to {log}",
    "processes.started_one": "training in a process of its own on GPU {gpus} (accelerate launch); its output goes "
                             "to {log}",
    "processes.exited": "the training processes ended (exit status {code}) without saying how the run went; their "
                        "last lines:\n{tail}",
    "processes.exited.advice": "their whole output is in {log}. Files saved before it are kept, and a run with "
                               "save_state on can be resumed from its newest -state folder with as many GPUs",
    "processes.unexpected.advice": "this was not expected; the processes' whole output is in {log}. Files saved "
                                   "before it are kept, and a run with save_state on can be resumed from its newest "
                                   "-state folder with as many GPUs",
    "runner.closing": "the trainer is shutting down",
    "runner.closing.advice": "start the job again after the restart",
    "runner.same_output": "job {job_id} ({status}) already writes {name} in {folder}",
    "runner.same_output.advice": "choose another output name, or stop that job first",
    "previews.not_object": "previews must be an object such as {{\"prompts\": [\"{{trigger}}, smiling\"]}}",
    "previews.unknown": "previews.{name} is not a preview setting (known: {known})",
    "previews.invalid": "previews.{name} = {value} is not a valid {kind}",
    "previews.kind.prompts": "list of prompts",
    "previews.kind.number": "number",
    "previews.kind.text": "text",
    "previews.kind.int": "whole number",
    "previews.kind.sampler": "sampler name",
    "previews.kind.schedule": "schedule type",
    "previews.kind.upscaler": "upscaler name",
    "previews.kind.bool": "true/false value",
    "runner.ended": "the job ended unexpectedly",
    "runner.lost": "the WebUI stopped while this job was training",
    "runner.lost.advice": "start it again; to continue where it stopped, set resume to the newest -state folder in "
                          "{folder}",
    "runner.run_folder": "the run folder beside its logs",
    "api.no_job": "there is no job with id {job_id}",
    "api.no_job.advice": "list the jobs with GET {prefix}/jobs",
    "api.bad_json": "the request body is not valid JSON",
    "api.body_help": "send {{\"config\": {{...settings...}}}} or {{\"toml\": \"...settings file text...\"}}, "
                     "optionally with \"previews\"",
    "api.not_object": "the request body must be a JSON object",
    "api.one_of": "the request must hold exactly one of \"config\" and \"toml\"",
    "api.unknown_fields": "unknown field(s) in the request: {names}",
    "api.config_object": "\"config\" must be an object of settings",
    "api.toml_text": "\"toml\" must be the text of a settings file",
    "api.request_config": "the request's config",
    "api.request_toml": "the request's toml",
    "api.fix_settings": "correct the settings named above and send the request again",
    "api.already_done": "job {job_id} is already {status}",
    "api.nothing_to_stop": "nothing to stop",
    "api.warning": "Warning: {text}",
    "api.lacks": "the request lacks \"{name}\"",
    "api.lacks.advice": "send {{\"{name}\": ...}} in the body",
    "api.wrong_kind": "\"{name}\" must be a {kind}",
    "api.wrong_kind.advice": "send a {kind} for \"{name}\"",
    "api.send_object": "send a JSON object",
    "api.file_error": "a file could not be used: {error}",
    "api.file_error.advice": "check the folder and its permissions",
    "api.no_finding": "there is no finding '{key_name}' with a fix now",
    "api.no_finding.advice": "POST {prefix}/check and pick a key",
    "api.operation": "\"operation\" '{operation}' is not known",
    "api.operation.advice": "use one of: {names}",
    "api.wrong_method": "{path} does not answer {method}",
    "api.use_methods": "use {methods} for {path}",
    "api.or": " or ",
    "api.no_route": "there is no route {method} {path}",
    "api.routes": "the routes are: {routes}",
})

# the GPUs a job trains on
register({
    "gpus.not_list": "gpus must be a list of GPU numbers such as [0, 1], not {value}",
    "gpus.unknown": "there is no GPU {gpu} here (this WebUI sees: {seen})",
    "gpus.none": "none",
    "gpus.choose": "choose at least one GPU to train on",
    "gpus.advice": "choose among the GPUs the WebUI sees, or leave gpus out to train on the WebUI's own GPU",
})

# a job's log lines (the HTTP API's "log", in the caller's language)
register({
    "job.replaces": "Note: {path} exists and will be replaced when this run finishes.",
    "job.outside_lora_dir": "Note: the output folder is outside the WebUI's LoRA folder ({folder}): the Lora tab "
                            "will not list the result until it is moved there.",
    "job.cancelled": "Cancelled before it started.",
    "job.stopping": "Stopping: the -interrupted file and state are saved at the next step.",
    "job.started": "Started {name} on {host}.",
    "job.finished": "Finished after {steps} steps.",
    "job.stopped": "Stopped after {steps} steps.",
    "job.failed": "Failed: {message}",
    "job.failed_advice": "Failed: {message} — What to do: {advice}",
    "job.not_recorded": "(could not record a progress update: {error})",
    "job.warning": "Warning: {text}",
    "job.epoch_loss": "Epoch {epoch}: mean loss {loss:.4f} (step {step}).",
    "job.validation_loss": "Epoch {epoch}: validation loss {loss:.4f} ({images}).",
    "job.images.holdout": "{count} held-out images",
    "job.images.training": "{count} training images",
    "job.saved": "Saved {path}",
    "job.no_cards": "Could not write the Lora tab's card files beside {path}: {error}",
    "job.host_failed": "The WebUI could not {action}: {kind}: {error}",
    "job.host.free_vram": "free vram",
    "job.host.restore_vram": "restore vram",
    "job.host.refresh_loras": "refresh loras",
    "job.host.interrupt": "interrupt",
    "job.lost_queued": "The WebUI stopped before this job started.",
    "job.record_unsaved": "could not save the job record in {folder}: {error}",
    "job.previews_skipped": "Previews skipped: {message}",
    "job.previews_skipped_advice": "Previews skipped: {message} ({advice})",
    "job.previews_oom": "Previews ran out of GPU memory next to the training; training goes on. To see previews, "
                        "make them smaller (width, height) or train with less memory (see the presets for your GPU).",
    "job.previews_failed": "Previews failed ({kind}: {error}); training goes on.",
    "job.previews_nan": "No previews of {name}: the WebUI's model gave NaN (not a number) with this file, and the "
                        "WebUI's NaN check stopped the picture. Training goes on. If later files do the same, train "
                        "with a lower learning rate; on a WebUI in half precision its setting \"Upcast cross attention "
                        "layer to float32\" (Settings > Stable Diffusion) or the --no-half flag may help.",
    "job.previews_one_colour": "The previews of {name} are one flat colour: the WebUI's model most likely gave NaN "
                               "(not a number) with this file. Training goes on. If later files do the same, train "
                               "with a lower learning rate; black pictures also come from a VAE in half precision "
                               "(the WebUI's --no-half-vae flag).",
    "job.previews_saved": "Previews of {name}: {count} image(s).",
    "job.previews_unsaved": "Could not save preview images in {folder}: {error}",
    "job.previews_other_model": "Previews render on {model}, the model the WebUI has loaded: the LoRA is trained on "
                                "{base}, which the WebUI does not list. Put that file in the WebUI's models folder to "
                                "see previews on it.",
    "job.previews_trained_model": "Previews render on {model}, the model this LoRA is trained on; the WebUI's own "
                                  "choice, {loaded}, is loaded again for its next image.",
})


def error_record(message: Any, advice: Any = "") -> dict:
    """A job's error: the English text, its key, and the same in each other language (kept across restarts)."""
    record = {"message": str(message), "advice": str(advice or ""), "key": key_of(message)}
    for language in LANGUAGES[1:]:
        record[language] = {"message": localized(message, language), "advice": localized(advice or "", language)}
    return record


def error_in(record: dict | None, language: str) -> dict | None:
    """A job's error record with its message and advice in ``language`` (English where it has none)."""
    if not record or not isinstance(record.get(language), dict):
        return record
    return {**record, **record[language]}


def request_language(request, body=None) -> str:
    """The caller's language: ``language`` in the body or the query, else its Accept-Language header."""
    chosen = body.get("language") if isinstance(body, dict) else None
    chosen = chosen or request.query_params.get("language")
    if isinstance(chosen, str) and chosen.strip():
        return normalize_language(chosen)
    return language_from_accept(request.headers.get("accept-language"))
