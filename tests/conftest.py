"""Shared test helpers (keep generic: other test modules may use them)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Derived files (the CLIP vocabulary) go to a cache of the test run's own, not the user's.
os.environ.setdefault("LORA_TRAINER_CACHE", tempfile.mkdtemp(prefix="lora_trainer_test_cache_"))
# Tiny models are overhead-bound: one compute thread per test process (the CLI's subprocesses inherit it) is
# as fast on an idle machine and does not collapse when the test runs beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

STACK = os.environ.get("LORA_TRAINER_STACK", "current")   # current | host | forge (set by the Makefile)

# A test whose behaviour does not depend on the library versions (a subprocess of the CLI, the installer's
# simulated venvs, the loader's memory) runs on the newest stack only; the code paths it drives are covered
# on every stack by the faster in-process tests.
one_stack = pytest.mark.skipif(STACK != "current", reason="does not depend on the library stack: runs on the "
                                                          "newest stack only")


def api_client(runner):
    """A FastAPI test client of the trainer's HTTP API over ``runner`` (skips without fastapi/httpx, or where this
    starlette's TestClient does not run with this httpx)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lora_trainer.runner.api import register_api

    app = FastAPI()
    register_api(app, runner)
    try:
        return TestClient(app)
    except TypeError:   # starlette < 0.28 with httpx 0.28
        pytest.skip("this starlette's TestClient does not run with this httpx")


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


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """One tiny single-file checkpoint per family, in a folder with Chinese and spaces."""
    from lora_trainer.models.tiny import build_tiny_components, save_single_file

    root = tmp_path_factory.mktemp("models") / "底模 目录"
    out = {}
    for family in ("sd1", "sd2", "sdxl"):
        out[family] = str(save_single_file(build_tiny_components(family, seed=0),
                                           root / f"tiny {family}.safetensors", family))
    return out
