"""A job on several GPUs: the runner launches the command line in two processes (``accelerate launch``; here gloo
on the CPU) and reads its events back as the in-process loop's: progress, losses, files, previews, stop, errors.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from conftest import one_stack  # noqa: E402
from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.errors import TrainerError  # noqa: E402
from lora_trainer.runner import PreviewSettings, Runner  # noqa: E402
from lora_trainer.runner import processes  # noqa: E402
from lora_trainer.text.messages import localized  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402
from lora_trainer.train.event_records import from_record, to_record  # noqa: E402
from test_train import DEMO  # noqa: E402

WAIT = 300
ZH_NO_IMAGES = "的概念文件夹中没有可用的图片"


@pytest.fixture
def dataset(tmp_path):
    concept = tmp_path / "图片" / "2_zkz"
    concept.mkdir(parents=True)
    for image in sorted(next(DEMO.iterdir()).glob("*.png"))[:4]:
        shutil.copy(image, concept)
        shutil.copy(image.with_suffix(".txt"), concept)
    return str(concept.parent)


def config(tmp_path, data, **changes) -> TrainConfig:
    from lora_trainer.cli.demo import write_demo_base

    values = dict(pretrained_model_name_or_path=write_demo_base(str(tmp_path)), train_data_dir=data,
                  output_dir=str(tmp_path / "out"), output_name="many", resolution="64", min_bucket_reso=64,
                  max_bucket_reso=128, bucket_reso_steps=64, train_batch_size=1, max_train_epochs=50,
                  save_every_n_epochs=1, network_dim=4, network_alpha=4, learning_rate=1e-3, mixed_precision="no",
                  save_precision="float", seed=1)
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.skipif(os.environ.get("LORA_TRAINER_STACK", "current") == "forge",
                    reason="two processes are tested on the newest and the oldest accelerate")
def test_a_job_on_two_gpus_streams_its_events_and_stops_with_an_interrupted_state(tmp_path, dataset, monkeypatch):
    from lora_trainer.hosts.standalone import StandaloneAdapter

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))   # no accelerate config file of the machine's user
    runner = Runner(StandaloneAdapter(lora_dir=str(tmp_path / "out")), state_dir=str(tmp_path / "jobs"))
    try:
        job = runner.submit(config(tmp_path, dataset), PreviewSettings(prompts=["{trigger}"], width=64, height=64,
                                                                       steps=2, seed=3), gpus=["0", "1"])
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:   # a saved epoch and its preview, then Stop
            now = runner.get(job.id)
            if now.done or now.previews:
                break
            time.sleep(0.1)
        assert runner.stop(job.id)
        stopped = runner.wait(job.id, WAIT)
    finally:
        runner.shutdown(WAIT)
    assert stopped.status == "stopped", stopped.error
    assert stopped.total_steps == 200   # 8 samples ÷ 2 processes × 50 epochs
    steps = [s for s, _ in stopped.losses]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 4
    assert stopped.epoch_losses[0][:2] == [1, 4]
    kinds = [(f["kind"], os.path.basename(f["path"])) for f in stopped.files]
    assert kinds[0] == ("epoch", "many-000001.safetensors") and kinds[-1] == ("interrupted",
                                                                               "many-interrupted.safetensors")
    assert os.path.basename(stopped.previews[0]["path"]) == "many-000001-w1.0-0.png"
    state = Path(stopped.files[-1]["state_dir"])
    assert state.parent == Path(stopped.run_dir) and state.name == "many-interrupted-state"
    assert json.loads((state / "state.json").read_text(encoding="utf-8"))["num_processes"] == 2
    assert "÷ 2 processes" in stopped.plan_text and "个进程" in localized(stopped.plan_text, "zh_CN")
    assert any("2 processes on the GPUs 0,1" in line for line in stopped.log)
    # every file the processes wrote is in the job, once
    assert sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == sorted(name for _, name in kinds)


def fake_launch(monkeypatch, script: str) -> None:
    """The launch replaced by a Python snippet that gets the command line's arguments."""
    monkeypatch.setattr(processes, "launch_command", lambda count: [sys.executable, "-c", script])


@one_stack
def test_an_error_in_the_processes_reaches_the_job_in_both_languages(tmp_path, dataset, monkeypatch):
    from lora_trainer.cli.main import main

    empty = tmp_path / "empty" / "1_nothing"
    empty.mkdir(parents=True)
    settings = tmp_path / "empty.toml"
    settings.write_text(f'train_data_dir = "{empty.parent}"\npretrained_model_name_or_path = '
                        f'"{config(tmp_path, dataset).pretrained_model_name_or_path}"\n'
                        f'output_dir = "{tmp_path / "o"}"\nresolution = "64"\n', encoding="utf-8")
    events = tmp_path / "events.jsonl"
    assert main(["train", "--config", str(settings), "--events", str(events)]) == 2
    records = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert [r["type"] for r in records] == ["process", "failed"] and records[0]["pid"] == os.getpid()
    failed = from_record(records[1])
    assert isinstance(failed, ev.Failed) and "No usable images in the concept folders" in str(failed.error)
    assert ZH_NO_IMAGES in failed.error.format("zh_CN")

    # the runner's side: the same record, written by a stand-in for the launch, is the job's error
    record = json.dumps(records[1], ensure_ascii=False)
    fake_launch(monkeypatch, "import sys; open(sys.argv[sys.argv.index('--events') + 1], 'w', encoding='utf-8')"
                             f".write({record!r} + '\\n'); sys.exit(2)")
    with pytest.raises(TrainerError) as raised:
        processes.train_in_processes(config(tmp_path, dataset), gpus=("0", "1"), log=lambda *_: None)
    assert "No usable images" in str(raised.value) and ZH_NO_IMAGES in raised.value.format("zh_CN")


@one_stack
def test_processes_that_end_without_a_result_are_a_failure_with_their_output(tmp_path, dataset, monkeypatch):
    fake_launch(monkeypatch, "import sys; print('CUDA error: no kernel image'); sys.exit(1)")
    with pytest.raises(TrainerError) as raised:
        processes.train_in_processes(config(tmp_path, dataset), gpus=("0", "1"), log=lambda *_: None)
    assert "exit status 1" in str(raised.value) and "CUDA error: no kernel image" in str(raised.value)
    log = re.search(r"(\S+output\.log)", str(raised.value.advice)).group(1)
    assert Path(log).is_file()   # kept for reading


def test_every_event_survives_its_json_line():
    from lora_trainer.text.messages import Joined, msg, sentence

    started = ev.Started(10, 2, 5, Joined([msg("steps.title"), msg("steps.lr_unscaled")]),
                         [sentence("steps.processes_dropped", processes=2, dropped=1)], 3, "/runs/a")
    for event in (started, ev.StepEnd(4, 10, 1, 0.5, {"unet": 1e-4}, 2.0, None), ev.EpochEnd(1, 5, 0.4),
                  ev.Validated(1, 5, 0.3, "holdout", 2), ev.FileSaved("/o/a.safetensors", 1, 5, "/r/s", "epoch", []),
                  ev.SampleWanted("/o/a.safetensors", 1, 5), ev.Finished(["/o/a.safetensors"], False, 0.4)):
        back = from_record(json.loads(json.dumps(to_record(event))))
        assert back == event
    back = from_record(json.loads(json.dumps(to_record(started))))
    assert "步数计算" in localized(back.plan_text, "zh_CN") and "学习率" in localized(back.plan_text, "zh_CN")
    assert "舍弃 1 个批次" in localized(back.warnings[0], "zh_CN")
