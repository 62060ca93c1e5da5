"""Build an X/Y/Z plot request for the hosts' HTTP API (``/sdapi/v1/txt2img``, ``script_name``).

Axis types are passed as indexes into the list the script built for that tab, which depends on
the host, its version and other extensions: they are looked up by label in the answer of
``GET /sdapi/v1/script-info``. Values are passed as text with "use text inputs" on, so axes
with a dropdown (like "LoRA epoch") read them through their own parser.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import TrainerError
from .messages import msg

XYZ_SCRIPT_NAME = "x/y/z plot"
NOTHING = "Nothing"
CSV_MODE_LABEL = "Use text inputs instead of dropdowns"
AXIS_SLOTS = 9   # (type, values text, values dropdown) × X, Y, Z: the same first nine in every version


def xyz_script_info(script_info: Sequence[dict], is_img2img: bool = False) -> dict:
    for entry in script_info:
        if str(entry.get("name", "")).lower() == XYZ_SCRIPT_NAME and bool(entry.get("is_img2img")) == is_img2img:
            return entry
    raise TrainerError(msg("xyz.no_script_img2img" if is_img2img else "xyz.no_script"), msg("xyz.no_script.advice"))


def axis_index(script_info: Sequence[dict], label: str, is_img2img: bool = False) -> int:
    """Index of the axis ``label`` in the X type dropdown of that tab."""
    entry = xyz_script_info(script_info, is_img2img)
    choices = list((entry.get("args") or [{}])[0].get("choices") or [])
    if label not in choices:
        raise TrainerError(msg("xyz.no_axis", label=label), msg("xyz.no_axis.advice"))
    return choices.index(label)


def _text(values: Any) -> str:
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    from .prompt_tags import format_weight

    return ", ".join(format_weight(v) if isinstance(v, float) else str(v) for v in values)


def xyz_script_args(script_info: Sequence[dict], x: tuple[str, Any], y: tuple[str, Any] | None = None,
                    z: tuple[str, Any] | None = None, *, is_img2img: bool = False,
                    overrides: dict[str, Any] | None = None) -> list:
    """``script_args`` for the X/Y/Z plot: each axis as (label, values) with values a text ("1-10")
    or a list; the remaining arguments keep the script's defaults, except "use text inputs" (on)
    and any ``overrides`` given by argument label (e.g. {"Draw legend": True})."""
    entry = xyz_script_info(script_info, is_img2img)
    args_info = list(entry.get("args") or [])
    if len(args_info) < AXIS_SLOTS:
        raise TrainerError(msg("xyz.unexpected_args"), msg("xyz.unexpected_args.advice"))
    args: list = [a.get("value") for a in args_info]
    for slot, axis in enumerate((x, y, z)):
        label, values = axis if axis is not None else (NOTHING, "")
        args[slot * 3] = axis_index(script_info, label, is_img2img)
        args[slot * 3 + 1] = _text(values)
        args[slot * 3 + 2] = []
    wanted = {CSV_MODE_LABEL: True, **(overrides or {})}
    for index in range(AXIS_SLOTS, len(args_info)):
        label = args_info[index].get("label")
        if label in wanted:
            args[index] = wanted[label]
    return args


def txt2img_payload(script_info: Sequence[dict], prompt: str, x: tuple[str, Any], y: tuple[str, Any] | None = None,
                    z: tuple[str, Any] | None = None, **fields: Any) -> dict:
    """A ``/sdapi/v1/txt2img`` body rendering the grid; ``fields`` are the usual generation fields."""
    return {"prompt": prompt, **fields, "script_name": XYZ_SCRIPT_NAME,
            "script_args": xyz_script_args(script_info, x, y, z)}
