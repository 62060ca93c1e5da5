"""io/disk.py: a failed write in the user's words (a full disk above all), output folders probed (no torch)."""
from __future__ import annotations

import errno
import shutil

import pytest

from lora_trainer.errors import DiskFull, OutputError
from lora_trainer.io.disk import check_writable, write_error

SafetensorError = type("SafetensorError", (Exception,), {})


@pytest.mark.parametrize("raised", [
    OSError(errno.ENOSPC, "No space left on device"),
    SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),   # safetensors 0.8
    SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on '
                    'device" })'),   # safetensors 0.4
], ids=["OSError", "safetensors 0.8", "safetensors 0.4"])
def test_a_full_disk_says_what_was_saved_and_how_much_to_free(tmp_path, monkeypatch, raised):
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=3 << 20))
    err = write_error(raised, str(tmp_path / "a-000002.safetensors"), 40 << 20)
    assert isinstance(err, DiskFull)
    assert err.message == f"disk full while saving a-000002.safetensors in {tmp_path}; it needs about 40 MB and 3 MB " \
                          f"are free"
    assert err.advice.startswith("free 41 MB or more, or choose another output folder (output_dir)")


def test_other_failed_writes_name_the_file_and_the_reason(tmp_path):
    short_write = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    err = write_error(short_write, str(tmp_path / "s-state"), 1 << 20, "s-state/")   # the disk has room: not full
    assert type(err) is OutputError and err.message.startswith(f"could not save s-state/ in {tmp_path}: ")
    denied = write_error(PermissionError(errno.EACCES, "Permission denied"), str(tmp_path / "x.safetensors"), 1)
    assert denied.message == f"could not save x.safetensors in {tmp_path}: permission denied"
    assert write_error(ValueError("a bug"), str(tmp_path / "x"), 1) is None   # not a write: the caller re-raises


def test_check_writable_creates_the_folder_and_names_the_setting(tmp_path):
    check_writable(str(tmp_path / "new" / "deeper"), "output_dir")
    assert list((tmp_path / "new" / "deeper").iterdir()) == []
    (tmp_path / "a file").write_text("x")
    with pytest.raises(OutputError, match=r"^logging_dir .*a file/logs cannot be written: a file is in the way"):
        check_writable(str(tmp_path / "a file" / "logs"), "logging_dir")
