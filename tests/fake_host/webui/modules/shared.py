"""Fake ``modules.shared``: cmd_opts, opts, state, interrogator, and the ``sd_model`` property."""
from __future__ import annotations

import argparse

from . import _fake
from .options import OptionInfo, Options, options_section  # noqa: F401  (the host re-exports them)

cmd_opts = argparse.Namespace(lora_dir="", ckpt_dir=None, data_dir="", api_auth=None)
opts = Options()
options_templates: dict = {}
latent_upscale_modes = {"Latent": {}, "Latent (nearest)": {}}
sd_upscalers = [argparse.Namespace(name="None"), argparse.Namespace(name="R-ESRGAN 4x+")]
parallel_processing_allowed = True


class State:
    def __init__(self) -> None:
        self.job, self.job_count, self.job_no = "", 0, 0
        self.interrupted = self.skipped = self.stopping_generation = False
        self.sampling_step = self.sampling_steps = 0
        self.textinfo = None
        self.current_image = None

    def begin(self, job: str = "(unknown)") -> None:
        _fake.record(f"state.begin:{job}")
        self.__init__()
        self.job = job

    def end(self) -> None:
        _fake.record("state.end")
        self.job = ""

    def interrupt(self) -> None:
        _fake.record("state.interrupt")
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def assign_current_image(self, image) -> None:
        self.current_image = image


class Interrogator:
    def interrogate(self, image) -> str:
        from .call_queue import queue_lock
        _fake.record(f"interrogate:clip:lock={queue_lock.locked()}")
        return "a photo of a fake thing"


state = State()
interrogator = Interrogator()


def __getattr__(name):
    if name == "sd_model":   # the real property loads a model when none is loaded: recorded to catch that
        from . import sd_models
        _fake.record("shared.sd_model")
        return sd_models.model_data.sd_model
    raise AttributeError(name)
