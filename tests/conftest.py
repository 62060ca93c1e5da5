"""Shared test helpers (keep generic: other test modules may use them)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Derived files (the CLIP vocabulary) go to a cache of the test run's own, not the user's.
os.environ.setdefault("LORA_TRAINER_CACHE", tempfile.mkdtemp(prefix="lora_trainer_test_cache_"))
# Tiny models are overhead-bound: one compute thread per test process (the CLI's subprocesses inherit it) is
# as fast on an idle machine and does not collapse when the test runs beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

DEMO_TRAIN = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"
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


# --- datasets and hosts that several test modules train on or open ---------------------------------------

@pytest.fixture
def dataset(tmp_path):
    """The bundled shapes dataset under a Unicode path with spaces, repeats set to 4."""
    target = tmp_path / "训练 数据" / "4_zkz 形状"
    shutil.copytree(next(DEMO_TRAIN.iterdir()), target)
    return str(target.parent)


@pytest.fixture
def small_dataset(tmp_path):
    """Two of the shapes at repeats 1: one step per epoch, for tests of what happens around training."""
    target = tmp_path / "小 数据" / "1_zkz"
    target.mkdir(parents=True)
    for image in sorted(next(DEMO_TRAIN.iterdir()).glob("*.png"))[:2]:
        shutil.copy(image, target / image.name)
        shutil.copy(image.with_suffix(".txt"), target / image.with_suffix(".txt").name)
    return str(target.parent)


@pytest.fixture
def webui(tmp_path, monkeypatch):
    """The tab as the WebUI builds it (``test_ui_tab.webui_session``)."""
    from test_ui_tab import webui_session

    yield from webui_session(tmp_path, monkeypatch)


@pytest.fixture
def server(tmp_path):
    """The standalone tab in a server of its own, with a small dataset (``test_browser.demo_server``)."""
    from test_browser import demo_server

    yield from demo_server(tmp_path)
