"""Shared test helpers (keep generic: other test modules may use them)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Derived files (the CLIP vocabulary) go to a cache of the test run's own, not the user's.
os.environ.setdefault("LORA_TRAINER_CACHE", tempfile.mkdtemp(prefix="lora_trainer_test_cache_"))

import pytest


@pytest.fixture
def make_image():
    """make_image(path, size=(64, 48), color=(200, 30, 30), mode="RGB", **save_kwargs) -> Path.

    Writes a solid-colour image with Pillow (parent folders created; format from the suffix).
    """
    from PIL import Image

    def _make(path, size=(64, 48), color=(200, 30, 30), mode="RGB", **save_kwargs) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, size, color).save(path, **save_kwargs)
        return path

    return _make
