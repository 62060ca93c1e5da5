"""``<lora:NAME:W>`` tags in a prompt: find them, rename them, reweight them, add one.

The hosts read extra-network tags as ``<kind:item:item…>`` (A1111 and Forge: ``lora``; A1111
also ``lyco``); the first item is the name (a file stem), the next positional items the
text-encoder and UNet multipliers, and ``key=value`` items named parameters (``te``, ``unet``,
``dyn``). Pure string work: no host, no files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

TAG_RE = re.compile(r"<(lora|lyco):([^>]+)>", re.IGNORECASE)
WEIGHT_KEYS = ("te", "unet")


def format_weight(weight: float) -> str:
    """0.6 → "0.6", 1.0 → "1", 0.30000000000000004 → "0.3" (what goes into a tag or a legend)."""
    text = f"{round(float(weight), 4):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class LoraTag:
    start: int
    end: int
    kind: str                  # "lora" or "lyco", as written
    name: str                  # stripped
    items: tuple[str, ...]     # everything after the name, as written

    @property
    def text(self) -> str:
        return "<" + ":".join((self.kind, self.name) + self.items) + ">"

    @property
    def weight(self) -> float | None:
        """The text-encoder multiplier (the first positional item, else ``te=``); None when absent."""
        for item in self.items:
            if "=" in item:
                key, _, value = item.partition("=")
                if key.strip() == "te":
                    return _float(value)
                continue
            return _float(item)
        return None

    def renamed(self, name: str) -> "LoraTag":
        return LoraTag(self.start, self.end, self.kind, name, self.items)

    def reweighted(self, weight: float) -> "LoraTag":
        """Every multiplier set to ``weight``: the first two positional items (te, unet) and ``te=``/
        ``unet=``; other items (``dyn=``…) kept. A tag without one gets ``weight`` appended."""
        text = format_weight(weight)
        items, positional, changed = [], 0, False
        for item in self.items:
            if "=" in item:
                key, _, _ = item.partition("=")
                if key.strip() in WEIGHT_KEYS:
                    item, changed = f"{key.strip()}={text}", True
            elif positional < 2:
                item, positional, changed = text, positional + 1, True
            items.append(item)
        if not changed:
            items.insert(0, text)
        return LoraTag(self.start, self.end, self.kind, self.name, tuple(items))


def _float(value: str) -> float | None:
    try:
        return float(value.strip())
    except ValueError:
        return None


def find_lora_tags(prompt: str) -> list[LoraTag]:
    tags = []
    for match in TAG_RE.finditer(prompt or ""):
        parts = match.group(2).split(":")
        tags.append(LoraTag(match.start(), match.end(), match.group(1), parts[0].strip(), tuple(parts[1:])))
    return tags


def replace_tag(prompt: str, tag: LoraTag, new: LoraTag) -> str:
    return prompt[: tag.start] + new.text + prompt[tag.end:]


def has_words(prompt: str, words: str) -> bool:
    """Whether ``words`` (e.g. a trigger word) already occurs in ``prompt``, outside LoRA tags, as whole words."""
    text = TAG_RE.sub(" ", prompt or "")
    needle = words.strip()
    if not needle:
        return True
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", text, re.IGNORECASE) is not None


def add_lora(prompt: str, name: str, weight: float, trigger: str = "") -> str:
    """``prompt`` with ``<lora:name:weight>`` appended and ``trigger`` put in front when it is missing."""
    text = (prompt or "").rstrip()
    if trigger and not has_words(text, trigger):
        text = f"{trigger}, {text}" if text else trigger
    tag = f"<lora:{name}:{format_weight(weight)}>"
    return f"{text} {tag}" if text else tag


def set_lora(prompt: str, belongs: Callable[[str], bool], *, name: str | None = None,
             weight: float | None = None) -> tuple[str, bool]:
    """Rename and/or reweight the first tag whose name ``belongs``; (new prompt, whether one was found)."""
    for tag in find_lora_tags(prompt):
        if belongs(tag.name):
            new = tag
            if name is not None:
                new = new.renamed(name)
            if weight is not None:
                new = new.reweighted(weight)
            return replace_tag(prompt, tag, new), True
    return prompt, False


def set_last_lora_weight(prompt: str, weight: float) -> tuple[str, bool]:
    """Reweight the last LoRA tag of ``prompt``; (new prompt, whether it had one)."""
    tags = find_lora_tags(prompt)
    if not tags:
        return prompt, False
    return replace_tag(prompt, tags[-1], tags[-1].reweighted(weight)), True
