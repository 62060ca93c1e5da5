"""The compute threads of a CPU run: chosen by timing its batches, re-measured when the CPU gets busy, set for
the training thread only and given back after the run (CLI, demo and the WebUI runner all go through train())."""
from __future__ import annotations

import threading

import pytest

from lora_trainer.train.cpu_threads import CpuThreads, candidate_counts


class FakeRun:
    """Batches whose duration is ``cost(threads)`` on a fake clock."""

    def __init__(self, max_threads, cost):
        self.now = 0.0
        self.cost = cost
        self.applied = []
        self.tuner = CpuThreads(max_threads, self.applied.append, clock=lambda: self.now, recheck_s=60.0)

    def batches(self, count):
        for _ in range(count):
            self.tuner.batch_started()
            self.now += self.cost(self.tuner.threads)
            self.tuner.batch_done()


def test_candidates_are_one_half_and_all():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(4) == [1, 2, 4]
    assert candidate_counts(16) == [1, 8, 16]


@pytest.mark.parametrize("times,expected", [
    ({1: 0.08, 2: 0.15}, 1),      # tiny model: a second thread only waits at barriers
    ({1: 1.00, 2: 0.55}, 2),      # large operations: two threads pay
    ({1: 0.100, 2: 0.095}, 1),    # within 10%: the fewest threads
])
def test_the_fastest_count_is_chosen(times, expected):
    run = FakeRun(2, times.__getitem__)
    run.batches(12)
    assert run.tuner.chosen == expected
    assert run.applied[-1] == expected
    assert set(run.applied) == {1, 2}   # both were measured


def test_a_busy_cpu_makes_the_run_measure_again_and_drop_threads():
    load = {"busy": False}

    def cost(threads):   # beside another busy process two threads wait for the scheduler at every barrier
        return 0.1 / threads * (30 if load["busy"] and threads > 1 else 1) * (2 if load["busy"] else 1)

    run = FakeRun(2, cost)
    run.batches(12)
    assert run.tuner.chosen == 2
    load["busy"] = True
    busy_from = run.now
    run.batches(40)
    assert run.tuner.chosen == 1
    # 3 slow batches until it shows, 2 more while measuring: a few batches, not the run (40 × 3.0 s)
    assert run.now - busy_from <= 5 * 3.0 + 35 * 0.2 + 1e-9


def test_a_stable_choice_is_measured_less_often_and_the_slow_count_is_given_up_early():
    run = FakeRun(2, {1: 0.05, 2: 0.5}.__getitem__)
    run.batches(12)
    assert run.tuner.chosen == 1
    recheck = run.tuner.recheck_s
    runs_at_two = run.applied.count(2)
    run.batches(int(61 / 0.05) + 20)     # past the re-check: measured again, same answer
    assert run.tuner.choices == [1, 1]
    assert run.tuner.recheck_s == 2 * recheck
    assert runs_at_two == 2 and run.applied.count(2) == 4   # two slow batches each time, then dropped


def test_one_core_measures_nothing():
    run = FakeRun(1, lambda threads: 0.1)
    run.batches(10)
    assert run.applied == [1] and run.tuner.chosen == 1


torch = pytest.importorskip("torch")


def test_training_on_the_cpu_sets_the_count_for_its_thread_and_gives_it_back(tiny_checkpoints, tmp_path,
                                                                              monkeypatch):
    """The caller (a WebUI's worker thread, the CLI's main thread) has 2 threads before and after; while the
    run trains, its thread runs 1 or 2, and a thread that starts torch work meanwhile (the host generating)
    still gets the host's 2."""
    from test_train import DEMO, make_config

    from lora_trainer.train import events as ev
    from lora_trainer.train.loop import train
    from lora_trainer.train.metrics import read_metrics

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)   # the test suite pins 1 thread (conftest.py)
    seen, hosts = [], []

    def listener(event):
        if isinstance(event, ev.StepEnd):
            seen.append(torch.get_num_threads())
            helper = threading.Thread(target=lambda: hosts.append(torch.get_num_threads()))
            helper.start()
            helper.join()

    def in_worker(result):
        torch.set_num_threads(2)
        cfg = make_config(tiny_checkpoints["sd1"], str(DEMO), tmp_path / "out", train_batch_size=1,
                          max_train_epochs=1, save_every_n_epochs=None, network_train_unet_only=True)
        result["train"] = train(cfg, listener=listener, log=lambda *a: None)
        result["after"] = torch.get_num_threads()

    result = {}
    worker = threading.Thread(target=in_worker, args=(result,))   # as the runner's worker thread
    worker.start()
    worker.join()
    assert result["after"] == 2
    assert set(seen) == {1, 2} and hosts and set(hosts) == {2}
    choices = [r for r in read_metrics(result["train"].run_dir) if r.get("kind") == "cpu_threads"]
    assert choices and choices[0]["threads"] in (1, 2) and set(choices[0]["ms_per_batch"]) <= {"1", "2"}


def test_omp_num_threads_pins_the_count(tiny_checkpoints, small_dataset, tmp_path, monkeypatch):
    from test_train import make_config

    from lora_trainer.train import events as ev
    from lora_trainer.train.loop import train

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "out", train_batch_size=1,
                          max_train_steps=3, save_every_n_epochs=None, network_train_unet_only=True)
        train(cfg, listener=lambda e: isinstance(e, ev.StepEnd) and seen.append(torch.get_num_threads()),
              log=lambda *a: None)
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {2}
