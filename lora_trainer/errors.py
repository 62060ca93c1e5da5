"""Errors a user can act on.

Every error the trainer raises for a bad input or a failed run is a ``TrainerError``:
its message says what is wrong and where (file, folder or setting), and ``advice``
says what to do about it. The CLI prints both; the WebUI shows both. Either may be a keyed sentence
(``text.messages``): ``str(err)`` is English, ``err.format(language)`` the same in another language.
"""
from __future__ import annotations

from typing import Any

from .text.messages import Joined, Message, Sentence, key_of, localized, msg, register, sentence

register({
    "error.what_to_do": "{message}\n  What to do: {advice}",
    "error.settings": "Some settings need fixing:\n{lines}",
    "error.settings_line": "  - {problem}",
    "error.missing_package": "The package '{package}' is needed for {needed_for} but is not installed.",
    "error.missing_package.advice": "install it into the Python environment that runs the trainer: "
                                    "python -m pip install {pip_name}  (or choose another setting)",
})


def _text(value: Any) -> str:
    """A ``Message`` as its ``Sentence`` (a str); text as it is."""
    return Sentence(value) if isinstance(value, Message) else value


class TrainerError(Exception):
    """Base class: ``str(err)`` is the problem, ``err.advice`` the fix; ``format(language)`` both in a language."""

    def __init__(self, message: str | Message, advice: str | Message = "") -> None:
        message, advice = _text(message), _text(advice)
        super().__init__(message)
        self.message = message
        self.advice = advice

    def __str__(self) -> str:
        return self.format("en")

    def message_in(self, language: str | None = "en") -> str:
        return localized(self.message, language)

    def advice_in(self, language: str | None = "en") -> str:
        return localized(self.advice, language) if self.advice else ""

    @property
    def key(self) -> str | None:
        """The message key of what is wrong (None where the text has none)."""
        return key_of(self.message)

    @property
    def advice_key(self) -> str | None:
        return key_of(self.advice)

    def format(self, language: str | None = "en") -> str:
        """The problem and the fix in ``language`` ("en", "zh_CN"), as the CLI prints them."""
        message, advice = self.message_in(language), self.advice_in(language)
        if advice:
            return sentence("error.what_to_do", message=message, advice=advice).message.format(language)
        return message


class ConfigError(TrainerError):
    """One or more settings are invalid; ``problems`` lists each in plain words."""

    def __init__(self, problems: list[str] | str | Message, advice: str | Message = "") -> None:
        if isinstance(problems, (str, Message)):
            problems = [problems]
        self.problems = [_text(p) for p in problems]
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            lines = Joined([msg("error.settings_line", problem=p) for p in self.problems])
            message = sentence("error.settings", lines=lines)
        super().__init__(message, advice)

    def problems_in(self, language: str | None = "en") -> list[str]:
        return [localized(p, language) for p in self.problems]

    @property
    def key(self) -> str | None:
        return key_of(self.problems[0]) if len(self.problems) == 1 else "error.settings"


class DatasetError(TrainerError):
    """The training or regularization folders cannot be used as they are."""


class ModelLoadError(TrainerError):
    """The base model (checkpoint, diffusers folder or tokenizer) cannot be loaded."""


class OutputError(TrainerError):
    """A file or folder of the run cannot be written (permissions, a file in the way, a failed write)."""


class DiskFull(OutputError):
    """The disk filled up: what was being saved, how much is needed, how much to free."""


class MissingDependency(TrainerError):
    """An optional package needed by the chosen setting is not installed."""

    def __init__(self, package: str, needed_for: str | Message, pip_name: str | None = None) -> None:
        pip_name = pip_name or package
        super().__init__(sentence("error.missing_package", package=package, needed_for=_text(needed_for)),
                         sentence("error.missing_package.advice", pip_name=pip_name))
        self.package = package


class TrainingDiverged(TrainerError):
    """The loss became NaN or infinite; training stopped before saving a broken file."""


class TrainingStopped(TrainerError):
    """Training was stopped on request; the interrupted state was saved."""
