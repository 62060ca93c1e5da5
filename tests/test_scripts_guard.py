"""The always-on guard script brings the A1111 model back for the user's own generations while a
job trains, through the runner's adapter, and stays out of the way when no runner exists."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import fake_host

GUARD = Path(__file__).resolve().parent.parent / "scripts" / "lora_trainer_guard.py"


@pytest.fixture(autouse=True)
def _clean():
    fake_host.deactivate()
    yield
    fake_host.deactivate()
    import lora_trainer.runner.runner as runner_module
    runner_module._RUNNER = None


def execute_like_the_host():
    """The host executes script files by path under the file name, outside sys.modules."""
    spec = importlib.util.spec_from_file_location(GUARD.name, GUARD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LoraTrainerHostGuard()


def test_guard_moves_the_model_around_a_host_generation_during_training(tmp_path):
    root = tmp_path / "webui"
    ckpt = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "sd15.safetensors", "sd1")
    fake_host.activate("a1111", root=root, loaded=ckpt)
    from modules import scripts, sd_models
    import lora_trainer.runner.runner as runner_module
    from lora_trainer.hosts import detect_host

    guard = execute_like_the_host()
    assert guard.show(False) is scripts.AlwaysVisible
    model = sd_models.model_data.sd_model
    guard.before_process(object())            # no runner yet: nothing happens, nothing raises
    guard.postprocess(object(), None)
    assert model.device == "cuda"

    runner_module._RUNNER = runner_module.Runner(detect_host(), state_dir=None)
    host = runner_module.existing_runner().host
    host.free_vram()                          # what a starting job does
    assert model.device == "cpu"
    guard.before_process(object())
    assert model.device == "cuda"             # the user's txt2img finds the model on the GPU
    guard.postprocess(object(), None)
    assert model.device == "cpu"              # and training gets the memory back
    host.restore_vram()
    assert model.device == "cuda"


def test_guard_survives_a_failing_adapter(tmp_path, capsys):
    root = tmp_path / "webui"
    fake_host.activate("a1111", root=root)
    import lora_trainer.runner.runner as runner_module

    class Broken:
        def before_host_generation(self):
            raise RuntimeError("boom")

        def after_host_generation(self):
            raise RuntimeError("boom")

    runner_module._RUNNER = type("R", (), {"host": Broken()})()
    guard = execute_like_the_host()
    guard.before_process(object())
    guard.postprocess(object(), None)
    assert "could not bring the model back" in capsys.readouterr().err
