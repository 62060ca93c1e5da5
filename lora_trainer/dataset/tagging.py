"""Auto-tagging, the part every tagger shares: the tagger interface, the WebUI's own interrogators as taggers,
the options, and how tags become a caption.

A tagger has a ``name`` (a stable key), a ``label`` (what a list shows) and ``tag(image, options)`` →
``[(tag, confidence), …]``, best first. The WebUI's DeepBooru and CLIP reach this module as plain callables
``fn(image) -> str`` (the host adapter's ``interrogate``): nothing here imports the WebUI.

DeepBooru answers ``tag, tag, (tag:0.912), artist \\(style\\)`` (weights when the WebUI's "return ranks"
setting is on, parentheses escaped when "escape" is on); CLIP answers a sentence, optionally followed by
``, flavour, flavour``. Both are read into tags here; their own thresholds are the WebUI's settings
(Settings → Interrogate), ours apply to the WD14 tagger.

Captions are kohya's: one line of comma-separated tags, the concept's trigger word first. Tags are
compared without case, with ``_`` and space alike, so ``long_hair`` and ``Long hair`` are one tag.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

from ..data.captions import normalize_extension, split_tags
from ..errors import DatasetError
from ..text.messages import msg
from . import messages_tagging  # noqa: F401  (registers the sentences)
from .messages import joined

TagScores = list[tuple[str, float]]
EXISTING_MODES = ("append", "replace", "skip")

# Tags that are pictures themselves: their underscore is part of the face (the WD14 models' own list).
KAOMOJIS = frozenset({"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9",
                      ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"})
_WEIGHTED = re.compile(r"^\((?P<tag>.*):(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\)$", re.DOTALL)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_EXTENSION = re.compile(r"^\.[A-Za-z0-9_-]{1,16}$")


class Tagger:
    """What every tagger offers. ``tag`` returns tags as the tagger spells them (underscores kept);
    :func:`clean_tags` makes them caption tags."""

    name: str = ""           # stable key: "deepbooru", "clip", "wd14:<model folder>"
    label: str = ""          # what a list shows
    kind: str = "tags"       # "tags" (one tag each) or "sentence" (a description, CLIP)

    def tag(self, image, options: "TagOptions | None" = None) -> TagScores:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the tagger holds (a model session); it loads again when used."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


@dataclass
class TagOptions:
    """What the user chose for a tagging run (the WD14 thresholds; the rest applies to every tagger)."""

    general_threshold: float = 0.35       # WD14: general tags at least this confident
    character_threshold: float = 0.85     # WD14: character tags at least this confident
    include_ratings: bool = False         # WD14: add the most likely rating tag (general, sensitive, …)
    exclude: Sequence[str] | str = field(default_factory=list)   # tags never written; "*" matches any text
    underscores_to_spaces: bool = True    # long_hair → long hair (kaomoji like ^_^ kept)
    existing: str = "append"              # an existing caption: append new tags, replace it, or skip the image
    trigger: str | None = None            # first tag; None: the concept's trigger inside a project, "": none
    caption_extension: str = ".txt"

    def checked(self) -> "TagOptions":
        """A copy with every setting checked and normalised; ``DatasetError`` names the bad one."""
        problems = []
        thresholds = {}
        for what in ("general_threshold", "character_threshold"):
            value = getattr(self, what)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, bool) or not 0.0 <= number <= 1.0:
                problems.append(msg("tag.bad_threshold", what=msg(f"tag.{what}"), value=repr(value)))
            thresholds[what] = number
        if self.existing not in EXISTING_MODES:
            problems.append(msg("tag.bad_mode", mode=self.existing))
        extension = normalize_extension(self.caption_extension)
        if not _EXTENSION.match(extension) or extension.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            problems.append(msg("tag.bad_extension", extension=self.caption_extension))
        trigger = self.trigger
        if trigger is not None:
            trigger = " ".join(str(trigger).split())
            if "," in trigger:
                problems.append(msg("tag.comma_trigger", trigger=trigger))
        if problems:
            raise DatasetError(msg("tag.bad_settings", problems=joined(problems, "list.semicolon")),
                               msg("tag.bad_settings.advice"))
        return replace(self, exclude=exclude_list(self.exclude), caption_extension=extension, trigger=trigger,
                       **thresholds)


def exclude_list(exclude: Sequence[str] | str | None) -> list[str]:
    """Excluded tags from a list or from text (commas or new lines between them)."""
    if not exclude:
        return []
    if isinstance(exclude, str):
        exclude = re.split(r"[,\n]", exclude)
    return [str(e).strip() for e in exclude if str(e).strip()]


# --- tags ------------------------------------------------------------------------------------------
def is_kaomoji(tag: str) -> bool:
    """``^_^``, ``>_<``: the underscore is the mouth, not a space."""
    tag = tag.strip()
    return tag in KAOMOJIS or ("_" in tag and len(tag) <= 8 and not any(c.isalnum() for c in tag))


def unescape(tag: str) -> str:
    """``artist \\(style\\)`` → ``artist (style)`` (the WebUI escapes parentheses for prompts)."""
    return _ESCAPED.sub(r"\1", tag)


def caption_tag(tag: str, underscores_to_spaces: bool = True) -> str:
    """A tag as it is written into a caption: one line, no comma, spaces collapsed, ``_`` → space
    unless it is a kaomoji."""
    tag = " ".join(str(tag).replace(",", " ").split())
    if underscores_to_spaces and not is_kaomoji(tag):
        tag = " ".join(tag.replace("_", " ").split())
    return tag


def tag_key(tag: str) -> str:
    """What two spellings of one tag share: no case, ``_`` = space, escapes undone."""
    tag = unescape(str(tag)).strip()
    if not is_kaomoji(tag):
        tag = tag.replace("_", " ")
    return " ".join(tag.lower().split())


def _exclusion_matchers(exclude: Iterable[str]) -> list[Callable[[str], bool]]:
    matchers = []
    for pattern in exclude:
        key = tag_key(pattern)
        if not key:
            continue
        if "*" in key:
            regex = re.compile(".*".join(re.escape(part) for part in key.split("*")), re.DOTALL)
            matchers.append(regex.fullmatch)
        else:
            matchers.append(key.__eq__)
    return matchers


def clean_tags(scores: TagScores, options: TagOptions | None = None) -> TagScores:
    """A tagger's answer as caption tags: spelled for captions, excluded ones and repeats left out
    (the first, most confident, of each kept), order kept."""
    options = options or TagOptions()
    excluded = _exclusion_matchers(exclude_list(options.exclude))
    seen: set[str] = set()
    out: TagScores = []
    for tag, confidence in scores:
        text = caption_tag(tag, options.underscores_to_spaces)
        key = tag_key(text)
        if not key or key in seen or any(match(key) for match in excluded):
            continue
        seen.add(key)
        out.append((text, float(confidence)))
    return out


def merge_caption(existing: str | None, tags: Sequence[str], mode: str = "append", trigger: str = "") -> str | None:
    """The caption to write for an image, or None to leave its caption as it is.

    ``existing``: its caption now (None or "" when it has none); ``mode``: append the new tags after the
    existing ones (each tag once), replace them, or skip an image that has a caption. The trigger word
    goes first, once.
    """
    if mode not in EXISTING_MODES:
        raise DatasetError(msg("tag.unknown_mode", mode=mode), msg("tag.unknown_mode.advice"))
    current = split_tags(existing or "")
    if mode == "skip" and current:
        return None
    merged = (current if mode == "append" else []) + list(tags)
    trigger = " ".join((trigger or "").split())
    out, seen = ([trigger], {tag_key(trigger)}) if trigger else ([], set())
    for tag in merged:
        key = tag_key(tag)
        if key and key not in seen:
            seen.add(key)
            out.append(tag.strip())
    return ", ".join(out)


# --- the WebUI's interrogators -----------------------------------------------------------------------
def parse_interrogation(text: str) -> TagScores:
    """An interrogator's text as tags: ``a, (b:0.9), c \\(d\\)`` → ``[("a", 1.0), ("b", 0.9), ("c (d)", 1.0)]``.

    A tag without a weight counts as certain (the WebUI already applied its own threshold)."""
    if not isinstance(text, str):
        raise DatasetError(msg("tag.not_text", kind=type(text).__name__), msg("tag.not_text.advice"))
    out: TagScores = []
    for item in _split_unescaped(text.replace("\r", "\n").replace("\n", ",")):
        item = item.strip()
        if not item:
            continue
        weight = 1.0
        match = _WEIGHTED.match(item)
        if match and not item.endswith("\\)"):
            item, weight = match["tag"].strip(), float(match["weight"])
        tag = unescape(item).strip()
        if tag:
            out.append((tag, weight))
    return out


def _split_unescaped(text: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


HOST_LABELS = {"deepbooru": "DeepBooru (WebUI)", "clip": "CLIP (WebUI)"}


class HostTagger(Tagger):
    """One of the WebUI's interrogators, given as ``fn(image) -> str``."""

    def __init__(self, name: str, fn: Callable[[object], str], label: str | None = None, kind: str | None = None,
                 prepare: Callable[[], None] | None = None):
        if not callable(fn):
            raise TypeError(f"the interrogator for '{name}' must be callable")
        self.name = name
        self.fn = fn
        self.prepare = prepare
        self.label = label or HOST_LABELS.get(name, f"{name} (WebUI)")
        self.kind = kind or ("sentence" if name == "clip" else "tags")

    def load(self) -> None:
        """The host loads the interrogator's models: one that cannot run fails here, before any picture."""
        if self.prepare is not None:
            self.prepare()

    def tag(self, image, options: TagOptions | None = None) -> TagScores:
        return parse_interrogation(self.fn(image.convert("RGB") if image.mode != "RGB" else image))


def host_taggers(names: Iterable[str], interrogate: Callable[[object, str], str],
                 prepare: Callable[[str], None] | None = None) -> list[HostTagger]:
    """Taggers for the interrogators the host has (``host.interrogators()``, ``host.interrogate``,
    ``host.prepare_interrogator``)."""
    return [HostTagger(name, (lambda image, _name=name: interrogate(image, _name)),
                       prepare=(lambda _name=name: prepare(_name)) if prepare is not None else None)
            for name in names]
