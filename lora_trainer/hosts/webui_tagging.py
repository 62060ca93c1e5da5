"""The WebUI's own taggers (its CLIP interrogator and DeepBooru) for A1111 and Forge, under the host's queue lock.

Offline the WebUI cannot download their models: its DeepBooru then fails on the first picture and tags every
later one with an untrained network, its CLIP interrogator writes "<error>" as the caption; both become one
``TrainerError`` here. Host modules are looked up when used, never at import.
"""
from __future__ import annotations

import importlib
import importlib.util
import os

from ..errors import TrainerError
from ..text.messages import msg
from . import base  # noqa: F401  (registers the hosts' sentences)

INTERROGATE_FAILED = "<error>"               # what the WebUI's CLIP interrogator returns when it failed
DEEPBOORU_FILE = "model-resnet_custom_v3.pt"


def _host_module(name: str):
    return importlib.import_module(name)


class WebUITagging:
    """``interrogators`` / ``interrogate`` / ``prepare_interrogator`` of a WebUI adapter (which provides ``_lock``
    and ``models_dir``; the next class in its bases answers for taggers the WebUI does not have)."""

    def interrogators(self) -> list[str]:
        names = []
        if getattr(_host_module("modules.shared"), "interrogator", None) is not None:
            names.append("clip")
        try:
            if importlib.util.find_spec("modules.deepbooru") is not None:
                names.append("deepbooru")
        except (ImportError, ValueError):
            pass
        return names

    def interrogate(self, image, name: str) -> str:
        if name not in self.interrogators():
            return super().interrogate(image, name)
        image = image.convert("RGB")
        with self._lock():
            if name == "clip":
                text = str(_host_module("modules.shared").interrogator.interrogate(image))
                if INTERROGATE_FAILED in text:   # the WebUI logs the error and returns it as a caption
                    raise TrainerError(msg("host.clip_failed"), msg("host.clip.advice"))
                return text
            return str(_host_module("modules.deepbooru").model.tag(image))

    def prepare_interrogator(self, name: str) -> None:
        """Load the interrogator's models under the lock; a ``TrainerError`` saying why they cannot load."""
        if name not in self.interrogators():
            return super().prepare_interrogator(name)
        with self._lock():
            if name == "clip":
                interrogator = _host_module("modules.shared").interrogator
                load = getattr(interrogator, "load", None)
                if callable(load):
                    try:
                        load()
                    except Exception as err:
                        raise TrainerError(msg("host.clip_load", error=f"{type(err).__name__}: {err}"),
                                           msg("host.clip.advice")) from None
                return
            holder = _host_module("modules.deepbooru").model
            load = getattr(holder, "load", None)
            if not callable(load) or getattr(holder, "model", None) is not None:
                return
            try:
                load()
            except Exception as err:
                holder.model = None     # else the WebUI keeps the untrained network it built before failing
                folder = os.path.join(self.models_dir(), "torch_deepdanbooru")
                raise TrainerError(msg("host.deepbooru_load", error=f"{type(err).__name__}: {err}",
                                       file=DEEPBOORU_FILE, folder=folder),
                                   msg("host.deepbooru_load.advice", file=DEEPBOORU_FILE, folder=folder)) from None
