"""What the "LoRA epoch" and "LoRA weight" X/Y/Z axes do, without the host.

``hosts/xyz_axes.py`` wraps these methods in the host's ``AxisOption``; here they take any
object with ``prompt`` (and ``hr_prompt``) attributes, so they are tested without a WebUI.

How the two axes agree on the run: an epoch value is a file stem (what the dropdown lists), or
a number / ``final`` that is read against the run whose ``<lora:…>`` tag is in the prompt (or
the only run in the folder). ``confirm`` resolves every value once, before any image is
rendered, and leaves the answer on the processing object; each cell's copy carries it, so
``apply`` only rewrites text. The weight axis rewrites the multiplier of the tag of a known run
(else the last LoRA tag); when no tag is there yet it leaves its weight on the cell for the
epoch axis, which adds the tag (and the trigger word) with that weight, whichever of the two
axes is applied first.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Callable

from ..errors import TrainerError
from ..text.messages import Message, localized, msg
from .prompt_tags import add_lora, find_lora_tags, format_weight, set_last_lora_weight, set_lora
from .runs import LORA_SUFFIX, RunFile, RunInfo, find_runs, is_epoch_number, resolve_epoch_value
from .summary import summary_from_metadata

EPOCH_LABEL = "LoRA epoch"
WEIGHT_LABEL = "LoRA weight"
DEFAULT_WEIGHT = 1.0
PROMPT_FIELDS = ("prompt", "hr_prompt")   # hr_prompt only when set: the host copies the prompt when empty
# attributes left on the processing object by confirm (a cell's copy carries them)
P_EPOCHS = "lora_trainer_epochs"
P_RUN_STEMS = "lora_trainer_run_stems"
P_WEIGHT = "lora_trainer_weight"
P_LABEL_RUNS = "lora_trainer_label_runs"


class AxisError(RuntimeError):
    """Raised by ``confirm``/``apply``: the X/Y/Z script stops and shows this text, in the WebUI's language;
    ``message`` keeps the keyed sentence (``format(language)`` for another language)."""

    def __init__(self, message: Message | str, language: str = "en") -> None:
        super().__init__(localized(message, language))
        self.message = message

    def format(self, language: str | None = "en") -> str:
        return localized(self.message, language)


class _Capitalized:
    """A sentence that starts with a capital letter in every language (advice written to follow "What to do:"
    becomes a sentence of its own)."""

    def __init__(self, text) -> None:
        self.text = text

    def in_language(self, language: str | None) -> str:
        text = localized(self.text, language)
        return text[:1].upper() + text[1:]

    def __str__(self) -> str:
        return self.in_language("en")


def _english() -> str:
    return "en"


def _language_of(source: Callable[[], str]) -> str:
    try:
        return source()
    except Exception:   # a host that is still starting up
        return "en"


def _fail(err: TrainerError, language: str = "en") -> AxisError:
    """The core's message and advice as two sentences (the advice is written to follow "What to do:")."""
    if not err.advice:
        return AxisError(err.message, language)
    return AxisError(msg("xyz.with_advice", message=err.message, advice=_Capitalized(err.advice)), language)


@dataclass(frozen=True)
class EpochChoice:
    stem: str
    run: str
    label: str                 # "epoch 5", "final", "interrupted"
    run_stems: tuple[str, ...]  # every name the run's files go by (to find its tag in a prompt)
    trigger: str


def _trigger(run: RunInfo, chosen: RunFile) -> str:
    """The activation text of the run's card (sidecar JSON), else the trigger guessed from metadata."""
    for f in [run.final, chosen] if run.final else [chosen]:
        sidecar = os.path.join(os.path.dirname(f.path), f.stem + ".json")
        try:
            with open(sidecar, encoding="utf-8") as fh:
                text = json.load(fh).get("activation text")
            if isinstance(text, str) and text.strip():
                return text.strip()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        return ", ".join(summary_from_metadata(chosen.metadata()).trigger_words()[:1])
    except TrainerError:
        return ""


class EpochAxis:
    """Values: saved files of a run (``1-10``, ``4,6,8``, ``final``, file names)."""

    label = EPOCH_LABEL
    cost = 0.5  # iterate epochs in the outer loop: each new file is a load, a new weight only a re-merge

    def __init__(self, get_lora_dir: Callable[[], str], language: Callable[[], str] | None = None) -> None:
        self.get_lora_dir = get_lora_dir
        self.language = language or _english   # the WebUI's language, for the refusals

    def _error(self, key: str, **params) -> AxisError:
        return AxisError(msg(key, **params), _language_of(self.language))

    def runs(self) -> list[RunInfo]:
        return find_runs(self.get_lora_dir())

    def choices(self) -> list[str]:
        """File stems of every run in the LoRA folder, newest run first; [] when it cannot be read."""
        try:
            return [stem for run in self.runs() for stem in run.stems]
        except (TrainerError, OSError):
            return []

    def prepare(self, text: str) -> list[str]:
        from .runs import split_epoch_values

        try:
            return split_epoch_values(text)
        except TrainerError as err:
            raise _fail(err, _language_of(self.language)) from None

    def resolve(self, prompt: str, values: list[str]) -> dict[str, EpochChoice]:
        """Each value's file; raises ``AxisError`` naming the first value without one."""
        try:
            runs = self.runs()
        except TrainerError as err:
            raise _fail(err, _language_of(self.language)) from None
        folder = self.get_lora_dir()
        by_stem: dict[str, list[tuple[RunInfo, RunFile]]] = {}
        for run in runs:
            for f in run.files:
                by_stem.setdefault(f.stem, []).append((run, f))
        tagged = next((by_stem[t.name][0][0] for t in find_lora_tags(prompt) if t.name in by_stem), None)
        out: dict[str, EpochChoice] = {}
        for value in values:
            token = str(value).strip()
            stem = token[: -len(LORA_SUFFIX)] if token.lower().endswith(LORA_SUFFIX) else token
            if stem in by_stem:
                if len(by_stem[stem]) > 1:
                    places = ", ".join(os.path.dirname(f.path) for _, f in by_stem[stem])
                    raise self._error("xyz.epoch.twice", stem=stem, places=places)
                run, f = by_stem[stem][0]
            elif is_epoch_number(token) or token.lower() in ("final", "interrupted", "last"):
                run = tagged or (runs[0] if len(runs) == 1 else None)
                if run is None:
                    names = ", ".join(r.name for r in runs) or msg("xyz.no_runs")
                    raise self._error("xyz.epoch.which_run", token=token, folder=folder, names=names,
                                      name=runs[0].name if runs else "NAME")
                try:
                    f = resolve_epoch_value(run, token)
                except TrainerError as err:
                    raise _fail(err, _language_of(self.language)) from None
            else:
                raise self._error("xyz.epoch.unknown", token=token, folder=folder)
            if not os.path.isfile(f.path):
                raise self._error("xyz.epoch.gone", path=f.path)
            out[token] = EpochChoice(f.stem, run.name, f.label, tuple(run.stems) + (run.name,), _trigger(run, f))
        return out

    def confirm(self, p, xs) -> None:
        choices = self.resolve(getattr(p, "prompt", "") or "", [str(x) for x in xs])
        setattr(p, P_EPOCHS, choices)
        setattr(p, P_LABEL_RUNS, len({c.run for c in choices.values()}) > 1)

    def choice_for(self, p, x) -> EpochChoice:
        choices = getattr(p, P_EPOCHS, None) or {}
        token = str(x).strip()
        if token not in choices:  # apply without confirm (another script calling it): resolve now
            choices = self.resolve(getattr(p, "prompt", "") or "", [token])
        return choices[token]

    def apply(self, p, x, xs) -> None:
        choice = self.choice_for(p, x)
        weight = getattr(p, P_WEIGHT, None)
        for attr in PROMPT_FIELDS:
            text = getattr(p, attr, None)
            if not isinstance(text, str) or (attr != "prompt" and not text):
                continue
            text, found = set_lora(text, lambda name: name in choice.run_stems, name=choice.stem)
            if not found:
                text = add_lora(text, choice.stem, DEFAULT_WEIGHT if weight is None else weight, choice.trigger)
            setattr(p, attr, text)

    def format_value(self, p, opt, x) -> str:
        try:
            choice = self.choice_for(p, x)
        except AxisError:
            return str(x)
        if getattr(p, P_LABEL_RUNS, False):
            return f"{choice.run} {choice.label}"
        return choice.label


class WeightAxis:
    """Values: LoRA multipliers (floats; the host expands ranges like ``0.5-1 [6]``)."""

    label = WEIGHT_LABEL
    cost = 0.0

    def __init__(self, get_lora_dir: Callable[[], str], language: Callable[[], str] | None = None) -> None:
        self.get_lora_dir = get_lora_dir
        self.language = language or _english   # the WebUI's language, for the refusals

    def _error(self, key: str, **params) -> AxisError:
        return AxisError(msg(key, **params), _language_of(self.language))

    def confirm(self, p, xs) -> None:
        bad = [x for x in xs if not isinstance(x, (int, float)) or not math.isfinite(float(x))]
        if bad:
            raise self._error("xyz.weight.not_number", value=repr(bad[0]))
        try:
            stems = {s for run in find_runs(self.get_lora_dir()) for s in run.stems + [run.name]}
        except TrainerError:
            stems = set()
        setattr(p, P_RUN_STEMS, frozenset(stems))

    def apply(self, p, x, xs) -> None:
        weight = float(x)
        setattr(p, P_WEIGHT, weight)
        stems = getattr(p, P_RUN_STEMS, None) or frozenset()
        epoch_axis = getattr(p, P_EPOCHS, None) is not None
        for attr in PROMPT_FIELDS:
            text = getattr(p, attr, None)
            if not isinstance(text, str) or (attr != "prompt" and not text):
                continue
            text, found = set_lora(text, lambda name: name in stems, weight=weight)
            if not found:
                text, found = set_last_lora_weight(text, weight)
            if not found and attr == "prompt" and not epoch_axis:
                raise self._error("xyz.weight.no_tag")
            setattr(p, attr, text)

    def format_value(self, p, opt, x) -> str:
        return f"w {format_weight(float(x))}"
