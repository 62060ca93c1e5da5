"""The grid's render settings before it renders: defaults from the run (its training size, its trigger word and
its most frequent tags), the settings stored with the run's last grid, and how long the grid will take.

Gradio-free; ``grid.py`` renders and ``tab.py`` shows what these return.
"""
from __future__ import annotations

import dataclasses
import json
import os
from glob import escape, glob
from typing import Any

from ...evaluate.report import RunReport
from ...hosts.base import RenderSettings, render_work
from ...text.messages import msg, sentence
from .. import messages  # noqa: F401  (registers the tab's sentences)
from ..status import duration

SETTINGS_FILE = "grid.json"
PROMPT_TAGS = 4          # tags after the trigger word in the default prompt
MAX_DEFAULT_SIDE = 1024  # a default size never larger than this (SDXL's 1024 kept)
# what the Evaluate tab stores and restores of a grid, besides the render fields
GRID_FIELDS = ("epochs", "weights")


def prompt_from_tags(report: RunReport, trigger: str, count: int = PROMPT_TAGS) -> str:
    """The trigger word and the run's most frequent other tags ("zkz, circle, red background"): a prompt
    close to the captions the LoRA learned from. Just the trigger when the run kept no tag counts."""
    totals: dict[str, int] = {}
    for concept in report.summary.concepts:
        for tag, n in concept.tags.items():
            totals[tag.strip()] = totals.get(tag.strip(), 0) + int(n or 0)
    names = [trigger] + [c.name for c in report.summary.concepts]
    words = {n.strip().lower() for n in names} | {w for n in names for w in n.lower().split()}
    tags = [t for t, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))
            if t and t.lower() not in words][:count]   # the trigger ("zkz shapes") and its words ("zkz") once
    return ", ".join([trigger] + tags) if trigger else ", ".join(tags)


def trained_size(report: RunReport, config: dict | None = None) -> tuple[int, int]:
    """The size the run trained at (its metadata, else its job's settings), else 512 × 512."""
    size = report.summary.resolution
    if not size and config and config.get("resolution"):
        from ...config.schema import parse_resolution
        try:
            size = parse_resolution(config["resolution"])
        except Exception:   # a setting that does not read as a size
            size = None
    if not size:
        return 512, 512
    return tuple(min(MAX_DEFAULT_SIDE, max(64, int(side) // 8 * 8)) for side in size)   # type: ignore[return-value]


def stored_settings(report: RunReport, folders: list[str]) -> dict:
    """The settings of the run's newest grid (``grids/<time>/grid.json`` in the given folders), or {}."""
    found = []
    for folder in folders:
        found += glob(os.path.join(escape(folder), "grids", "*", SETTINGS_FILE))
    for path in sorted(found, key=lambda p: os.path.basename(os.path.dirname(p)), reverse=True):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def grid_defaults(report: RunReport, trigger: str, job: Any = None, stored: dict | None = None,
                  options: dict | None = None) -> dict:
    """Every render field of the grid for this run: the stored grid's settings when there is one, else the
    run's own size and prompt with the host's first sampler and schedule type."""
    config = getattr(job, "config", None) or {}
    width, height = trained_size(report, config)
    options = options or {}
    base = RenderSettings(prompts=[prompt_from_tags(report, trigger) or "{trigger}"], width=width, height=height,
                          sampler_name=_first(options.get("samplers"), RenderSettings.sampler_name),
                          scheduler=_first(options.get("schedulers"), RenderSettings.scheduler),
                          hires_upscaler=_first(options.get("upscalers"), RenderSettings.hires_upscaler))
    values = dataclasses.asdict(base)
    for key, value in (stored or {}).items():
        if key not in values or value is None:
            continue
        try:   # each stored value in the field's own type; one that does not convert keeps the default
            if key == "prompts":
                values[key] = [str(v) for v in value] if isinstance(value, list) and value else values[key]
            else:
                values[key] = type(values[key])(value)
        except (TypeError, ValueError):
            continue
    return values


def _first(names: Any, default: str) -> str:
    names = list(names or [])
    return default if not names or default in names else names[0]


def save_settings(folder: str, settings: Any) -> str:
    """``grid.json`` beside a rendered grid: its render fields, epochs and weights (restored next time)."""
    data = {f.name: getattr(settings, f.name) for f in dataclasses.fields(RenderSettings)}
    data.update({name: getattr(settings, name) for name in GRID_FIELDS if hasattr(settings, name)})
    path = os.path.join(folder, SETTINGS_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
    return path


def seconds_per_work(clock: Any, job: Any = None) -> float | None:
    """Seconds per megapixel-step: the host's recent renders, else the run's own previews (a record keeps the
    seconds each picture took)."""
    rate = clock.rate() if clock is not None else None
    if rate is not None:
        return rate
    settings = getattr(job, "preview_settings", None) or {}
    timed = [p.get("seconds") for p in (getattr(job, "previews", None) or [])
             if isinstance(p, dict) and isinstance(p.get("seconds"), (int, float)) and p["seconds"] > 0]
    if not timed or not settings:
        return None
    fields = {f.name for f in dataclasses.fields(RenderSettings)}
    try:
        preview = RenderSettings(**{k: v for k, v in settings.items() if k in fields})
        work = render_work(preview)
    except (TypeError, ValueError):
        return None
    return sorted(timed)[(len(timed) - 1) // 2] / work if work > 0 else None


def estimate_lines(images: int, settings: RenderSettings, rate: float | None) -> list[str]:
    """The grid's size and, once the host's speed is known, its render time, as lines for a message."""
    size = msg("grid.size_hires", width=settings.width, height=settings.height, scale=settings.hires_scale) \
        if settings.hires else msg("grid.size", width=settings.width, height=settings.height)
    lines = [sentence("grid.estimate", images=images, size=size, steps=settings.steps)]
    if rate is None:
        lines.append("The time shows after the first image: nothing was rendered here yet to measure it.")
    else:
        lines.append(sentence("grid.estimate_time", time=duration(rate * render_work(settings) * images),
                              seconds=rate * render_work(settings)))
    return lines
