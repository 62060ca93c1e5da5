"""What the tab's buttons do, without gradio: choose the base model, check before queuing, load and save
settings, pick the job to show. Each returns plain values and messages (HTML from ``status.py``).
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..config.allowed_folders import AllowedFolders, same_output
from ..config.files import config_from_dict, read_toml, save_config
from ..config.schema import TrainConfig, parse_resolution
from ..config.validation import validate
from ..config.steps import scan_and_plan
from ..errors import ConfigError, TrainerError
from ..runner.previews import preview_size
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from .fields import with_label
from .kohya_gui import import_kohya_gui, looks_like_kohya_gui
from .names import files_to_overwrite, sanitize_output_name
from .status import ACTIVE, message_html


def checkpoint_titles(host: Any, refresh: bool = False) -> list[str]:
    try:
        return [c.title for c in host.list_checkpoints(refresh=refresh)]
    except Exception:   # a host that cannot list models must not break the tab
        return []


def default_checkpoint(host: Any) -> tuple[str, str]:
    """(title shown, path) of the host's loaded checkpoint, else of the first one listed."""
    try:
        loaded = host.loaded_checkpoint()
    except Exception:
        loaded = None
    if loaded is None:
        listed = host.list_checkpoints() if hasattr(host, "list_checkpoints") else []
        loaded = listed[0] if listed else None
    return (loaded.title, loaded.path) if loaded else ("", "")


def resolve_base_model(choice: str, host: Any) -> str:
    """A checkpoint title from the list, or a path typed by hand, as a file path."""
    choice = (choice or "").strip()
    if not choice:
        raise ConfigError(msg("ui.no_choice"), msg("ui.no_choice.advice"))
    for checkpoint in host.list_checkpoints():
        if choice in (checkpoint.title, checkpoint.path):
            return checkpoint.path
    path = os.path.expanduser(choice.strip('"'))
    if os.path.exists(path):
        return os.path.abspath(path)
    raise ConfigError(msg("ui.no_base_model", choice=choice), msg("ui.no_base_model.advice"))


def title_for_path(path: str, host: Any) -> str:
    for checkpoint in host.list_checkpoints():
        if os.path.normcase(os.path.abspath(checkpoint.path)) == os.path.normcase(os.path.abspath(path or ".")):
            return checkpoint.title
    return path


@dataclass
class StartCheck:
    cfg: TrainConfig | None = None
    ready: bool = False
    message: str = ""
    confirm_needed: bool = False
    warnings: list[str] = field(default_factory=list)
    plan: Any = None


def allowed_folders(host: Any) -> AllowedFolders:
    """Where this host lets a caller name files and folders (hosts without a rule: anywhere)."""
    method = getattr(host, "allowed_folders", None)
    return method() if callable(method) else AllowedFolders.anywhere()


def _same_output(job: Any, cfg: TrainConfig) -> bool:
    folder = getattr(job, "output_dir", "") or (getattr(job, "config", {}) or {}).get("output_dir", "")
    return same_output(folder, getattr(job, "output_name", "") or "", cfg.output_dir, cfg.output_name)


def dataset_findings(cfg: TrainConfig, runner: Any) -> tuple[list[str], list[str]]:
    """The Dataset tab's checks, read without decoding a picture: (what stops training, the other findings)."""
    from ..dataset.checks import CheckSettings, check_dataset
    from ..dataset.fixes import workbench_folder

    try:
        language = runner.host.language()
    except Exception:
        language = "en"
    width, height = parse_resolution(cfg.resolution)
    settings = CheckSettings(resolution=min(width, height), enable_bucket=cfg.enable_bucket,
                             min_bucket_reso=cfg.min_bucket_reso, caption_extension=cfg.caption_extension,
                             token_limit=cfg.max_token_length)
    try:
        findings = check_dataset(cfg.train_data_dir, settings, cache_dir=workbench_folder(cfg.train_data_dir) / "scan",
                                 quick=True)
    except (TrainerError, OSError):
        return [], []
    texts = [(f.blocking, f"{f.text(language)} {f.advice.format(language)}") for f in findings
             if f.level != "info"]
    return [t for b, t in texts if b], [t for b, t in texts if not b]


def check_start(cfg: TrainConfig, runner: Any, confirmed: bool) -> StartCheck:
    """Everything the core checks before a run, in plain words, and the overwrite question."""
    name, name_notes = sanitize_output_name(cfg.output_name)
    cfg = cfg.replace(output_name=name)
    try:
        warnings = validate(cfg, need_paths=True)
        scan, _items, plan = scan_and_plan(cfg)
    except ConfigError as err:
        return StartCheck(cfg, message=message_html("error", "Fix these settings first",
                                                    [with_label(p) for p in err.problems], err.advice))
    except TrainerError as err:
        return StartCheck(cfg, message=message_html("error", "The dataset cannot be used as it is",
                                                    [err.message], err.advice))
    warnings = name_notes + [with_label(w) for w in warnings] + list(scan.warnings) + list(plan.notes)
    blocking, notes = dataset_findings(cfg, runner)
    if blocking:
        return StartCheck(cfg, message=message_html("error", "The dataset cannot be used as it is", blocking,
                                                    "Open the Dataset tab's Checks to fix it."))
    warnings += [n for n in notes if n not in warnings]
    busy = [j for j in runner.jobs() if getattr(j, "status", "") in ACTIVE and _same_output(j, cfg)]
    if busy:
        return StartCheck(cfg, message=message_html(
            "error", "A run in the queue already writes these files", [msg("ui.name_in_folder", name=cfg.output_name, folder=cfg.output_dir)],
            "Choose another output name, or stop that run first."))
    clashes = files_to_overwrite(cfg.output_dir, cfg.output_name)
    if clashes and not confirmed:
        shown = [os.path.basename(c) for c in clashes[:8]]
        if len(clashes) > 8:
            shown.append(msg("ui.and_more", count=len(clashes) - 8))
        return StartCheck(cfg, confirm_needed=True, warnings=warnings, plan=plan, message=message_html(
            "warning", "These files would be replaced", shown,
            "Tick 'Replace the existing files' and press Start again, or change the output name."))
    return StartCheck(cfg, ready=True, warnings=warnings, plan=plan)


def load_settings_file(path: str, base: TrainConfig) -> tuple[TrainConfig, str]:
    """A .toml (ours or kohya's sd-scripts) or a kohya_ss GUI .json onto ``base``; (config, message)."""
    source = os.path.basename(path)
    if path.lower().endswith(".json"):
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read().decode("utf-8-sig", errors="replace"))
        except (OSError, ValueError) as err:
            raise ConfigError(msg("ui.not_json", source=source, error=err), msg("ui.kohya_file.advice")) from None
        if not looks_like_kohya_gui(data):
            raise ConfigError(msg("ui.not_kohya", source=source), msg("ui.kohya_file.advice"))
        result = import_kohya_gui(data, base)
        lines = result.notes + ([msg("ui.not_used", names=", ".join(result.ignored))] if result.ignored else [])
        return result.config, message_html("ok", "kohya_ss settings loaded", lines)
    cfg, warnings = config_from_dict(read_toml(path), base=base, source=source)
    return cfg, message_html("ok", "Settings loaded", warnings)


def save_settings_file(cfg: TrainConfig) -> str:
    """Write the settings as TOML to a fresh temp folder (gradio serves it for download from there)."""
    name, _ = sanitize_output_name(cfg.output_name)
    path = os.path.join(tempfile.mkdtemp(prefix="lora_trainer_settings_"), f"{name}.toml")
    save_config(cfg, path)
    return path


def preview_values(settings: dict | None, cfg: TrainConfig) -> list:
    """The Train tab's preview fields (on, prompts, weight, seed, negative prompt, steps, width, height) for a
    run's preview settings; a size equal to the training resolution stays empty (it follows the resolution),
    ``...`` where the run says nothing."""
    settings = settings if isinstance(settings, dict) else {}
    size = preview_size(cfg)
    prompts = settings.get("prompts")
    values = [settings.get("enabled", ...), "\n".join(prompts) if isinstance(prompts, list) else ...,
              settings.get("weight", ...), settings.get("seed", ...), settings.get("negative_prompt", ...),
              settings.get("steps", ...)]
    for side, trained in zip(("width", "height"), size):
        value = settings.get(side, ...)
        values.append(None if value == trained else value)
    return values


def job_config(job: Any, base: TrainConfig) -> TrainConfig | None:
    """The settings a run was started with (to fill the form again), None when they do not load."""
    data = getattr(job, "config", None)
    if not data:
        return None
    try:
        cfg, _ = config_from_dict(dict(data), base=base, source="the run's settings")
    except TrainerError:
        return None
    return cfg


class JobsSnapshot:
    """The runner's jobs for every open page, read at most once per ``ttl`` seconds: each read copies
    every job with its loss history, and each open page polls. ``forget()`` after a button changed them."""

    def __init__(self, runner: Any, ttl: float = 1.0) -> None:
        self.runner, self.ttl = runner, ttl
        self._lock = threading.Lock()
        self._jobs: list = []
        self._read_at = float("-inf")

    def jobs(self) -> list:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl:
                self._jobs, self._read_at = self.runner.jobs(), time.monotonic()
            return list(self._jobs)

    def forget(self) -> None:
        with self._lock:
            self._read_at = float("-inf")

    def current(self) -> Any:
        return next((j for j in self.jobs() if getattr(j, "status", "") in ("preparing", "training", "stopping")),
                    None)

    def get(self, job_id: str) -> Any:
        return next((j for j in self.jobs() if getattr(j, "id", None) == job_id), None)


def view_job(runner: Any, job_id: str | None = None) -> Any:
    """The job the page shows: the one picked in the queue, else the one training, else the latest."""
    if job_id:
        job = runner.get(job_id)
        if job is not None:
            return job
    current = runner.current()
    if current is not None:
        return current
    jobs = runner.jobs()
    started = [j for j in jobs if getattr(j, "started_at", None)]
    if started:
        return max(started, key=lambda j: j.started_at)
    return jobs[0] if jobs else None
