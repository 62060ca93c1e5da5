"""A sentence as (stable key, parameters): English in the code that says it, other languages by key.

Each package registers its English templates (``register``); ``Message.format(language)`` fills the
template of that language (``<language>.json`` beside this module, same keys and placeholders) and
falls back to English. The WebUI's own localization translates fixed texts by their exact English
wording; sentences with numbers in them need this. A ``Sentence`` is a message's English text that still
is a ``str`` (lists of problems and warnings stay strings) and keeps its message for other languages.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

ENGLISH: dict[str, str] = {}
LANGUAGES = ("en", "zh_CN")


def register(templates: Mapping[str, str]) -> None:
    """Add English templates; a key may not be registered twice with another text."""
    for key, text in templates.items():
        if ENGLISH.get(key, text) != text:
            raise ValueError(f"message key {key!r} registered twice with different texts")  # internal: our own tables
        ENGLISH[key] = text


@lru_cache(maxsize=None)
def translations(language: str) -> dict[str, str]:
    """The templates of ``language`` ("zh_CN"), empty for English or a language without a file."""
    code = normalize_language(language)
    path = Path(__file__).with_name(f"{code}.json")
    if code == "en" or not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def normalize_language(language: str | None) -> str:
    """"zh_CN", "zh-CN", "zh" → "zh_CN"; anything else → "en"."""
    text = str(language or "").replace("-", "_").lower()
    return "zh_CN" if text.startswith("zh") else "en"


@dataclass(frozen=True)
class Message:
    """One sentence: a stable ``key`` into the registered templates and the values that fill it."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def template(self) -> str:
        return ENGLISH[self.key]

    def __str__(self) -> str:
        return self.format("en")

    def format(self, language: str | Mapping[str, str] | None = "en") -> str:
        """The sentence in ``language`` (a code, or a table of templates), English where it has none; a value
        that is itself a ``Message`` (a word such as a goal) is put in the same language."""
        table = language if isinstance(language, Mapping) else translations(language or "en")
        template = table.get(self.key) or ENGLISH[self.key]
        params = {k: localized(v, language) if isinstance(v, Message) or hasattr(v, "in_language") else v
                  for k, v in self.params.items()}
        try:
            return template.format(**params)
        except (KeyError, ValueError, IndexError):
            return ENGLISH[self.key].format(**params)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "params": dict(self.params), "text": str(self)}


def msg(key: str, **params: Any) -> Message:
    if key not in ENGLISH:
        raise KeyError(f"unknown message key {key!r}")  # internal: a key our code names
    return Message(key, params)


class Sentence(str):
    """A message's English text as a ``str``; ``message`` keeps its key and values for other languages."""

    message: Message

    def __new__(cls, message: Message) -> "Sentence":
        text = super().__new__(cls, message.format("en"))
        text.message = message
        return text

    @property
    def key(self) -> str:
        return self.message.key

    def in_language(self, language: str | None) -> str:
        return self.message.format(language)

    def __reduce__(self) -> tuple:
        return Sentence, (self.message,)


def sentence(key: str, **params: Any) -> Sentence:
    """The English text of ``msg(key, **params)`` that ``localized`` puts into another language."""
    return Sentence(msg(key, **params))


class Joined(str):
    """Several sentences (or texts) as one English ``str``, joined by ``separator`` (text or a ``Message`` such as
    ``SEMICOLON``); ``localized`` joins them in another language (a table of lines, a list of tips)."""

    items: tuple

    def __new__(cls, items: Any, separator: Any = "\n") -> "Joined":
        items = tuple(items)
        text = super().__new__(cls, localized(separator, "en").join(localized(item, "en") for item in items))
        text.items, text.separator = items, separator
        return text

    def in_language(self, language: str | None) -> str:
        return localized(self.separator, language).join(localized(item, language) for item in self.items)

    def __reduce__(self) -> tuple:
        return Joined, (self.items, self.separator)


class Translated(str):
    """A text read back from a record: English as the ``str``, ``others`` by language code."""

    others: dict

    def __new__(cls, text: str, others: Mapping[str, str]) -> "Translated":
        value = super().__new__(cls, text)
        value.others = {code: str(t) for code, t in others.items() if t}
        return value

    def in_language(self, language: str | None) -> str:
        return self.others.get(normalize_language(language), str(self))

    def __reduce__(self) -> tuple:
        return Translated, (str(self), self.others)


def translations_of(texts: list, language: str) -> list[str]:
    """``texts`` in ``language`` (kept in a record beside the English, so a restart keeps both)."""
    return [localized(text, language) for text in texts]


def read_back(texts: list, others: Mapping[str, list]) -> list:
    """English ``texts`` of a record with their other languages (``{"zh_CN": [...]}``, same order)."""
    return [Translated(text, {code: lines[i] for code, lines in others.items()
                              if isinstance(lines, list) and i < len(lines) and isinstance(lines[i], str)})
            if isinstance(text, str) else text for i, text in enumerate(texts)]


def localized(value: Any, language: str | None = "en") -> str:
    """A ``Message``, or a text that knows its other languages (``in_language``: ``Sentence``, ``Joined``), in
    ``language``; any other value as its text."""
    if isinstance(value, Message):
        return value.format(language)
    in_language = getattr(value, "in_language", None)
    return in_language(language) if callable(in_language) else str(value)


def key_of(value: Any) -> str | None:
    """The message key of a ``Message`` or ``Sentence``; None for plain text."""
    return value.key if isinstance(value, (Message, Sentence)) else None


register({"text.semicolon": "; "})
SEMICOLON = Message("text.semicolon")
