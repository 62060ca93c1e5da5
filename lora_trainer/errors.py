"""Errors a user can act on.

Every error the trainer raises for a bad input or a failed run is a ``TrainerError``:
its message says what is wrong and where (file, folder or setting), and ``advice``
says what to do about it. The CLI prints both; the WebUI shows both.
"""
from __future__ import annotations


class TrainerError(Exception):
    """Base class: ``str(err)`` is the problem, ``err.advice`` the fix."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.advice = advice

    def __str__(self) -> str:
        if self.advice:
            return f"{self.message}\n  What to do: {self.advice}"
        return self.message


class ConfigError(TrainerError):
    """One or more settings are invalid; ``problems`` lists each in plain words."""

    def __init__(self, problems: list[str] | str, advice: str = "") -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = "Some settings need fixing:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, advice)


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

    def __init__(self, package: str, needed_for: str, pip_name: str | None = None) -> None:
        pip_name = pip_name or package
        super().__init__(
            f"The package '{package}' is needed for {needed_for} but is not installed.",
            f"install it into the Python environment that runs the trainer: "
            f"python -m pip install {pip_name}  (or choose another setting)",
        )
        self.package = package


class TrainingDiverged(TrainerError):
    """The loss became NaN or infinite; training stopped before saving a broken file."""


class TrainingStopped(TrainerError):
    """Training was stopped on request; the interrupted state was saved."""
