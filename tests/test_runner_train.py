"""The runner with real training on the CPU: a tiny SD1 model, two images, two epochs per job.

On the fake A1111 (previews through the host's txt2img) and standalone (previews through our own
pipeline): a queue of two runs, stopping a run, a dataset that cannot train.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import fake_host  # noqa: E402
from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.hosts.standalone import StandaloneAdapter  # noqa: E402
from lora_trainer.runner import PreviewSettings, Runner  # noqa: E402

REPO = str(Path(__file__).resolve().parents[1])
DEMO = Path(REPO) / "lora_trainer" / "demo_data" / "train"
WAIT = 300
PREVIEWS = PreviewSettings(prompts=["{trigger}"], width=64, height=64, steps=2, seed=3)


@pytest.fixture(scope="module")
def tiny_sd1(tmp_path_factory):
    from lora_trainer.models.tiny import build_tiny_components, save_single_file

    path = tmp_path_factory.mktemp("base") / "tiny sd1.safetensors"
    return str(save_single_file(build_tiny_components("sd1", seed=0), path, "sd1"))


@pytest.fixture
def dataset(tmp_path):
    concept = tmp_path / "图片" / "1_zkz"
    concept.mkdir(parents=True)
    for source in sorted(next(DEMO.iterdir()).iterdir())[:4]:   # two images and their captions
        shutil.copy(source, concept)
    return str(concept.parent)


def config(base, data, out, name, **changes) -> TrainConfig:
    values = dict(pretrained_model_name_or_path=base, train_data_dir=data, output_dir=str(out), output_name=name,
                  resolution="64", min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=64,
                  train_batch_size=1, max_train_epochs=2, save_every_n_epochs=1, network_dim=4, network_alpha=4,
                  learning_rate=1e-3, mixed_precision="no", save_precision="float", save_state=False, seed=1)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture
def runners(tmp_path):
    made = []

    def make(host):
        made.append(Runner(host, state_dir=str(tmp_path / "jobs")))
        return made[-1]
    yield make
    for runner in made:
        runner.shutdown(WAIT)
    fake_host.deactivate()


def test_a_queue_of_two_real_runs_on_the_webui(tiny_sd1, dataset, tmp_path, runners, monkeypatch):
    from lora_trainer.hosts import detect_host
    from lora_trainer.lora.kohya_format import check_lora_state

    fake = fake_host.activate("a1111", root=tmp_path / "webui", loaded=tiny_sd1)
    host = detect_host()
    # the host takes the extension folder off sys.path after loading the tab script
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or ".") != REPO])
    runner = runners(host)
    lora_dir = Path(host.lora_dir())
    first = runner.submit(config(tiny_sd1, dataset, lora_dir / "one", "one"), PREVIEWS)
    second = runner.submit(config(tiny_sd1, dataset, lora_dir / "two", "two"), PreviewSettings(enabled=False))
    one, two = runner.wait(first.id, WAIT), runner.wait(second.id, WAIT)
    assert (one.status, two.status) == ("finished", "finished"), (one.error, two.error)
    assert one.finished_at <= two.started_at and REPO in sys.path

    assert one.total_steps == 4 and [s for s, _ in one.losses] == [1, 2, 3, 4]
    assert [e for e, _, _ in one.epoch_losses] == [1, 2] and "Step maths" in one.plan_text
    assert [(f["kind"], os.path.basename(f["path"])) for f in one.files] == [
        ("epoch", "one-000001.safetensors"), ("epoch", "one-000002.safetensors"), ("final", "one.safetensors"),
        ("sidecar", "one.json"), ("cover", "one.preview.png")]
    from safetensors import safe_open
    with safe_open(one.files[2]["path"], framework="pt") as fh:
        assert check_lora_state({k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()) == []
    assert [os.path.basename(p["path"]) for p in one.previews] == ["one-000001-w1.0-0.png", "one-000002-w1.0-0.png"]
    assert [p.prompt for p in fake.processed] == ["zkz <lora:one-000001:1>", "zkz <lora:one-000002:1>"]
    sidecar = json.loads((lora_dir / "one" / "one.json").read_text(encoding="utf-8"))
    assert sidecar["activation text"] == "zkz" and sidecar["sd version"] == "SD1"
    assert two.previews == [] and [f["kind"] for f in two.files][-1] == "sidecar"
    import networks
    assert {"one", "one-000001", "two"} <= set(networks.available_networks)   # the Lora tab lists them
    assert fake.calls[:2] == ["unload_model_weights", "send_model_to_cpu"] and fake.calls[-1] == "send_model_to_device"


def test_stopping_a_real_run_keeps_a_resumable_file(tiny_sd1, dataset, tmp_path, runners):
    runner = runners(StandaloneAdapter(lora_dir=str(tmp_path / "out")))
    job = runner.submit(config(tiny_sd1, dataset, tmp_path / "out", "long", max_train_epochs=50),
                        PreviewSettings(enabled=False))
    deadline = time.monotonic() + WAIT
    while runner.get(job.id).step < 1 and time.monotonic() < deadline and not runner.get(job.id).done:
        time.sleep(0.05)
    assert runner.stop(job.id)
    stopped = runner.wait(job.id, WAIT)
    assert stopped.status == "stopped" and stopped.step < 100
    kinds = [f["kind"] for f in stopped.files]
    assert kinds[-1] == "interrupted" and "final" not in kinds
    assert (tmp_path / "out" / "long-interrupted.safetensors").is_file()
    assert stopped.run_dir.startswith(str(tmp_path / "out" / "logs" / "long-"))
    assert (Path(stopped.run_dir) / "long-interrupted-state").is_dir()
    assert stopped.files[-1]["state_dir"] == str(Path(stopped.run_dir) / "long-interrupted-state")
    assert not (tmp_path / "out" / "long.json").exists()


def test_a_dataset_that_cannot_train_fails_with_advice_and_writes_nothing(tiny_sd1, tmp_path, runners):
    folder = tmp_path / "data" / "10_nothing here"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("no images", encoding="utf-8")
    runner = runners(StandaloneAdapter(lora_dir=str(tmp_path / "out")))
    job = runner.wait(runner.submit(config(tiny_sd1, str(folder.parent), tmp_path / "out", "x")).id, WAIT)
    assert job.status == "failed" and "no usable images" in job.error["message"].lower() and job.error["advice"]
    assert list(tmp_path.rglob("*.safetensors")) == []


def test_a_full_disk_fails_the_job_in_plain_words_and_lists_the_file_it_wrote(tiny_sd1, dataset, tmp_path, runners,
                                                                             monkeypatch):
    import errno

    from lora_trainer.train import saving

    def full(*args, **kwargs):   # the epoch's LoRA file fitted, its larger state does not
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(saving, "save_state", full)
    runner = runners(StandaloneAdapter(lora_dir=str(tmp_path / "out")))
    job = runner.wait(runner.submit(config(tiny_sd1, dataset, tmp_path / "out", "full", save_state=True),
                                    PreviewSettings(enabled=False)).id, WAIT)
    assert job.status == "failed"
    run_dir = next((tmp_path / "out" / "logs").iterdir())   # states are saved in the run's folder
    assert job.error["message"].startswith(f"disk full while saving full-000001-state/ in {run_dir}; ")
    assert job.error["advice"].startswith("free ") and "not expected" not in job.error["advice"]
    assert [(f["kind"], f["path"], f["state_dir"]) for f in job.files] == \
        [("epoch", str(tmp_path / "out" / "full-000001.safetensors"), None)]
    assert (tmp_path / "out" / "full-000001.safetensors").is_file()


def test_standalone_previews_per_epoch(tiny_sd1, dataset, tmp_path, runners):
    from PIL import Image

    runner = runners(StandaloneAdapter(lora_dir=str(tmp_path / "out")))
    job = runner.wait(runner.submit(config(tiny_sd1, dataset, tmp_path / "out", "solo"), PREVIEWS).id, WAIT)
    assert job.status == "finished", job.error
    assert [(p["epoch"], os.path.basename(p["file"])) for p in job.previews] == [
        (1, "solo-000001.safetensors"), (2, "solo-000002.safetensors")]
    for preview in job.previews:
        with Image.open(preview["path"]) as image:
            assert image.size == (64, 64)
    assert (tmp_path / "out" / "solo.preview.png").is_file()
    assert not any("one flat colour" in line for line in job.log)   # the tiny model's pictures are pictures


def test_a_finished_run_leaves_no_model_in_memory(tiny_sd1, dataset, tmp_path, runners):
    """The WebUI process lives on after a run: the trainer's copy of the base model must go with it."""
    import gc

    from diffusers import UNet2DConditionModel

    def unets():
        gc.collect()
        return sum(isinstance(o, UNet2DConditionModel) for o in gc.get_objects())

    before = unets()
    runner = runners(StandaloneAdapter(lora_dir=str(tmp_path / "out")))
    job = runner.wait(runner.submit(config(tiny_sd1, dataset, tmp_path / "out", "freed"),
                                    PreviewSettings(enabled=False)).id, WAIT)
    assert job.status == "finished", job.error
    assert unets() == before, "the run's UNet is still referenced after it finished"
