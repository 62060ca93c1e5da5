"""A run on several GPUs: ``accelerate launch`` of the command line in other processes, watched like the
in-process loop.

``train_in_processes`` has the signature of ``train.loop.train``: the runner calls either. The settings go to a
TOML file, the command line writes its events as JSON lines (``--events``), and they are read back here into
the same event objects for the job (progress, losses, files, previews, errors). A stop is a SIGINT to the main
training process, which agrees with the others on the batch to stop at and saves ``-interrupted``, as Ctrl+C
does. The launch's files (settings, events, output) are kept in a temporary folder, and left there only when
the run fails, for its output to be read.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Sequence

from ..config.files import save_config
from ..config.schema import TrainConfig
from ..errors import TrainerError
from ..text.messages import msg, sentence
from ..train import events as ev
from ..train.event_records import RecordedFailure, from_record, read_records, recorded_result, text_from_record
from . import messages  # noqa: F401  (registers the sentences)
from .gpus import physical_ids, trains_here

# the folder that holds the package, for the worker thread's and the new processes' imports (A1111 takes the
# extension folder off sys.path once the tab script is imported)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAIL_LINES = 12


def trainer_for(gpus: Sequence[str]):
    """``train.loop.train`` for none chosen or the GPU this process uses (a thread here); the launch for several,
    or for another GPU than this process's."""
    if not trains_here(gpus):
        return functools.partial(train_in_processes, gpus=tuple(str(g) for g in gpus))
    from ..train.loop import train
    return train


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(processes: int, python: str = sys.executable) -> list[str]:
    """``accelerate launch`` of ``python -m lora_trainer`` in ``processes`` processes on this machine."""
    several = ["--multi_gpu"] if processes > 1 else []
    return [python, "-m", "accelerate.commands.launch", *several, "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "lora_trainer"]


def launch_env(gpus: Sequence[str]) -> dict:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(physical_ids(gpus)),
                PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, path] if path else [PACKAGE_PARENT]))


def train_in_processes(cfg: TrainConfig, *, gpus: Sequence[str], listener=None, stop=None, log=print,
                       poll_s: float = 0.2):
    """Train ``cfg`` on ``gpus`` (one process each); returns the command line's ``TrainResult`` or raises its
    error as a ``TrainerError``."""
    stop = stop or ev.StopRequest()
    work = tempfile.mkdtemp(prefix="lora_trainer-launch-")
    config, events, output = (os.path.join(work, name) for name in ("settings.toml", "events.jsonl", "output.log"))
    save_config(cfg, config)
    log(sentence("processes.started" if len(gpus) > 1 else "processes.started_one", count=len(gpus),
                 gpus=",".join(gpus), log=output))
    with open(output, "wb") as out:
        proc = subprocess.Popen([*launch_command(len(gpus)), "train", "--config", config, "--events", events],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=launch_env(gpus))
    watch = _Watch(listener, log)
    offset = 0
    while True:
        ended = proc.poll() is not None   # before reading: every line written before the end is read below
        records, offset = read_records(events, offset)
        for record in records:
            watch.take(record)
        if stop.requested and watch.pid and not watch.signalled:
            _interrupt(watch.pid)
            watch.signalled = True
        if ended:
            break
        time.sleep(poll_s)
    if watch.result is not None:
        shutil.rmtree(work, ignore_errors=True)
        return recorded_result(watch.result)
    if watch.failure is not None:
        err = watch.failure
        if err.unexpected:
            raise TrainerError(msg("runner.unexpected", kind=err.kind, error=err.message),
                               msg("processes.unexpected.advice", log=output))
        raise err
    raise TrainerError(msg("processes.exited", code=proc.returncode, tail=_tail(output)),
                       msg("processes.exited.advice", log=output))


class _Watch:
    """What the records said so far; events go on to the listener, setup lines to the log."""

    def __init__(self, listener, log) -> None:
        self.listener, self.log = listener, log
        self.pid = None
        self.signalled = False
        self.result = None
        self.failure: RecordedFailure | None = None

    def take(self, record: dict) -> None:
        kind = record.get("type")
        if kind == "process":
            self.pid = int(record["pid"])
        elif kind == "log":
            self.log(text_from_record(record.get("text", "")))
        elif kind == "result":
            self.result = record
        else:
            event = from_record(record)
            if isinstance(event, ev.Failed):
                self.failure = event.error
            if event is not None and self.listener is not None:
                self.listener(event)


def _interrupt(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        pass   # already ended: its records say how


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [line.rstrip() for line in fh if line.strip() and "%|" not in line]   # not the progress bar
    except OSError:
        return ""
    return "\n".join(lines[-TAIL_LINES:])
