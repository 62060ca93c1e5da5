"""Atomic writes survive SIGKILL mid-write and exceptions; stale temps are cleaned up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lora_trainer.io.atomic import atomic_write, cleanup_stale_temps, save_safetensors_atomic, temp_path_for

ROOT = Path(__file__).resolve().parents[1]


def temps(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if ".tmp-" in p.name]


def test_temp_name_is_hidden_next_to_target(tmp_path):
    tmp = temp_path_for(tmp_path / "out.safetensors")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(f".out.safetensors.tmp-{os.getpid()}-")


def test_success_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and not tmp.exists()
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert temps(tmp_path) == []


def test_exception_keeps_previous_file_and_removes_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert temps(tmp_path) == []


def test_nothing_written_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "a.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_unicode_path_with_spaces(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file
    from safetensors import safe_open

    folder = tmp_path / "Mes LoRA été 日本語 ✓"
    folder.mkdir()
    target = folder / "my lora — v2 (ß).safetensors"
    tensors = {"lora_unet_x.lora_down.weight": torch.arange(12, dtype=torch.float16).reshape(3, 4)}
    save_safetensors_atomic(tensors, target, {"ss_network_dim": "4", "ss_tag": "ünïcode"})
    assert torch.equal(load_file(str(target))["lora_unet_x.lora_down.weight"], tensors["lora_unet_x.lora_down.weight"])
    with safe_open(str(target), "pt") as f:
        assert f.metadata() == {"ss_network_dim": "4", "ss_tag": "ünïcode"}
    assert temps(folder) == []
    with pytest.raises(TypeError, match="metadata"):
        save_safetensors_atomic(tensors, target, {"ss_network_dim": 4})
    assert temps(folder) == []


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from lora_trainer.io.atomic import atomic_write
    chunk = b"\\xab" * (8 << 20)
    with atomic_write(sys.argv[2]) as tmp:
        with open(tmp, "wb") as f:
            for i in range(10_000):  # up to ~80 GB: it is killed long before
                f.write(chunk)
                f.flush()
                if i == 3:
                    print("writing", flush=True)
                time.sleep(0.05)
""")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_sigkill_mid_write_keeps_previous_file(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    folder = tmp_path / "out dir"
    folder.mkdir()
    target = folder / "lora.safetensors"
    previous = {"w": torch.randn(256, 256)}
    save_safetensors_atomic(previous, target, {"epoch": "1"})
    size_before = target.stat().st_size

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(target)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = child.stdout.readline()
        assert line.strip() == b"writing", child.stderr.read().decode()
        leftovers = temps(folder)
        assert len(leftovers) == 1 and leftovers[0].stat().st_size >= 32 << 20  # mid-write, large
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()

    assert target.stat().st_size == size_before
    assert torch.equal(load_file(str(target))["w"], previous["w"])
    leftovers = temps(folder)
    assert len(leftovers) == 1 and f"tmp-{child.pid}-" in leftovers[0].name

    assert cleanup_stale_temps(folder) == leftovers  # the writer is gone
    assert temps(folder) == []
    assert torch.equal(load_file(str(target))["w"], previous["w"])


def test_cleanup_keeps_live_writers_and_other_files(tmp_path):
    live = tmp_path / f".a.bin.tmp-{os.getpid()}-0123abcd"
    live.write_bytes(b"x")
    other = tmp_path / "notes.tmp-1-2"
    other.write_bytes(b"x")
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    dead = tmp_path / f".b.bin.tmp-{dead_proc.pid}-deadbeef"
    dead.write_bytes(b"x")
    old = tmp_path / f".c.bin.tmp-{os.getpid()}-00000001"
    old.write_bytes(b"x")
    long_ago = time.time() - 7200
    os.utime(old, (long_ago, long_ago))

    removed = cleanup_stale_temps(tmp_path)
    expected = {old} | ({dead} if os.name == "posix" else set())
    assert set(removed) == expected
    assert live.exists() and other.exists()
    assert cleanup_stale_temps(tmp_path / "missing") == []
