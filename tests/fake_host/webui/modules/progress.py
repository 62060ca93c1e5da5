"""Fake ``modules.progress``."""
from . import _fake


def add_task_to_queue(id_job) -> None:
    _fake.record(f"add_task_to_queue:{id_job}")


def start_task(id_task) -> None:
    _fake.record(f"start_task:{id_task}")


def finish_task(id_task) -> None:
    _fake.record(f"finish_task:{id_task}")
