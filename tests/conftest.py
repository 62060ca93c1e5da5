"""Shared test helpers (keep generic: other test modules may use them)."""
from __future__ import annotations

from pathlib import Path

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
