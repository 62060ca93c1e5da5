"""Fake ``modules.scripts``: ``basedir()`` and the Script base class."""
from __future__ import annotations

from . import _fake

AlwaysVisible = object()
scripts_data: list = []


def basedir() -> str:
    return _fake.basedir


class Script:
    filename = None
    args_from = args_to = None
    alwayson = False
    is_txt2img = is_img2img = False

    def title(self):
        raise NotImplementedError

    def show(self, is_img2img):
        return True

    def ui(self, is_img2img):
        return []

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass
