"""The command line's sentences by key (English; Chinese in ``text/zh_CN.json``), printed in the language of
the environment (``text/language.py``: LORA_TRAINER_LANGUAGE, LANGUAGE, LC_ALL, LC_MESSAGES, LANG)."""
from __future__ import annotations

from typing import Any

from ..text.language import language_from_env
from ..text.messages import localized, msg, register

register({
    "cli.warning": "warning: {text}",
    "cli.error": "\nerror: {text}",
    "cli.interrupted": "\ninterrupted",
    "cli.stopping": "\nStopping: the -interrupted file and state are saved next (Ctrl+C again to quit now).",
    "cli.done": "Done. {steps} steps; files:",
    "cli.stopped": "Stopped. {steps} steps; files:",
    "cli.epoch_loss": "epoch {epoch}: mean loss {loss:.4f} (step {step})",
    "cli.validation_loss": "epoch {epoch}: validation loss {loss:.4f} ({images} {what} images)",
    "cli.held_out": "held-out",
    "cli.training": "training",
    "cli.saved": "saved {path}",
    "cli.files_before": "Files saved before it stopped:",
    "cli.no_problems": "No problems found.",
    "cli.finding": "{level}: {text}\n  What to do: {advice}",
    "cli.finding_fix": "\n  A fix the Dataset tab does in one click: {label}",
    "cli.no_bench": "the benchmark is not installed with the package",
    "cli.no_bench.advice": "run it from a clone of the repository: python -m benchmarks.bench --help",
    "cli.demo.base": "Tiny base model written to {path}",
    "cli.demo.loss_per_epoch": "\nLoss per epoch:",
    "cli.demo.loss_header": "  epoch  mean loss",
    "cli.demo.files": "\nFiles written:",
    "cli.demo.file": "  {path}  ({size:.0f} KiB)",
    "cli.demo.logs": "  logs: {folder}",
    "cli.demo.finished": "\nDemo finished in {seconds:.0f} s. Inspect a file with:\n"
                         "  {python} -m lora_trainer inspect {file}",
    "inspect.folder": "{path} is a folder, not a LoRA file",
    "inspect.folder.advice": "name one of its .safetensors files, e.g. {example}",
    "inspect.empty_folder.advice": "name a .safetensors file; this folder holds none",
    "inspect.not_found.advice": "check the path of the .safetensors file",
    "inspect.incomplete.advice": "the file may be incomplete; use an earlier epoch or train again",
    "inspect.size": "  size: {mib:.2f} MiB, {count} tensors",
    "inspect.none": "none",
    "inspect.dora": " + DoRA ({count} modules)",
    "inspect.type": "  type: {kinds}",
    "inspect.modules": "  {prefix}: {count} modules",
    "inspect.value_modules": "{value} ({count} modules)",
    "inspect.rank": "  rank: {ranks}",
    "inspect.alpha": "  alpha: {alphas}",
    "inspect.conv": "  conv 3×3 (LoCon) modules: {count}",
    "inspect.metadata": "  metadata:",
    "inspect.top_tags": "    top tags: {tags}",
    "inspect.check_ok": "  check: OK",
    "inspect.check_problems": "  check: PROBLEMS\n{lines}",
    "inspect.problem": "    - {problem}",
    "inspect.note": "  note: no {names} in the metadata (normal for files from other trainers)",
})


def language() -> str:
    return language_from_env()


def said(key: str, **params: Any) -> str:
    """The sentence ``key`` in the environment's language."""
    return msg(key, **params).format(language())


def text_in_language(value: Any) -> str:
    """A warning or note (``Sentence``, ``Joined``, ``Message`` or plain text) in the environment's language."""
    return localized(value, language())


def error_text(err: Any) -> str:
    """A ``TrainerError`` (problem and fix) in the environment's language, as ``error: …``."""
    return said("cli.error", text=err.format(language()))
