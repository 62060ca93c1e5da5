"""Which diffusers/peft/bitsandbytes versions run next to a host's pinned packages: decided by capability.

pip's metadata accepts combinations that fail at import time (peft ≥ 0.15 with accelerate 0.21,
diffusers ≥ 0.32 with transformers 4.30), and a broken peft also breaks diffusers, which some
hosts import at startup. So the ranges here come from import probes against each host's
stack, not from pip. Packages a host pins are used as they are, never replaced.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..text.messages import sentence
from .messages import names
from .versions import at_least, canonical

# What the trainer imports, with the floor below which it does not run at all.
FLOORS = {"torch": "2.0", "transformers": "4.30", "accelerate": "0.21", "safetensors": "0.3.1",
          "diffusers": "0.28", "peft": "0.9", "Pillow": "9.5", "numpy": "1.23"}
# (package, from version, needs, at least): versions that pip accepts next to a host library
# but that fail at import time (or, for bitsandbytes, do not install) below that version (measured);
# the first row that applies is reported.
IMPORT_BREAKPOINTS = (("diffusers", "0.32", "transformers", "4.37"),
                      ("peft", "0.15", "accelerate", "0.32.1"),
                      ("peft", "0.14", "transformers", "4.36"),
                      ("bitsandbytes", "0.50", "torch", "2.4"),
                      ("bitsandbytes", "0.48", "torch", "2.3"),
                      ("bitsandbytes", "0.46", "torch", "2.2"))
# Host-owned packages we never install or upgrade ourselves.
HOST_OWNED = ("torch", "transformers", "accelerate", "safetensors", "Pillow", "numpy")
# Ours to install when the host does not pin them; the optional ones only add features
# (8-bit optimizers; reading TOML configs on Python 3.10).
OURS = ("diffusers", "peft")
OPTIONAL = ("bitsandbytes", "tomli")
# Packages the host depends on: frozen at their installed version whenever pip runs.
PROTECTED = ("torch", "torchvision", "torchaudio", "xformers", "triton", "transformers", "tokenizers",
             "accelerate", "safetensors", "huggingface-hub", "numpy", "Pillow", "pydantic", "pydantic-core",
             "fastapi", "starlette", "gradio", "gradio-client", "protobuf", "setuptools", "pip",
             "open-clip-torch", "bitsandbytes")
# Never named in a pip command of ours, whatever the policy says.
NEVER_REQUESTED = ("torch", "torchvision", "xformers", "gradio", "transformers", "accelerate", "safetensors",
                   "huggingface-hub", "numpy", "Pillow", "pydantic", "protobuf")
# Everything whose installed version the decision reads or the status reports.
WATCHED = tuple(dict.fromkeys(tuple(FLOORS) + ("torchvision", "xformers", "tokenizers", "huggingface-hub",
                                                "bitsandbytes", "gradio", "pydantic", "protobuf", "tomli", "toml")))
MIN_PYTHON = (3, 10)
MIN_GRADIO = "3.41"


def is_protected(name: str) -> bool:
    key = canonical(name)
    return key in {canonical(n) for n in PROTECTED} or key.startswith("nvidia-")


def diffusers_range(versions: dict) -> str:
    return ">=0.28,<0.32" if not at_least(versions.get("transformers"), "4.37") else ">=0.28,<0.38"


def peft_range(versions: dict) -> str:
    if not at_least(versions.get("transformers"), "4.36"):
        return ">=0.9,<0.14"
    if not at_least(versions.get("accelerate"), "0.32.1"):
        return ">=0.9,<0.15"
    return ">=0.9,<0.22"


def bitsandbytes_range(torch_version: str | None) -> str | None:
    if not at_least(torch_version, "2.0"):
        return None
    for below, cap in (("2.2", "0.46"), ("2.3", "0.48"), ("2.4", "0.50")):
        if not at_least(torch_version, below):
            return f">=0.43,<{cap}"
    return ">=0.43,<0.51"


def wanted_ranges(versions: dict) -> dict[str, str]:
    """The diffusers/peft ranges that run next to this host's transformers and accelerate."""
    return {"diffusers": diffusers_range(versions), "peft": peft_range(versions)}


def breakpoint_problem(name: str, version: str, versions: dict) -> str | None:
    for package, since, needs, minimum in IMPORT_BREAKPOINTS:
        if package == name and at_least(version, since) and not at_least(versions.get(needs), minimum):
            return sentence("install.breakpoint", name=name, version=version, needs=needs, minimum=minimum,
                            has=versions.get(needs))
    return None


@dataclass
class Decision:
    required: dict[str, str] = field(default_factory=dict)   # name → pip spec; training needs them
    optional: dict[str, str] = field(default_factory=dict)   # name → pip spec; features only
    problems: list[str] = field(default_factory=list)        # what is wrong now, in plain words
    blocked: list[str] = field(default_factory=list)         # problems only a change to the WebUI fixes
    advice: list[str] = field(default_factory=list)          # how to fix the blocked ones
    why: str = ""                                            # what the ranges were chosen for

    @property
    def ready(self) -> bool:
        """Training can run with what is installed now."""
        return not self.blocked and not self.required

    @property
    def status(self) -> str:
        if self.blocked:
            return "refused"
        return "install" if self.required or self.optional else "ok"

    def specs(self, optional: bool = True) -> dict[str, str]:
        return {**self.required, **(self.optional if optional else {})}


def decide(versions: dict, pins: dict | None = None, *, python=None, cuda: str | None = None,
           bnb_managed: bool = False, requirements_file: str | None = None) -> Decision:
    """What to install (if anything) so that the trainer runs here, without touching the host's packages.

    ``versions``: name → installed version or None (the names of ``WATCHED``); ``pins``: the host's
    ``name==version`` pins by canonical name; ``cuda``: the CUDA version torch was built for.
    """
    pins = {canonical(k): v for k, v in (pins or {}).items()}
    python = tuple(python or sys.version_info[:3])
    out = Decision()
    py_text = ".".join(map(str, python))

    if python[:2] < MIN_PYTHON:
        out.blocked.append(sentence("install.python", needed=".".join(map(str, MIN_PYTHON)), python=py_text))
        out.advice.append(sentence("install.python.advice"))
    too_old = []
    absent = [name for name in HOST_OWNED if versions.get(name) is None]
    if absent:
        out.blocked.append(sentence("install.absent_one" if len(absent) == 1 else "install.absent_many",
                                    names=names(absent)))
        too_old += [f"{name} ≥ {FLOORS[name]}" for name in absent]
    for name in HOST_OWNED:
        version = versions.get(name)
        if version is None:
            continue
        if not at_least(version, FLOORS[name]):
            out.blocked.append(sentence("install.older", name=name, version=version, floor=FLOORS[name]))
            too_old.append(f"{name} ≥ {FLOORS[name]}")
    gradio = versions.get("gradio")
    if gradio and not at_least(gradio, MIN_GRADIO):
        out.blocked.append(sentence("install.gradio_older", version=gradio, floor=MIN_GRADIO))
        too_old.append(f"gradio ≥ {MIN_GRADIO}")
    if too_old:
        out.advice.append(sentence("install.update_webui", needs=", ".join(too_old)))
    if out.blocked:
        out.problems = list(out.blocked)
        return out

    out.why = sentence("install.why", transformers=versions.get("transformers"),
                       accelerate=versions.get("accelerate"))
    ranges = wanted_ranges(versions)
    for name in OURS:
        version, pin = versions.get(name), pins.get(canonical(name))
        if pin is not None:                      # the host's own: used as it is, never replaced
            if version is None:
                out.blocked.append(sentence("install.pinned_missing", name=name, pin=pin))
                out.advice.append(sentence("install.no_skip_install",
                                           file=f" ({requirements_file})" if requirements_file else ""))
                continue
            trouble = (sentence("install.too_old", name=name, version=version) if not at_least(version, FLOORS[name])
                       else breakpoint_problem(name, version, versions))
            if trouble:
                out.blocked.append(sentence("install.pinned_trouble", trouble=trouble, name=name, pin=pin))
                out.advice.append(sentence("install.update_pin", name=name))
            continue
        if version is None:
            out.problems.append(sentence("install.missing", name=name))
            out.required[name] = ranges[name]
        elif not at_least(version, FLOORS[name]):
            out.problems.append(sentence("install.too_old", name=name, version=version))
            out.required[name] = ranges[name]
        else:
            trouble = breakpoint_problem(name, version, versions)
            if trouble:
                out.problems.append(trouble)
                out.required[name] = ranges[name]

    bnb = versions.get("bitsandbytes")
    if bnb and not bnb_managed:
        trouble = breakpoint_problem("bitsandbytes", bnb, versions)
        if trouble:                              # someone else's install: reported, left alone
            out.problems.append(sentence("install.no_8bit", trouble=trouble))
    elif bnb is None and not bnb_managed and cuda:
        wanted = bitsandbytes_range(versions.get("torch"))
        if wanted and canonical("bitsandbytes") not in pins:
            out.optional["bitsandbytes"] = wanted
    if python[:2] < (3, 11) and not versions.get("tomli") and not versions.get("toml") and "tomli" not in pins:
        out.optional["tomli"] = ">=1.1"
    if out.blocked:
        out.problems = out.blocked + [p for p in out.problems if p not in out.blocked]
    return out
