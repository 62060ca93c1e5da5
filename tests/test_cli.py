"""The command line as a user runs it: train from a kohya TOML, errors, inspect, demo."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import one_stack  # noqa: E402
from test_train import DEMO  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lora_trainer", *args], capture_output=True, text=True,
                          encoding="utf-8", env=env, cwd=cwd, timeout=600)


@one_stack
def test_train_from_kohya_toml_then_inspect(tiny_checkpoints, tmp_path):
    data = tmp_path / "我的 数据"
    shutil.copytree(next(DEMO.iterdir()), data / "2_zkz")
    config = tmp_path / "kohya.toml"
    config.write_text(f'''
[model_arguments]
pretrained_model_name_or_path = "{tiny_checkpoints["sd1"]}"
v2 = false
[dataset_arguments]
train_data_dir = "{data}"
resolution = "64,64"
enable_bucket = false
[training_arguments]
output_dir = "{tmp_path / 'out'}"
output_name = "cli_lora"
train_batch_size = 4
max_train_epochs = 3
mixed_precision = "no"
xformers = true
a_setting_nobody_knows = 1
[additional_network_arguments]
network_dim = 4
network_alpha = 2
''', encoding="utf-8")
    done = cli("train", "--config", str(config), "--max_train_epochs", "1", "--network_train_unet_only")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a_setting_nobody_knows" in done.stdout and "xformers" not in done.stdout.split("ignored")[-1]
    assert "Step maths" in done.stdout and "16 samples ÷ batch 4 = 4 batches per epoch" in done.stdout
    lora = tmp_path / "out" / "cli_lora.safetensors"
    assert lora.is_file() and (tmp_path / "out" / "cli_lora-000001.safetensors").is_file()

    shown = cli("inspect", str(lora))
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "lora_unet:" in shown.stdout and "lora_te" not in shown.stdout
    assert "rank: 4" in shown.stdout and "check: OK" in shown.stdout and "ss_epoch: 1" in shown.stdout


@one_stack
def test_bad_settings_give_a_clear_error(tmp_path):
    done = cli("train", "--train_data_dir", str(tmp_path / "nowhere"), "--resolution", "500",
               "--pretrained_model_name_or_path", str(tmp_path / "model.safetensors"), "--output_dir", str(tmp_path))
    assert done.returncode == 2
    assert "resolution 500 is not a multiple of 64; use 512" in done.stderr
    assert "train_data_dir: the training images folder" in done.stderr
    assert "pretrained_model_name_or_path: the base model" in done.stderr and "was not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_settings_are_reported_before_the_libraries_are_imported(tmp_path):
    """The settings' errors come first, in a fraction of a second: torch, diffusers and transformers are imported
    after them (seconds)."""
    code = ("import sys; from lora_trainer.cli.main import main; "
            f"rc = main(['train', '--train_data_dir', {str(tmp_path / 'nowhere')!r}, '--output_dir', {str(tmp_path)!r}, "
            f"'--pretrained_model_name_or_path', {str(tmp_path / 'model.safetensors')!r}]); "
            "print(rc, 'diffusers' in sys.modules, 'transformers' in sys.modules, 'torch' in sys.modules)")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "2 False False False", done.stdout + done.stderr[-2000:]


@one_stack
def test_demo_writes_base_model_and_lora(tmp_path):
    from lora_trainer.models.loading import load_base_model

    done = cli("demo", "--output-dir", str(tmp_path / "演示"), "--epochs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Loss per epoch" in done.stdout and "Step maths" in done.stdout
    base = tmp_path / "演示" / "base" / "tiny-sd15.safetensors"
    assert base.is_file() and (tmp_path / "演示" / "demo_lora.safetensors").is_file()
    assert load_base_model(str(base)).family == "sd1"


@one_stack
def test_ctrl_c_stops_and_saves_the_interrupted_state(tiny_checkpoints, tmp_path):
    import signal
    import time

    data = tmp_path / "data"
    shutil.copytree(next(DEMO.iterdir()), data / "20_zkz")
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lora_trainer", "train", "--pretrained_model_name_or_path", tiny_checkpoints["sd1"],
         "--train_data_dir", str(data), "--output_dir", str(out), "--output_name", "ctrl_c", "--resolution", "64",
         "--enable_bucket", "false", "--max_train_epochs", "50", "--mixed_precision", "no", "--network_dim", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env)
    def trained_a_step() -> bool:   # Ctrl+C once the loop runs (the step log is written from the first step)
        return any('"type": "step"' in p.read_text(encoding="utf-8") for p in out.glob("logs/**/metrics.jsonl"))

    deadline = time.time() + 300
    while not trained_a_step() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Stopped." in stdout and "Stopping:" in stderr
    assert (out / "ctrl_c-interrupted.safetensors").is_file()
    assert len(list(out.glob("logs/ctrl_c-*/ctrl_c-interrupted-state"))) == 1   # in the run's folder
    assert not (out / "ctrl_c.safetensors").exists()


def test_bench_runs_the_benchmark_beside_the_package_with_its_own_options(monkeypatch):
    """``python -m lora_trainer bench ...`` passes every option on to ``python -m benchmarks.bench`` (the
    package itself never imports the benchmarks)."""
    import subprocess

    from lora_trainer.cli import main as cli

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda argv, **kw: calls.append((argv, kw)) or 0)
    options = ["--model", "sdxl", "--variants", "graphs,graphs+amp", "--memory-breakdown", "memory.md",
               "--gradient-checkpointing"]
    assert cli.main(["--verbose", "bench", *options]) == 0
    (argv, kw), = calls
    assert argv[1:] == ["-m", "benchmarks.bench", *options]
    assert (Path(kw["cwd"]) / "benchmarks" / "bench_args.py").is_file()

    from benchmarks.bench_args import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(options)
    assert (args.model, args.variants, args.memory_breakdown, args.gradient_checkpointing) == \
        ("sdxl", "graphs,graphs+amp", "memory.md", True)


def test_settings_the_cli_refuses_exit_2_without_a_traceback(tiny_checkpoints, tmp_path, capsys):
    from lora_trainer.cli.main import main

    data = tmp_path / "data"
    shutil.copytree(next(DEMO.iterdir()), data / "1_zkz")
    a_file = tmp_path / "out.txt"
    a_file.write_text("x")
    base = ["--verbose", "train", "--pretrained_model_name_or_path", tiny_checkpoints["sd1"], "--train_data_dir",
            str(data), "--resolution", "64"]
    assert main(base + ["--output_dir", str(a_file)]) == 2
    assert f"error: output_dir {a_file} is a file, not a folder" in capsys.readouterr().err
    assert main(base + ["--output_dir", str(tmp_path / "o"), "--seed", str(2**63)]) == 2
    assert "error: seed is 9223372036854775808, but it cannot be above 4294967295" in capsys.readouterr().err
    assert main(base + ["--output_dir", str(tmp_path / "o"), "--train_data_dir", str(a_file)]) == 2
    assert f"error: train_data_dir {a_file} is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_reads_the_model_ahead_once_the_settings_are_checked(tiny_checkpoints, tmp_path, monkeypatch):
    """The model file's read starts before the libraries' imports (seconds it overlaps); a refused setting
    reads nothing."""
    import types

    from lora_trainer.cli.main import main
    from lora_trainer.models import prefetch
    from lora_trainer.train import loop

    read, trained = [], []
    monkeypatch.setattr(prefetch, "read_ahead", lambda path: read.append(str(path)))
    monkeypatch.setattr(loop, "train", lambda cfg, **kw: trained.append(read[:]) or
                        types.SimpleNamespace(stopped=False, steps=0, files=[]))
    data = tmp_path / "data"
    shutil.copytree(next(DEMO.iterdir()), data / "1_zkz")
    base = ["--verbose", "train", "--pretrained_model_name_or_path", tiny_checkpoints["sd1"], "--train_data_dir",
            str(data), "--resolution", "64"]
    assert main(base + ["--output_dir", str(tmp_path / "o"), "--seed", "-1"]) == 2 and read == []
    assert main(base + ["--output_dir", str(tmp_path / "o")]) == 0
    assert read == [str(tiny_checkpoints["sd1"])] and trained == [read]


def test_inspect_a_folder_says_so_and_names_a_file_in_it(tmp_path, capsys):
    from lora_trainer.cli.main import main

    (tmp_path / "b.safetensors").write_bytes(b"")
    (tmp_path / "a.safetensors").write_bytes(b"")
    assert main(["--verbose", "inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path} is a folder, not a LoRA file" in err
    assert f"name one of its .safetensors files, e.g. {tmp_path / 'a.safetensors'}" in err


def test_quiet_libraries_silences_transformers_loading_bars():
    """transformers 5 draws a "Loading weights" bar per text encoder loaded from a diffusers folder."""
    from transformers.utils import logging as tlog

    from lora_trainer.cli.quiet import quiet_libraries

    was = tlog.is_progress_bar_enabled()
    try:
        quiet_libraries()
        assert not tlog.is_progress_bar_enabled()
    finally:
        if was:
            tlog.enable_progress_bar()
