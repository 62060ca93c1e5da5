"""Read a base model's weight files into the operating system's file cache in a background thread.

``train`` started from the command line spends several seconds importing torch, diffusers and transformers
before it loads the model; a model read from disk then costs seconds more (SDXL: about 7 GB), and more
where the weights stay memory-mapped until they are cast on the device, page by page in the order the
models use them. Started as soon as the settings are checked, one sequential read overlaps the imports and
the load finds the files cached; setup waits for the read before the load, so that no second reader seeks
on the disk (in a WebUI, where nothing is left to import, that is all it does). The thread only reads (into
one reused buffer, nothing kept), ends with the last file, and never raises; a file the load does not use
is not read. No heavy library is imported here.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Optional

CHUNK_BYTES = 16 << 20
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
FOLDER_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def folder_variant(folder: Path) -> dict:
    """``variant="fp16"`` when a diffusers model folder only holds ``*.fp16.*`` weights (what
    ``from_pretrained`` is then asked for)."""
    names = [f.name for f in folder.glob("*")] if folder.is_dir() else []
    plain = any(re.fullmatch(r"[a-z_]+\.(safetensors|bin)", n) for n in names)
    return {"variant": "fp16"} if not plain and any(".fp16." in n for n in names) else {}


def weight_files(path) -> list[Path]:
    """The files loading ``path`` reads: the checkpoint itself, or a diffusers folder's weights of its
    UNet, VAE and text encoders (safetensors when a part has them, in the variant the load picks)."""
    p = Path(path)
    if p.is_file():
        return [p] if p.suffix.lower() in WEIGHT_SUFFIXES else []
    files: list[Path] = []
    for part in FOLDER_PARTS:
        folder = p / part
        if not folder.is_dir():
            continue
        fp16 = bool(folder_variant(folder))
        weights = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in (".safetensors", ".bin")
                         and (".fp16." in f.name) == fp16)
        safetensors = [f for f in weights if f.suffix == ".safetensors"]
        files += safetensors or weights
    return files


# a read that ended this long ago may have left the cache (a WebUI trains again hours later): read again
REREAD_AFTER_S = 300.0
_reading: dict[tuple, tuple[threading.Thread, float]] = {}
_lock = threading.Lock()


def physical_memory() -> Optional[int]:
    """The machine's memory in bytes: from psutil (accelerate's dependency, so in every environment that
    trains, Windows included), else from ``os.sysconf``; None when neither can tell."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:   # noqa: BLE001  (missing or failing: the POSIX answer, if any)
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def read_ahead(path) -> Optional[threading.Thread]:
    """Start reading ``path``'s weight files in a daemon thread; the thread that is reading them, or read them
    in the last ``REREAD_AFTER_S`` seconds, when there is one (``train`` asks again when its setup begins).
    None when there is nothing to read, or when the files are over half the machine's memory (the cache
    would drop their start before the load reads it)."""
    files = weight_files(path)
    if not files:
        return None
    memory = physical_memory()
    if memory and sum(_size(f) for f in files) > memory // 2:
        return None
    key = tuple(str(f) for f in files)
    with _lock:
        thread, started = _reading.get(key, (None, 0.0))
        if thread is None or (not thread.is_alive() and time.monotonic() - started > REREAD_AFTER_S):
            thread = threading.Thread(target=_read, args=(files,), name="lora-trainer-read-ahead", daemon=True)
            _reading[key] = (thread, time.monotonic())
            thread.start()
    return thread


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0


def _read(files: list[Path]) -> None:
    view = memoryview(bytearray(CHUNK_BYTES))
    for file in files:
        try:
            with open(file, "rb", buffering=0) as fh:
                while fh.readinto(view):
                    pass
        except OSError:   # unreadable: the load reports it
            continue
