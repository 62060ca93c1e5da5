"""Data-parallel training as a user launches it: ``accelerate launch --multi_gpu --num_processes 2 -m lora_trainer
train``, here with two gloo processes on the CPU.

The two processes train their own halves of each epoch, only the main one writes files and logs, the LoRA is
the file one process writes (keys, shapes, dtypes, metadata), and its state resumes exactly with two processes
and is refused with one. Runs on the newest stack and on the A1111 one (accelerate 1.x and 0.21: the launcher,
DDP's wrapping and the process group are theirs); Forge's accelerate 0.31 lies between the two.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from conftest import STACK  # noqa: E402
from test_train import DEMO  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(STACK == "forge", reason="the newest and the oldest accelerate are tested; Forge's "
                                                         "0.31 lies between them")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(processes: int = 2) -> list[str]:
    """``accelerate launch`` for ``processes`` CPU processes (``--multi_gpu`` starts them through torchrun; on a
    machine without CUDA each gets a gloo process group; ``--cpu`` alone would start only one)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "lora_trainer"]


def launch_env(tmp_path: Path) -> dict:
    # HF_HOME: no accelerate config file of the machine's user is read
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
                HF_HOME=str(tmp_path / "hf"))


def launch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*launch_command(), "train", *args], capture_output=True, text=True, encoding="utf-8",
                          env=launch_env(tmp_path), timeout=600)


def succeeded(done: subprocess.CompletedProcess) -> None:
    """Fails with the end of both outputs, whole (an assertion's message would be shortened)."""
    if done.returncode != 0:
        pytest.fail(f"accelerate launch exited with {done.returncode}\n--- stdout, end ---\n{done.stdout[-3000:]}\n"
                    f"--- stderr, end ---\n{done.stderr[-5000:]}", pytrace=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny base model, four 64 px pictures × 2 repeats, and a config: batch 1, two epochs, rank 4."""
    from lora_trainer.cli.demo import write_demo_base

    root = tmp_path_factory.mktemp("multi")
    base = write_demo_base(str(root))
    data = root / "train" / "2_zkz shapes"
    data.mkdir(parents=True)
    for image in sorted(next(DEMO.iterdir()).glob("*.png"))[:4]:
        shutil.copy(image, data)
        shutil.copy(image.with_suffix(".txt"), data)
    settings = dict(pretrained_model_name_or_path=base, train_data_dir=str(data.parent), output_name="tiny",
                    resolution="64", min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=64,
                    train_batch_size=1, max_train_epochs=2, save_every_n_epochs=1, save_last_n_epochs_state=10,
                    network_dim=4, network_alpha=4, learning_rate=2e-3, mixed_precision="no", save_precision="float",
                    seed=1)
    config = root / "tiny.toml"
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()), encoding="utf-8")
    return {"root": root, "config": str(config), "settings": settings}


def lora_facts(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: (tuple(f.get_tensor(k).shape), f.get_tensor(k).dtype) for k in f.keys()}
        return tensors, dict(f.metadata())


def run_folder(out: Path) -> Path:
    folders = [p for p in (out / "logs").iterdir()]
    assert len(folders) == 1, folders   # one run folder: the other process wrote none
    return folders[0]


@pytest.fixture(scope="module")
def two_processes(world):
    out = world["root"] / "two"
    done = launch(world["root"], "--config", world["config"], "--output_dir", str(out))
    succeeded(done)
    return {"out": out, "stdout": done.stdout, "stderr": done.stderr}


@pytest.fixture(scope="module")
def one_process(world):
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train.loop import train

    out = world["root"] / "one"
    train(TrainConfig(**world["settings"], output_dir=str(out)), log=lambda *_: None)
    return {"out": out}


def test_two_processes_share_each_epoch_and_one_writes_the_files(two_processes):
    stdout, out = two_processes["stdout"], two_processes["out"]
    # the step maths, printed once: each process trains half of the 8 batches of an epoch
    assert stdout.count("Step maths:") == 1 and stdout.count("Done. 8 steps") == 1
    assert "8 samples ÷ batch 1 ÷ 2 processes = 4 batches per epoch on each process" in stdout
    assert "global batch: 1 per process × 2 processes = 2 samples per optimizer step" in stdout
    assert "not scaled with the global batch" in stdout
    assert "4 steps per epoch × 2 epochs = 8 steps" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["logs", "tiny-000001.safetensors", "tiny-000002.safetensors",
                                                     "tiny.safetensors"]
    run = run_folder(out)
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith("events.out")) == \
        ["metrics.jsonl", "tiny-000001-state", "tiny-state"]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records if r["type"] == "step"] == list(range(1, 9))   # each step logged once
    state = json.loads((run / "tiny-000001-state" / "state.json").read_text(encoding="utf-8"))
    assert (state["step"], state["epoch"], state["num_processes"], len(state["rank_rngs"])) == (4, 1, 2, 2)


def test_the_lora_is_the_file_one_process_writes(two_processes, one_process):
    two, two_meta = lora_facts(two_processes["out"] / "tiny.safetensors")
    one, one_meta = lora_facts(one_process["out"] / "tiny.safetensors")
    assert two == one   # keys, shapes, dtypes
    assert set(two_meta) == set(one_meta)
    differ = {k for k in one_meta if one_meta[k] != two_meta[k]}
    assert differ == {"ss_steps", "ss_training_started_at"}, differ
    assert (one_meta["ss_steps"], two_meta["ss_steps"]) == ("16", "8")   # optimizer steps: half as many
    assert two_meta["ss_batch_size_per_device"] == "1" and two_meta["ss_epoch"] == "2"
    state = json.loads((run_folder(one_process["out"]) / "tiny-state" / "state.json").read_text(encoding="utf-8"))
    assert "num_processes" not in state and "rank_rngs" not in state   # a one-process state as before


def test_a_two_process_state_resumes_exactly_with_two_and_is_refused_with_one(world, two_processes):
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.errors import TrainerError
    from lora_trainer.train.loop import train
    from safetensors.torch import load_file

    state = run_folder(two_processes["out"]) / "tiny-000001-state"
    out = world["root"] / "resumed"
    done = launch(world["root"], "--config", world["config"], "--output_dir", str(out), "--resume", str(state))
    succeeded(done)
    assert "Done. 8 steps" in done.stdout
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["tiny-000002.safetensors", "tiny.safetensors"]
    resumed, whole = load_file(str(out / "tiny.safetensors")), load_file(str(two_processes["out"] / "tiny.safetensors"))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)   # each process got its own random states back

    alone = world["root"] / "alone"
    with pytest.raises(TrainerError) as refused:
        train(TrainConfig(**world["settings"], output_dir=str(alone), resume=str(state)), log=lambda *_: None)
    assert refused.value.key == "state.resume_processes"
    assert "saved by a run of 2 process(es); this run has 1" in str(refused.value)
    assert "--num_processes 2" in str(refused.value.advice)
    assert not list(alone.glob("logs/*")) and not list(alone.glob("*.safetensors"))   # refused before training


def test_the_process_group_ends_before_the_interpreter_does(tmp_path):
    """Left to the interpreter's exit, gloo's threads may free tensors after Python is gone and abort a
    process whose run finished; ``train`` under the launcher ends the group itself (and then leaves without the
    interpreter's finalization: the launches above exit 0)."""
    import torch.distributed as dist
    from lora_trainer.train.distributed import end_process_group

    for orderly in (True, False):   # after a run that ended normally the processes first wait for each other
        dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / f"store{orderly}"), 1), rank=0,
                                world_size=1)
        assert dist.is_initialized()
        end_process_group(orderly=orderly)
        assert not dist.is_initialized()
    end_process_group()   # nothing to end: nothing happens
