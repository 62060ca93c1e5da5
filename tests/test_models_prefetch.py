"""The model files read ahead while ``train`` imports its libraries: which files, all of their bytes, no errors."""
from __future__ import annotations

from lora_trainer.models import prefetch
from lora_trainer.models.prefetch import folder_variant, read_ahead, weight_files


def write(path, size: int = 10):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
    return path


def test_a_single_file_is_read_and_a_file_of_another_kind_is_not(tmp_path):
    model = write(tmp_path / "model.safetensors")
    assert weight_files(model) == [model]
    assert weight_files(write(tmp_path / "old.CKPT")) == [tmp_path / "old.CKPT"]
    assert weight_files(write(tmp_path / "notes.txt")) == []
    assert weight_files(tmp_path / "missing.safetensors") == [] and read_ahead(tmp_path / "missing") is None


def test_a_diffusers_folder_gives_the_weights_its_load_reads(tmp_path):
    unet = write(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    write(tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors")   # another variant: not loaded
    write(tmp_path / "unet" / "config.json")
    vae = write(tmp_path / "vae" / "diffusion_pytorch_model.fp16.safetensors")   # only fp16: the load takes it
    te = write(tmp_path / "text_encoder" / "pytorch_model.bin")                  # no safetensors: the pickle
    shards = [write(tmp_path / "text_encoder_2" / f"model-0000{i}-of-00002.safetensors") for i in (1, 2)]
    write(tmp_path / "text_encoder_2" / "model.safetensors.index.json")
    write(tmp_path / "scheduler" / "scheduler_config.json")
    assert weight_files(tmp_path) == [unet, vae, te, *shards]
    assert folder_variant(tmp_path / "vae") == {"variant": "fp16"} and folder_variant(tmp_path / "unet") == {}


def test_every_byte_is_read_in_chunks_and_an_unreadable_file_is_skipped(tmp_path, monkeypatch):
    files = [write(tmp_path / "a.safetensors", 1000), write(tmp_path / "b.safetensors", 300)]
    read: dict[str, int] = {}
    real_open = open

    class Counting:
        def __init__(self, path, *args, **kwargs):
            if path.name == "gone.safetensors":
                raise PermissionError(path)
            self.fh, self.name = real_open(path, *args, **kwargs), path.name

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def readinto(self, view):
            n = self.fh.readinto(view)
            read[self.name] = read.get(self.name, 0) + n
            return n

    monkeypatch.setattr(prefetch, "open", Counting, raising=False)
    monkeypatch.setattr(prefetch, "CHUNK_BYTES", 256)
    prefetch._read([tmp_path / "gone.safetensors", *files])   # no exception: the load reports the file
    assert read == {"a.safetensors": 1000, "b.safetensors": 300}

    thread = read_ahead(files[0])
    thread.join(timeout=30)
    assert not thread.is_alive() and thread.daemon and read["a.safetensors"] == 2000


def test_asking_again_while_the_files_are_read_starts_no_second_reader(tmp_path, monkeypatch):
    import threading

    model = write(tmp_path / "model.safetensors")
    release, started = threading.Event(), []
    monkeypatch.setattr(prefetch, "_read", lambda files: started.append(files) or release.wait(30))
    first = read_ahead(model)
    assert read_ahead(model) is first and len(started) == 1
    release.set()
    first.join(timeout=30)
    assert read_ahead(model) is first and len(started) == 1   # just read: still cached
    monkeypatch.setattr(prefetch, "REREAD_AFTER_S", -1.0)
    again = read_ahead(model)      # long ago: a later run reads again (the cache may have dropped the file)
    again.join(timeout=30)
    assert again is not first and len(started) == 2


def test_files_over_half_the_memory_are_not_read_ahead(tmp_path, monkeypatch):
    model = write(tmp_path / "model.safetensors", 1000)
    monkeypatch.setattr(prefetch, "physical_memory", lambda: 1999)
    assert read_ahead(model) is None
    monkeypatch.setattr(prefetch, "physical_memory", lambda: None)   # unknown: read
    assert read_ahead(model).join(timeout=30) is None


def test_the_memory_is_known_with_or_without_psutil(monkeypatch):
    import sys

    import pytest

    known = prefetch.physical_memory()
    if known is None:
        pytest.skip("this machine tells neither psutil nor os.sysconf")
    assert known > 2**20
    monkeypatch.setitem(sys.modules, "psutil", None)   # import fails: os.sysconf's answer, the same total
    assert prefetch.physical_memory() == (known if hasattr(prefetch.os, "sysconf") else None)
