"""Which language a caller reads: from the environment (the CLI) or an HTTP Accept-Language header."""
from __future__ import annotations

import os
from typing import Mapping

from .messages import normalize_language

ENVIRONMENT = ("LORA_TRAINER_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """"zh_CN" or "en" from LORA_TRAINER_LANGUAGE, then gettext's order (LANGUAGE, LC_ALL, LC_MESSAGES, LANG);
    the first one set decides, English when none is."""
    environ = os.environ if environ is None else environ
    for name in ENVIRONMENT:
        value = (environ.get(name) or "").split(":")[0].strip()
        if value:
            return normalize_language(value)
    return "en"


def language_from_accept(header: str | None) -> str:
    """"zh_CN" when Chinese is the caller's most preferred language in an Accept-Language header, else "en"."""
    best, best_q = "en", -1.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        if not tag:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = normalize_language(tag), q
    return best
