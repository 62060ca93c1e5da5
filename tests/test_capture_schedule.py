"""When each bucket shape of the CUDA-graph step is captured (CaptureSchedule: pure bookkeeping, so it is
checked here on the CPU; the captures themselves by benchmarks/options_graph_check.py on a GPU)."""
import pytest

pytest.importorskip("torch")

from lora_trainer.train.graphs import CaptureSchedule  # noqa: E402

A, B, C, D = ("a",), ("b",), ("c",), ("d",)


def drive(schedule, keys, fails=()):
    """Run ``keys`` as steps; a capture of a key in ``fails`` (a set of (key, attempt)) raises. Returns what
    each step did: 'eager' or 'capture'; a failed capture's step runs eagerly."""
    done, attempts, captured = [], {}, set()
    for key in keys:
        if key in captured:
            done.append("replay")
            continue
        if schedule.capture_now(key):
            attempts[key] = attempts.get(key, 0) + 1
            if (key, attempts[key]) in fails:
                schedule.capture_failed(key, f"RuntimeError: {key[0]} {attempts[key]}")
            else:
                schedule.capture_succeeded(key)
                captured.add(key)
                done.append("capture")
                continue
        schedule.ran_eager(key)
        done.append("eager")
    return done


def test_the_warmup_steps_may_be_of_any_shapes_then_every_shape_is_captured_at_once():
    schedule = CaptureSchedule(first_warmup=3)
    assert drive(schedule, [A, B, C, A, A, B, C, D]) == ["eager", "eager", "eager", "capture", "replay", "capture",
                                                         "capture", "capture"]
    # three eager steps of three shapes made the lazy state; D never ran eagerly
    summary = schedule.summary()
    assert summary["captured"] == 4 and summary["without_warmup"] == 1
    assert schedule.failed is None


def test_one_warmup_step_then_the_next_shape_is_captured_whatever_it_is():
    schedule = CaptureSchedule(first_warmup=1)
    assert drive(schedule, [A, B, A, C]) == ["eager", "capture", "capture", "capture"]
    assert schedule.summary()["without_warmup"] == 2


def test_compiled_blocks_give_each_new_shape_one_eager_step():
    schedule = CaptureSchedule(first_warmup=1, later_warmup=1)
    assert drive(schedule, [A, A, B, B, B]) == ["eager", "capture", "eager", "capture", "replay"]


def test_a_shape_whose_capture_fails_without_warmup_is_retried_after_one_eager_step():
    schedule = CaptureSchedule(first_warmup=1)
    steps = drive(schedule, [A, A, B, B, B], fails={(B, 1)})
    assert steps == ["eager", "capture", "eager", "capture", "replay"]
    assert schedule.failed is None                     # recovered: nothing left eager
    assert schedule.summary()["failed_captures"] == 1 and schedule.summary()["eager_only"] == 0


def test_a_shape_that_fails_after_warmup_stays_eager_and_the_others_are_still_captured():
    schedule = CaptureSchedule(first_warmup=1)
    steps = drive(schedule, [A, A, B, B, B, C, A], fails={(B, 1), (B, 2)})
    assert steps == ["eager", "capture", "eager", "eager", "eager", "capture", "replay"]
    assert schedule.failed == "RuntimeError: b 2"
    summary = schedule.summary()
    assert summary["eager_only"] == 1 and not summary["all_eager"] and summary["captured"] == 2


def test_when_the_first_shape_cannot_be_captured_every_step_stays_eager():
    schedule = CaptureSchedule(first_warmup=2)
    steps = drive(schedule, [A, A, A, B, B, A], fails={(A, 1)})
    assert steps == ["eager"] * 6
    assert schedule.summary()["all_eager"] and schedule.failed == "RuntimeError: a 1"


def test_the_one_time_seconds_are_the_captures_and_warmup_steps_so_far():
    schedule = CaptureSchedule(first_warmup=1)
    assert schedule.one_time_seconds == 0.0
    schedule.warmup_seconds.append(3.5)
    schedule.capture_seconds += [2.0, 1.5]
    assert schedule.one_time_seconds == pytest.approx(7.0)
