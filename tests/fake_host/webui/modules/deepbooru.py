"""Fake ``modules.deepbooru``."""
from . import _fake


class DeepDanbooru:
    def tag(self, pil_image) -> str:
        from .call_queue import queue_lock
        _fake.record(f"interrogate:deepbooru:lock={queue_lock.locked()}")
        return "1girl, solo, smile"


model = DeepDanbooru()
