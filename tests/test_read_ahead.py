"""read_ahead: chunks worked on in threads, results in order, a bounded distance ahead of the consumer."""
import threading
import time

import pytest

from lora_trainer.data import read_ahead as ra


@pytest.fixture(autouse=True)
def four_cores(monkeypatch):
    monkeypatch.setattr(ra.os, "cpu_count", lambda: 4)


def test_results_come_in_order_whatever_finishes_first():
    def slow_first(n):
        time.sleep(0.05 if n % 3 == 0 else 0.001)
        return n * n
    assert list(ra.read_ahead(slow_first, range(10), threads=3)) == [n * n for n in range(10)]


def test_work_runs_in_threads_at_most_twice_the_threads_ahead():
    started, names = [], set()
    lock = threading.Lock()

    def work(n):
        with lock:
            started.append(n)
            names.add(threading.current_thread().name)
        return n
    results = ra.read_ahead(work, range(20), threads=2)
    assert next(results) == 0
    time.sleep(0.05)
    with lock:
        assert len(started) <= 1 + 2 * 2    # the one consumed, and at most four more
    assert list(results) == list(range(1, 20))
    assert all(name.startswith("lora-trainer-read-ahead") for name in names)


def test_an_error_is_raised_at_its_chunk_after_the_results_before_it():
    def work(n):
        if n == 3:
            raise ValueError("chunk 3")
        return n
    got = []
    with pytest.raises(ValueError, match="chunk 3"):
        for value in ra.read_ahead(work, range(8), threads=2):
            got.append(value)
    assert got == [0, 1, 2]


def test_one_thread_or_one_chunk_runs_in_the_caller():
    caller = threading.current_thread().name
    assert list(ra.read_ahead(lambda n: threading.current_thread().name, range(3), threads=1)) == [caller] * 3
    assert list(ra.read_ahead(lambda n: threading.current_thread().name, [0], threads=4)) == [caller]
