"""A training job as the tab and the HTTP API see it: plain, JSON-friendly data.

The runner owns the live ``Job`` objects and hands out copies, so a reader never sees one
half-updated.
"""
from __future__ import annotations

import dataclasses
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import ConfigError
from ..text.messages import LANGUAGES, localized, msg, read_back, sentence, translations_of
from . import messages  # noqa: F401  (registers the sentences)
from ..hosts.base import RenderSettings

ACTIVE = ("queued", "preparing", "training", "stopping")
FINAL = ("finished", "stopped", "failed", "cancelled")
MAX_LOG_LINES = 1000


@dataclass
class PreviewSettings(RenderSettings):
    """What a job renders per saved epoch; {trigger} is the first concept folder's name or the output name."""
    enabled: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> "PreviewSettings":
        """Settings from JSON; every wrong value is named in one ``ConfigError``."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(msg("previews.not_object"))
        known = {f.name: f for f in dataclasses.fields(cls)}
        values, problems = {}, []
        for key, value in data.items():
            if key not in known:
                problems.append(sentence("previews.unknown", name=key, known=", ".join(known)))
                continue
            try:
                values[key] = _coerce(key, value)
            except (TypeError, ValueError, OverflowError):
                problems.append(sentence("previews.invalid", name=key, value=repr(value), kind=_KINDS[key]))
        if problems:
            raise ConfigError(problems)
        settings = cls(**values)
        if settings.enabled:
            problems += settings.render_problems("previews.")
        if problems:
            raise ConfigError(problems)
        return settings


_KINDS = {name: msg(f"previews.kind.{kind}") for name, kind in {
    "prompts": "prompts", "weight": "number", "negative_prompt": "text", "seed": "int", "width": "int",
    "height": "int", "steps": "int", "cfg_scale": "number", "sampler_name": "sampler", "scheduler": "schedule",
    "hires_scale": "number", "hires_upscaler": "upscaler", "hires_steps": "int", "denoising_strength": "number",
    "enabled": "bool"}.items()}
_TEXTS = ("negative_prompt", "sampler_name", "scheduler", "hires_upscaler")
_NUMBERS = ("weight", "cfg_scale", "hires_scale", "denoising_strength")


def _coerce(key: str, value: Any) -> Any:
    if key == "prompts":
        if isinstance(value, str):
            return [line.strip() for line in value.splitlines() if line.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return [v for v in value if v.strip()]
    if key in _TEXTS:
        if not isinstance(value, str):
            raise TypeError
        return value
    if key == "enabled":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return str(value).strip().lower() in ("true", "1", "yes", "on")
        raise ValueError
    if isinstance(value, bool):
        raise TypeError
    if key in _NUMBERS:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    number = float(value)
    if not number.is_integer():
        raise ValueError
    return int(number)


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Job:
    id: str
    output_name: str
    status: str = "queued"          # queued|preparing|training|stopping|finished|stopped|failed|cancelled
    created_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 0
    it_per_s: Optional[float] = None
    eta_s: Optional[float] = None
    lr: dict = field(default_factory=dict)
    vram_gb: Optional[float] = None
    losses: list = field(default_factory=list)        # [step, loss] as read back from the loop
    epoch_losses: list = field(default_factory=list)  # [epoch, step, mean loss]
    validation: list = field(default_factory=list)    # [epoch, step, validation loss]
    files: list = field(default_factory=list)         # {"path", "epoch", "step", "kind", "state_dir"}
    previews: list = field(default_factory=list)      # {"epoch", "step", "weight", "prompt", "path", "file"}
    error: Optional[dict] = None                      # {"message", "advice"}
    log: list = field(default_factory=list)
    plan_text: str = ""
    warnings: list = field(default_factory=list)
    config: dict = field(default_factory=dict)        # TrainConfig.to_dict()
    preview_settings: dict = field(default_factory=dict)
    trigger: str = ""
    family: Optional[str] = None                      # "sd1" | "sd2" | "sdxl" of the base model, when known
    output_dir: str = ""
    run_dir: str = ""                                  # the logs of this run (metrics.jsonl, TensorBoard)
    gpus: list = field(default_factory=list)          # the GPUs chosen ([]: the WebUI's own); several: processes

    @property
    def done(self) -> bool:
        return self.status in FINAL

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def add_log(self, line: str) -> None:
        self.log.append(line)
        if len(self.log) > MAX_LOG_LINES:
            del self.log[: len(self.log) - MAX_LOG_LINES]

    def to_dict(self) -> dict:
        """JSON-ready: tuples become lists, NaN/infinite numbers become null; the log, warnings and plan also in
        each other language (``translations``), so a record read back after a restart keeps them."""
        data = _clean(dataclasses.asdict(self))
        data["translations"] = {code: {"log": translations_of(self.log, code),
                                       "warnings": translations_of(self.warnings, code),
                                       "plan_text": localized(self.plan_text, code)} for code in LANGUAGES[1:]}
        return data

    def in_language(self, language: str) -> dict:
        """``to_dict`` with the log, warnings and plan in ``language`` (the HTTP API's caller's)."""
        data = self.to_dict()
        del data["translations"]
        data["log"], data["warnings"] = translations_of(self.log, language), translations_of(self.warnings, language)
        data["plan_text"] = localized(self.plan_text, language)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        names = {f.name for f in dataclasses.fields(cls)}
        job = cls(**{k: v for k, v in data.items() if k in names})
        others = data.get("translations") if isinstance(data.get("translations"), dict) else {}
        others = {code: value for code, value in others.items() if isinstance(value, dict)}
        if isinstance(job.log, list):
            job.log = read_back(job.log, {code: value.get("log") for code, value in others.items()})
        if isinstance(job.warnings, list):
            job.warnings = read_back(job.warnings, {code: value.get("warnings") for code, value in others.items()})
        if isinstance(job.plan_text, str):
            job.plan_text = read_back([job.plan_text], {code: [value.get("plan_text")]
                                                        for code, value in others.items()})[0]
        return job


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
