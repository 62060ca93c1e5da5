"""The speed a run reports leaves out the CUDA graphs' one-time seconds (a warm-up step, a capture per bucket
shape), so the time left after the first read-back is that of the steps to come."""
import pytest

from lora_trainer.train.step_rate import StepRate


def test_the_first_read_back_of_a_graphed_run_does_not_count_its_captures_as_step_time():
    rate = StepRate(start=100.0)
    # U1 on an H200: ten steps read back 25 s after the loop started, 24 s of it one warm-up step and 7 captures
    speed = rate.update(125.0, 10, one_time_s=24.0)
    assert speed == pytest.approx(10.0)
    assert (150 - 10) / speed == pytest.approx(14.0)     # time left: 14 s (counting the captures: 350 s)


def test_later_read_backs_leave_out_only_what_was_new_since_the_last():
    rate = StepRate(start=0.0)
    rate.update(25.0, 10, one_time_s=24.0)
    assert rate.update(26.0, 20, one_time_s=24.0) == pytest.approx(10.0)        # nothing new: 10 steps in 1 s
    assert rate.update(29.0, 30, one_time_s=26.0) == pytest.approx(10.0)        # a capture of 2 s in 3 s
    assert rate.update(30.0, 40) == pytest.approx(10.0)   # a run without graphs: its total stays 0


def test_a_resumed_run_counts_from_the_step_it_resumed_at():
    rate = StepRate(start=0.0, step=500)
    assert rate.update(5.0, 510) == pytest.approx(2.0)


def test_no_speed_without_steps_or_without_time_to_count():
    rate = StepRate(start=0.0, step=10)
    assert rate.update(1.0, 10) is None
    assert rate.update(3.0, 12, one_time_s=2.5) is None   # the clock says less than the graphs' own seconds
    assert rate.update(4.0, 14, one_time_s=2.5) == pytest.approx(2.0)


def test_an_epochs_end_is_left_out_when_the_next_epoch_restarts_the_clock():
    rate = StepRate(start=0.0, step=0, one_time_s=24.0)   # restarted after the graphs' first seconds
    assert rate.update(2.0, 20, one_time_s=24.0) == pytest.approx(10.0)
    rate.restart(40.0, 20, one_time_s=24.0)   # 38 s of files and previews (Forge on a CPU: a 0.03 it/s read-back)
    assert rate.update(41.0, 30, one_time_s=24.0) == pytest.approx(10.0)
