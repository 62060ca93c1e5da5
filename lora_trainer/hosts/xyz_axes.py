"""Register the "LoRA epoch" and "LoRA weight" axes in the host's built-in X/Y/Z plot script.

Called from our ``scripts/`` file at import time: the only moment that works in every mode
(root scripts such as ``xyz_grid.py`` are loaded before extension scripts; ``on_before_ui``
comes too late under ``--nowebui``). "Reload UI" re-executes ``xyz_grid.py`` with a fresh
``axis_options`` and then our script file, which registers again. The behaviour of the axes
lives in ``lora_trainer.evaluate.grid_axes``; this module only finds the script and wraps them
in its own ``AxisOption`` class (the base class itself, so that both txt2img and img2img list
them: the script filters with an exact type check).
"""
from __future__ import annotations

import logging
import sys
from typing import Callable

from ..evaluate.grid_axes import EpochAxis, WeightAxis

log = logging.getLogger(__name__)
XYZ_MODULE_NAMES = ("xyz_grid.py", "xy_grid.py")


def find_xyz_module():
    """The loaded X/Y/Z plot script module, or None (not loaded yet, or removed by the user)."""
    scripts = sys.modules.get("modules.scripts")
    if scripts is None:
        try:
            import modules.scripts as scripts  # noqa: F811 (only inside the WebUI)
        except ImportError:
            return None
    for data in list(getattr(scripts, "scripts_data", []) or []):
        script_class = getattr(data, "script_class", None)
        if getattr(script_class, "__module__", None) in XYZ_MODULE_NAMES:
            module = getattr(data, "module", None)
            if module is not None and hasattr(module, "AxisOption") and hasattr(module, "axis_options"):
                return module
    return None


def build_axes(xyz, get_lora_dir: Callable[[], str], with_prepare: bool = True,
               language: Callable[[], str] | None = None) -> list:
    """The two ``xyz.AxisOption`` objects (``with_prepare``: our epoch-range parser for text values;
    ``language``: the WebUI's language, which their refusals are written in)."""
    epoch, weight = EpochAxis(get_lora_dir, language), WeightAxis(get_lora_dir, language)
    extra = {"prepare": epoch.prepare} if with_prepare else {}
    return [
        xyz.AxisOption(epoch.label, str, epoch.apply, format_value=epoch.format_value, confirm=epoch.confirm,
                       cost=epoch.cost, choices=epoch.choices, **extra),
        xyz.AxisOption(weight.label, float, weight.apply, format_value=weight.format_value,
                       confirm=weight.confirm, cost=weight.cost),
    ]


def register_axes(get_lora_dir: Callable[[], str], language: Callable[[], str] | None = None) -> bool:
    """Add (or replace, by label) our two axes in the X/Y/Z plot script; True when it was found.

    ``get_lora_dir`` returns the host's LoRA folder (``--lora-dir`` or ``models/Lora``) at call time,
    ``language`` the host's UI language ("zh_CN" or "en"), also at call time.
    Safe to call any number of times."""
    xyz = find_xyz_module()
    if xyz is None:
        log.info("LoRA Trainer: the X/Y/Z plot script is not loaded; the LoRA epoch/weight axes are not added")
        return False
    try:
        options = build_axes(xyz, get_lora_dir, language=language)
    except TypeError:  # an AxisOption without prepare= (older hosts): values are then plain CSV
        options = build_axes(xyz, get_lora_dir, with_prepare=False, language=language)
    for option in options:
        index = next((i for i, o in enumerate(xyz.axis_options) if getattr(o, "label", None) == option.label), None)
        if index is None:
            xyz.axis_options.append(option)
        else:  # the same script ran twice without a reload: keep the position, use the new code
            xyz.axis_options[index] = option
    return True
