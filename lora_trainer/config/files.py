"""Config in and out: TOML files (ours and kohya's), CLI flags, plain dicts.

Everything is derived from ``TrainConfig``'s fields, so a new field appears in the
CLI, the TOML files and the UI without further edits.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from typing import Any, Iterable

from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from .schema import TrainConfig
from .validation import field_type

# kohya keys we accept without warning because we handle the matter ourselves
# (attention backend, data loading, model family detection) or they only concern kohya's GUI; each with why,
# as a keyed sentence.
HANDLED_KOHYA_KEYS = {
    "v2": msg("files.handled.family"), "sdxl": msg("files.handled.family"),
    "xformers": msg("files.handled.sdpa"), "sdpa": msg("files.handled.sdpa"), "mem_eff_attn": msg("files.handled.sdpa"),
    "save_model_as": msg("files.handled.safetensors"),
    "max_data_loader_n_workers": msg("files.handled.loader"),
    "persistent_data_loader_workers": msg("files.handled.loader"),
    "vae_batch_size": msg("files.handled.vae_batch"),
    "lowram": msg("files.handled.not_needed"), "highvram": msg("files.handled.not_needed"),
    "log_with": msg("files.handled.logs"),
    "log_prefix": msg("files.handled.run_names"),
    "console_log_simple": msg("files.handled.not_needed"),
    "huggingface_repo_id": msg("files.handled.no_upload"), "huggingface_token": msg("files.handled.no_upload"),
    "cache_text_encoder_outputs": msg("files.handled.automatic"),
}

# Older kohya spellings mapped onto today's fields.
KINDS = {bool: "config.kind.bool", int: "config.kind.int", float: "config.kind.float", list: "files.kind.list",
         str: "files.kind.str"}
LEGACY_KEYS = {"use_8bit_adam": ("optimizer_type", "AdamW8bit"),
               "use_lion_optimizer": ("optimizer_type", "Lion")}


def load_toml_text(text: str, source: str) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # the WebUI's Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            try:
                import toml  # type: ignore
                return toml.loads(text)
            except ModuleNotFoundError:
                raise ConfigError(msg("files.no_toml_reader", source=source), msg("files.install_tomli")) from None
    try:
        return tomllib.loads(text)
    except Exception as err:  # tomllib.TOMLDecodeError and toml's equivalent
        raise ConfigError(msg("files.bad_toml", source=source, reason=err), msg("files.bad_toml.advice")) from None


def read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ConfigError(msg("files.unreadable", path=path, reason=err.strerror)) from None
    text = raw.decode("utf-8-sig", errors="replace")
    return load_toml_text(text, path)


def flatten_kohya(data: dict) -> dict:
    """kohya accepts values at top level or inside any [section]; flatten both. A setting's own name is
    never a section: its value stays, to be refused when it is not a value."""
    flat: dict[str, Any] = {}
    names = TrainConfig.field_names()
    for key, value in data.items():
        if isinstance(value, dict) and key not in names:
            flat.update(value)
        else:
            flat[key] = value
    return flat


def coerce(name: str, value: Any) -> Any:
    """Convert a TOML/CLI/JSON value to the field's type, or raise ConfigError in plain words."""
    f = next(x for x in TrainConfig.fields() if x.name == name)
    base, optional = field_type(f)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")
                         and base is not str):
        if optional or base is str:
            return None if optional else ""
        raise ConfigError(msg("config.needs_value", name=name))
    if isinstance(value, str) and value.strip() == "" and optional:
        return None
    kind = msg(KINDS[base]) if base in KINDS else base.__name__
    if isinstance(value, (dict, set)) or (isinstance(value, bool) and base is not bool):
        raise ConfigError(msg("config.wrong_type", name=name, value=repr(value), kind=kind))
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(value, int):
                return value
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if base is float:
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(msg("files.not_finite", name=name, value=repr(value)))
            return number
        if base is list:
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("["):
                    value = json.loads(text)
                else:
                    return [v for v in text.split() if v]
            if not isinstance(value, (list, tuple)) or \
                    not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
                raise ValueError
            return [str(v) for v in value]
        if base is str:
            if name == "resolution" and isinstance(value, (list, tuple, int, float)):
                values = value if isinstance(value, (list, tuple)) else [value]
                if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in values):
                    raise ValueError
                return ",".join(str(v) for v in values)
            if not isinstance(value, str):
                raise ValueError
            return value
    except (ValueError, TypeError, OverflowError, json.JSONDecodeError):
        raise ConfigError(msg("config.wrong_type", name=name, value=repr(value), kind=kind)) from None
    return value


def config_from_dict(data: dict, *, base: TrainConfig | None = None,
                     source: str = "settings") -> tuple[TrainConfig, list[str]]:
    """Build a config from a (possibly kohya) dict; return it with warnings about ignored keys."""
    cfg = base or TrainConfig()
    names = TrainConfig.field_names()
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    unknown: list[str] = []
    problems: list[str] = []
    for key, value in flatten_kohya(data).items():
        if key in names:
            try:
                changes[key] = coerce(key, value)
            except ConfigError as err:
                problems.extend(err.problems)
        elif key in LEGACY_KEYS:
            target, replacement = LEGACY_KEYS[key]
            if coerce_bool_loose(value):
                changes[target] = replacement
        elif key in HANDLED_KOHYA_KEYS:
            continue
        else:
            unknown.append(key)
    if problems:
        raise ConfigError([msg("files.in_source", problem=p, source=source) for p in problems])
    if unknown:
        warnings.append(sentence("files.ignored", source=source, names=", ".join(sorted(unknown))))
    return dataclasses.replace(cfg, **changes), warnings


def coerce_bool_loose(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def load_config(path: str, overrides: dict | None = None) -> tuple[TrainConfig, list[str]]:
    """Load a TOML file (ours or kohya's) and apply overrides (e.g. from CLI flags)."""
    cfg, warnings = config_from_dict(read_toml(path), source=os.path.basename(path))
    if overrides:
        cfg, more = config_from_dict(overrides, base=cfg, source=sentence("files.command_line"))
        warnings += more
    return cfg, warnings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


SETTINGS_HEADER = "# LoRA training settings (kohya sd-scripts compatible names)"


def to_toml(cfg: TrainConfig, names: Iterable[str] | None = None, header: str = SETTINGS_HEADER) -> str:
    """Flat TOML that both this trainer and kohya's sd-scripts read. Empty values are left out, except
    where this trainer's default is not empty (``"none"``: kohya's default there is empty too). ``names``:
    only these fields (a preset leaves the paths out)."""
    lines = [header]
    section = None
    wanted = None if names is None else set(names)
    for f in TrainConfig.fields():
        if wanted is not None and f.name not in wanted:
            continue
        value = getattr(cfg, f.name)
        if f.metadata.get("section") != section:
            section = f.metadata.get("section")
            lines.append(f"\n# --- {section} ---")
        if value is None and f.default not in (None, dataclasses.MISSING):
            # empty where the default is not (e.g. epochs left empty to train by steps): an omitted
            # key would load as the default, so the emptiness is written out
            lines.append(f'{f.name} = "none"')  # internal: a line of TOML, not a sentence
            continue
        if value is None or value == "" or value == []:
            lines.append(f"# {f.name} =")
            continue
        lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def save_config(cfg: TrainConfig, path: str, names: Iterable[str] | None = None,
                header: str = SETTINGS_HEADER) -> None:
    """``to_toml`` written atomically (the previous file stays whole if the write fails)."""
    from ..io.atomic import atomic_write
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(to_toml(cfg, names, header))


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--name`` flag per config field; values are parsed by ``coerce`` later."""
    group = parser.add_argument_group("training settings (override the config file)")
    for f in TrainConfig.fields():
        base, _ = field_type(f)
        kwargs: dict[str, Any] = {"dest": f"cfg_{f.name}", "default": argparse.SUPPRESS,
                                  "help": f.metadata.get("help", "")}
        if base is bool:
            kwargs.update(nargs="?", const="true", metavar="true|false")
        elif base is list:
            kwargs.update(nargs="*", metavar="VALUE")
        else:
            kwargs["metavar"] = base.__name__.upper()
            if f.metadata.get("choices"):
                kwargs["help"] += f" Choices: {', '.join(f.metadata['choices'])}."
        group.add_argument(f"--{f.name}", **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg_")}


def iter_fields(group: str | None = None) -> Iterable[dataclasses.Field]:
    """Fields for a form, optionally only one group ("basic"/"advanced")."""
    for f in TrainConfig.fields():
        if group is None or f.metadata.get("group") == group:
            yield f
