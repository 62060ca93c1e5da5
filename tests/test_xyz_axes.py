"""The "LoRA epoch" / "LoRA weight" axes inside a fake X/Y/Z plot script.

The fake ``xyz_grid.py`` module reproduces what the hosts' script does with axes (A1111 1.10 /
Forge): the exact-type filter of ``ui()``, values from the dropdown or through ``prepare`` /
CSV, int/float range expansion, ``type()``, ``confirm`` before any cell, a shallow ``copy(p)``
per cell with X, Y, Z ``apply`` in that order. "Rendering" a cell records its prompts.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import re
import sys
import types
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from lora_trainer.evaluate.grid_axes import EPOCH_LABEL, WEIGHT_LABEL, AxisError
from lora_trainer.io.safetensors_header import encode_header
from lora_trainer.evaluate.xyz_api import axis_index, txt2img_payload, xyz_script_args
from lora_trainer.hosts.xyz_axes import find_xyz_module, register_axes

# --- a fake host ---------------------------------------------------------------------------------

ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
Component = namedtuple("Component", ["label", "value", "choices"])
_RANGE_FLOAT = re.compile(r"\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)\s*\[(\d+)\s*]\s*")


def make_xyz_module() -> types.ModuleType:
    """A fresh ``xyz_grid.py`` module object, as the host creates one at start and at each Reload UI."""
    mod = types.ModuleType("xyz_grid.py")

    class AxisOption:
        def __init__(self, label, type, apply, format_value=None, confirm=None, cost=0.0, choices=None,
                     prepare=None):
            self.label, self.type, self.apply, self.confirm = label, type, apply, confirm
            self.format_value = format_value or (lambda p, opt, x: f"{opt.label}: {x}")
            self.cost, self.choices, self.prepare = cost, choices, prepare

    class AxisOptionImg2Img(AxisOption):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.is_img2img = True

    class AxisOptionTxt2Img(AxisOption):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.is_img2img = False

    def apply_prompt(p, x, xs):
        p.prompt = p.prompt.replace(xs[0], x)

    def csv_list(text):
        return [v.strip() for row in csv.reader(io.StringIO(text)) for v in row]

    mod.AxisOption, mod.AxisOptionImg2Img, mod.AxisOptionTxt2Img = AxisOption, AxisOptionImg2Img, AxisOptionTxt2Img
    mod.axis_options = [
        AxisOption("Nothing", str, lambda p, x, xs: None, format_value=lambda p, o, x: ""),
        AxisOption("Seed", int, lambda p, x, xs: setattr(p, "seed", x)),
        AxisOption("Prompt S/R", str, apply_prompt, format_value=lambda p, o, x: x),
        AxisOptionTxt2Img("Hires steps", int, lambda p, x, xs: None),
        AxisOptionImg2Img("Image CFG Scale", float, lambda p, x, xs: None),
    ]

    class Script:
        def title(self):
            return "X/Y/Z plot"

        def ui(self, is_img2img):
            self.current_axis_options = [x for x in mod.axis_options
                                         if type(x) == AxisOption or x.is_img2img == is_img2img]  # noqa: E721
            labels = [x.label for x in self.current_axis_options]
            comps = []
            for axis in "XYZ":
                comps += [Component(f"{axis} type", labels[1] if axis == "X" else labels[0], labels),
                          Component(f"{axis} values", "", None), Component(f"{axis} values", [], None)]
            comps += [Component("Draw legend", True, None), Component("Include Sub Images", False, None),
                      Component("Include Sub Grids", False, None), Component("Keep -1 for seeds", False, None),
                      Component("Vary seeds for X", False, None), Component("Vary seeds for Y", False, None),
                      Component("Vary seeds for Z", False, None), Component("Grid margins (px)", 0, None),
                      Component("Use text inputs instead of dropdowns", False, None)]
            return comps

        def run(self, p, x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type,
                z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds,
                vary_seeds_x, vary_seeds_y, vary_seeds_z, margin_size, csv_mode):
            def process_axis(opt, vals, vals_dropdown):
                if opt.label == "Nothing":
                    return [0]
                if opt.choices is not None and not csv_mode:
                    values = vals_dropdown
                elif opt.prepare is not None:
                    values = opt.prepare(vals)
                else:
                    values = csv_list(vals)
                if opt.type == float:
                    expanded = []
                    for v in values:
                        m = _RANGE_FLOAT.fullmatch(v) if isinstance(v, str) else None
                        expanded += np.linspace(float(m[1]), float(m[2]), int(m[3])).tolist() if m else [v]
                    values = expanded
                values = [opt.type(v) for v in values]
                if opt.confirm:
                    opt.confirm(p, values)
                return values

            opts = [self.current_axis_options[i] for i in (x_type, y_type, z_type)]
            axes = [process_axis(o, v, d) for o, v, d in zip(opts, (x_values, y_values, z_values),
                                                              (x_values_dropdown, y_values_dropdown, z_values_dropdown))]
            labels = [[o.format_value(p, o, v) for v in vs] for o, vs in zip(opts, axes)]
            cells = {}
            for iz, z in enumerate(axes[2]):
                for iy, y in enumerate(axes[1]):
                    for ix, x in enumerate(axes[0]):
                        pc = copy.copy(p)
                        for opt, value, values in zip(opts, (x, y, z), axes):
                            opt.apply(pc, value, values)
                        cells[(ix, iy, iz)] = (pc.prompt, pc.hr_prompt)   # "render" the cell
            return types.SimpleNamespace(labels=labels, cells=cells)

    Script.__module__ = "xyz_grid.py"   # what the host's script loader names the module
    mod.Script = Script
    return mod


class Processing:
    """The few fields of a processing object the axes touch."""

    def __init__(self, prompt="", hr_prompt=""):
        self.prompt, self.negative_prompt, self.hr_prompt, self.seed = prompt, "", hr_prompt, 1


@pytest.fixture
def host(monkeypatch):
    """``modules.scripts.scripts_data`` with the X/Y/Z script; ``host.reload()`` re-creates it (Reload UI)."""
    modules = types.ModuleType("modules")
    scripts = types.ModuleType("modules.scripts")
    modules.scripts = scripts
    monkeypatch.setitem(sys.modules, "modules", modules)
    monkeypatch.setitem(sys.modules, "modules.scripts", scripts)

    def reload():
        xyz = make_xyz_module()
        other = type("Other", (), {"__module__": "prompt_matrix.py"})
        scripts.scripts_data = [ScriptClassData(other, "scripts/prompt_matrix.py", ".", types.ModuleType("pm")),
                                ScriptClassData(xyz.Script, "scripts/xyz_grid.py", ".", xyz)]
        return xyz

    scripts.reload = reload
    scripts.xyz = reload()
    return scripts


def write_lora(path: Path, metadata: dict) -> None:
    raw = np.zeros(4, dtype="<f4").tobytes()
    header = {"__metadata__": metadata, "lora_unet_a.alpha": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_header(header) + raw)


@pytest.fixture
def lora_dir(tmp_path):
    root = tmp_path / "Lora"
    meta = {"ss_tag_frequency": json.dumps({"10_dreamgirl": {"dreamgirl": 20, "smile": 3}})}
    for e in (1, 2, 3, 4):
        write_lora(root / f"dreamgirl-{e:06d}.safetensors", {**meta, "ss_epoch": str(e)})
    write_lora(root / "dreamgirl.safetensors", meta)
    write_lora(root / "style.safetensors", {})       # an unrelated LoRA
    return root


def grid(xyz, p, x, y=None, z=None, is_img2img=False, csv_mode=True):
    """Run the fake script like the UI does: axis types as indexes of the tab's list; values as text
    ("Use text inputs instead of dropdowns" on) or, with ``csv_mode`` off, from the dropdowns."""
    script = xyz.Script()
    comps = script.ui(is_img2img)
    labels = comps[0].choices
    args = []
    for axis in (x, y, z):
        label, values, dropdown = axis if axis is not None else ("Nothing", "", [])
        args += [labels.index(label), values, dropdown]
    return script.run(p, *args, True, False, False, False, False, False, False, 0, csv_mode)


def epoch_axis(values: str, dropdown=None):
    return (EPOCH_LABEL, values, dropdown if dropdown is not None else [])


def weight_axis(values: str):
    return (WEIGHT_LABEL, values, [])


# --- registration ------------------------------------------------------------------------------------

def test_registered_once_for_txt2img_and_img2img_and_again_after_reload(host, lora_dir):
    assert register_axes(lambda: str(lora_dir)) is True
    assert register_axes(lambda: str(lora_dir)) is True      # the script file ran twice: no duplicate
    labels = [o.label for o in host.xyz.axis_options]
    assert labels.count(EPOCH_LABEL) == 1 and labels.count(WEIGHT_LABEL) == 1
    for is_img2img in (False, True):
        tab = [c.choices for c in host.xyz.Script().ui(is_img2img)][0]
        assert EPOCH_LABEL in tab and WEIGHT_LABEL in tab
    old = host.xyz
    new = host.reload()                                       # Reload UI: a fresh module and axis list
    assert find_xyz_module() is new and EPOCH_LABEL not in [o.label for o in new.axis_options]
    assert register_axes(lambda: str(lora_dir))
    assert [o.label for o in new.axis_options].count(EPOCH_LABEL) == 1
    assert type(new.axis_options[-1]) is new.AxisOption and new.axis_options[-1] is not old.axis_options[-1]
    result = grid(new, Processing("a photo <lora:dreamgirl:0.7>"), epoch_axis("2"))
    assert result.cells[(0, 0, 0)][0] == "a photo <lora:dreamgirl-000002:0.7>"


def test_no_xyz_script_means_no_registration(host, lora_dir):
    host.scripts_data = [d for d in host.scripts_data if d.script_class.__module__ != "xyz_grid.py"]
    assert register_axes(lambda: str(lora_dir)) is False
    host.scripts_data = []
    assert find_xyz_module() is None


def test_old_xy_grid_name_is_found(host):
    old = make_xyz_module()
    old.Script.__module__ = "xy_grid.py"
    host.scripts_data = [ScriptClassData(old.Script, "scripts/xy_grid.py", ".", old)]
    assert find_xyz_module() is old


def test_choices_list_the_runs_files(host, lora_dir):
    register_axes(lambda: str(lora_dir))
    epoch = next(o for o in host.xyz.axis_options if o.label == EPOCH_LABEL)
    assert epoch.choices() == ["dreamgirl-000001", "dreamgirl-000002", "dreamgirl-000003", "dreamgirl-000004",
                               "dreamgirl"]
    assert epoch.cost == 0.5 and epoch.type is str
    weight = next(o for o in host.xyz.axis_options if o.label == WEIGHT_LABEL)
    assert weight.type is float and weight.choices is None
    assert register_axes(lambda: str(lora_dir / "missing"))   # a LoRA folder that is gone: no choices, no error
    missing = next(o for o in host.xyz.axis_options if o.label == EPOCH_LABEL)
    assert missing.choices() == []


# --- apply / confirm ---------------------------------------------------------------------------------

@pytest.fixture
def xyz(host, lora_dir):
    register_axes(lambda: str(lora_dir))
    return host.xyz


def test_epoch_axis_rewrites_the_tag_and_keeps_its_weight(xyz):
    result = grid(xyz, Processing("dreamgirl, a photo <lora:style:0.5> <lora:dreamgirl:0.7>"),
                  epoch_axis("2-4 (+2), final"))
    prompts = [result.cells[(i, 0, 0)][0] for i in range(3)]
    assert prompts == ["dreamgirl, a photo <lora:style:0.5> <lora:dreamgirl-000002:0.7>",
                       "dreamgirl, a photo <lora:style:0.5> <lora:dreamgirl-000004:0.7>",
                       "dreamgirl, a photo <lora:style:0.5> <lora:dreamgirl:0.7>"]
    assert result.labels[0] == ["epoch 2", "epoch 4", "final"]


def test_epoch_axis_adds_the_tag_and_trigger_when_missing(xyz):
    result = grid(xyz, Processing("a photo, smiling"), epoch_axis("", ["dreamgirl-000001", "dreamgirl"]),
                  csv_mode=False)
    assert result.cells[(0, 0, 0)][0] == "dreamgirl, a photo, smiling <lora:dreamgirl-000001:1>"
    assert result.cells[(1, 0, 0)][0] == "dreamgirl, a photo, smiling <lora:dreamgirl:1>"
    assert result.labels[0] == ["epoch 1", "final"]


def test_trigger_from_the_cards_activation_text(xyz, lora_dir):
    (lora_dir / "dreamgirl.json").write_text(json.dumps({"activation text": "dgirl, red hair"}), encoding="utf-8")
    result = grid(xyz, Processing("portrait"), epoch_axis("3"))   # "3" is read against the only run
    assert result.cells[(0, 0, 0)][0] == "dgirl, red hair, portrait <lora:dreamgirl-000003:1>"


@pytest.mark.parametrize("epoch_on_x", [True, False])
def test_epoch_and_weight_together_in_either_order(xyz, epoch_on_x):
    epochs, weights = epoch_axis("1, 4"), weight_axis("0.6, 0.8")
    x, y = (epochs, weights) if epoch_on_x else (weights, epochs)
    for prompt in ("a photo", "a photo <lora:dreamgirl:1>"):
        result = grid(xyz, Processing(prompt), x, y)
        got = {}
        for (ix, iy, _), (text, _) in result.cells.items():
            e, w = (ix, iy) if epoch_on_x else (iy, ix)
            got[(e, w)] = text
        assert got[(0, 0)].endswith("<lora:dreamgirl-000001:0.6>") and got[(1, 1)].endswith("<lora:dreamgirl-000004:0.8>")
        assert all(t.count("<lora:") == 1 for t in got.values())
        weight_labels = result.labels[1] if epoch_on_x else result.labels[0]
        assert weight_labels == ["w 0.6", "w 0.8"]


def test_with_a_third_axis(xyz):
    result = grid(xyz, Processing("a cat <lora:dreamgirl:1>"), epoch_axis("1,2"), weight_axis("0.5"),
                  ("Prompt S/R", "cat,dog", []))
    assert result.cells[(1, 0, 1)][0] == "a dog <lora:dreamgirl-000002:0.5>"
    assert len(result.cells) == 4


def test_weight_axis_reweights_the_runs_tag_or_the_last_tag(xyz):
    result = grid(xyz, Processing("<lora:dreamgirl-000003:1> x <lora:style:0.5>"), weight_axis("0.3"))
    assert result.cells[(0, 0, 0)][0] == "<lora:dreamgirl-000003:0.3> x <lora:style:0.5>"
    result = grid(xyz, Processing("x <lora:other:0.9> <lora:style:0.5>"), weight_axis("0.4-1 [4]"))
    assert [result.cells[(i, 0, 0)][0] for i in range(4)][-1] == "x <lora:other:0.9> <lora:style:1>"
    assert result.labels[0] == ["w 0.4", "w 0.6", "w 0.8", "w 1"]


def test_weight_axis_without_any_tag_stops_before_the_first_image(xyz):
    with pytest.raises(AxisError, match="no <lora:NAME:weight> tag"):
        grid(xyz, Processing("a photo"), weight_axis("0.5, 1"))


def test_hires_prompt_follows_when_set(xyz):
    result = grid(xyz, Processing("a <lora:dreamgirl:0.7>", hr_prompt="a, detailed <lora:dreamgirl:0.7>"),
                  epoch_axis("2"), weight_axis("0.9"))
    assert result.cells[(0, 0, 0)] == ("a <lora:dreamgirl-000002:0.9>", "a, detailed <lora:dreamgirl-000002:0.9>")
    result = grid(xyz, Processing("a <lora:dreamgirl:0.7>"), epoch_axis("2"))
    assert result.cells[(0, 0, 0)][1] == ""   # empty: the host copies the final prompt itself


@pytest.mark.parametrize("values,message", [
    ("2, 7", "'7' names no saved file of the run 'dreamgirl'"),
    ("1, nosuchfile", "'nosuchfile' is not a saved file of a training run"),
    ("style", "'style' is not a saved file of a training run"),
    ("5-3", "runs backwards"),
])
def test_confirm_rejects_unknown_values_before_any_image(xyz, values, message):
    with pytest.raises(AxisError, match=message):
        grid(xyz, Processing("a photo <lora:dreamgirl:0.7>"), epoch_axis(values))


def test_numbers_need_to_know_the_run(xyz, lora_dir):
    write_lora(lora_dir / "other-000001.safetensors", {})
    write_lora(lora_dir / "other-000002.safetensors", {})
    with pytest.raises(AxisError, match="does not say which run"):
        grid(xyz, Processing("a photo"), epoch_axis("1"))
    result = grid(xyz, Processing("a photo <lora:other-000001:0.6>"), epoch_axis("2"))
    assert result.cells[(0, 0, 0)][0] == "a photo <lora:other-000002:0.6>"
    # names from two runs: the legend says which run
    result = grid(xyz, Processing("a photo"), epoch_axis("", ["other-000001", "dreamgirl-000001"]), csv_mode=False)
    assert result.labels[0] == ["other epoch 1", "dreamgirl epoch 1"]


def test_a_deleted_file_is_caught_by_confirm(xyz, lora_dir):
    epoch = next(o for o in xyz.axis_options if o.label == EPOCH_LABEL)
    p = Processing("x <lora:dreamgirl:1>")
    epoch.confirm(p, ["dreamgirl-000002"])
    (lora_dir / "dreamgirl-000003.safetensors").unlink()
    with pytest.raises(AxisError, match="'3' names no saved file"):
        epoch.confirm(p, ["3"])


def test_an_unknown_epoch_reads_as_two_sentences(xyz):
    with pytest.raises(AxisError) as caught:
        grid(xyz, Processing("a photo <lora:dreamgirl:0.7>"), epoch_axis("7"))
    message = str(caught.value)
    assert "). Use one of those epoch numbers" in message, message


# --- the HTTP API path -----------------------------------------------------------------------------------

def script_info(xyz) -> list[dict]:
    """What GET /sdapi/v1/script-info reports for the X/Y/Z script, per tab."""
    out = []
    for is_img2img in (False, True):
        comps = xyz.Script().ui(is_img2img)
        out.append({"name": "x/y/z plot", "is_alwayson": False, "is_img2img": is_img2img,
                    "args": [{"label": c.label, "value": c.value, "choices": c.choices} for c in comps]})
    return out


def test_api_script_args_look_up_axes_by_label(xyz):
    info = script_info(xyz)
    assert axis_index(info, EPOCH_LABEL) == info[0]["args"][0]["choices"].index(EPOCH_LABEL)
    # the img2img list differs (Hires steps only in txt2img), so the index is looked up per tab
    assert axis_index(info, EPOCH_LABEL, is_img2img=True) == info[1]["args"][0]["choices"].index(EPOCH_LABEL)
    payload = txt2img_payload(info, "a photo", (EPOCH_LABEL, "2-4"), (WEIGHT_LABEL, [0.6, 0.8]), steps=20, seed=7)
    assert payload["script_name"] == "x/y/z plot" and payload["steps"] == 20
    args = payload["script_args"]
    assert args[1] == "2-4" and args[4] == "0.6, 0.8" and args[6] == info[0]["args"][0]["choices"].index("Nothing")
    assert args[-1] is True and args[9] is True   # text inputs on; other arguments keep their defaults
    # the host runs the script with these arguments
    result = xyz.Script()
    result.ui(False)
    out = result.run(Processing(payload["prompt"]), *args)
    assert out.cells[(2, 1, 0)][0] == "dreamgirl, a photo <lora:dreamgirl-000004:0.8>"
    assert out.labels[:2] == [["epoch 2", "epoch 3", "epoch 4"], ["w 0.6", "w 0.8"]]


def test_the_readme_example_turns_text_inputs_on_and_renders(xyz):
    """README's /sdapi/v1/txt2img body, with the axis indexes this host lists: text inputs on, cells rendered."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The X/Y/Z plot with our axes"):]
    assert "Use text inputs instead of dropdowns" in section[:600] and "0 images" in section[:800]
    body = json.loads(re.search(r"txt2img -H 'Content-Type: application/json' -d '(\{.*?\})'", section,
                                re.S).group(1))
    args = body["script_args"]
    assert body["script_name"] == "x/y/z plot" and len(args) == 18 and args[-1] is True
    choices = script_info(xyz)[0]["args"][0]["choices"]
    args[0], args[3], args[6] = choices.index(EPOCH_LABEL), choices.index(WEIGHT_LABEL), choices.index("Nothing")
    script = xyz.Script()
    script.ui(False)
    out = script.run(Processing(body["prompt"].replace("mychar", "dreamgirl")), *args)
    assert out.labels[:2] == [["epoch 2", "epoch 4", "final"], ["w 0.6", "w 0.8", "w 1"]]
    assert len(out.cells) == 9


def test_api_errors_are_clear(xyz, host):
    from lora_trainer.errors import TrainerError

    info = script_info(xyz)
    with pytest.raises(TrainerError, match="no axis 'Bogus'") as err:
        xyz_script_args(info, ("Bogus", "1"))
    assert "restart the WebUI" in err.value.advice
    with pytest.raises(TrainerError, match="no X/Y/Z plot script"):
        axis_index([{"name": "prompt matrix", "is_img2img": False, "args": []}], EPOCH_LABEL)
