"""The CLI's bar takes the run's own speed (graphs' captures and epochs' ends left out), so its time left is that of
the steps to come, not an hour for a one-minute job."""
import pytest

pytest.importorskip("tqdm")

from lora_trainer.cli.progress import ProgressPrinter  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402


def test_the_bar_shows_the_runs_speed_and_the_time_left_at_it(capsys):
    printer = ProgressPrinter()
    printer(ev.Started(150, 1, 150, "plan"))
    printer(ev.StepEnd(10, 150, 1, 0.9, {"unet": 1e-4}, 10.0, None))
    text = str(printer.bar)
    assert "10/150" in text and "10.00step/s" in text and "00:14" in text   # 140 steps at 10/s
    printer(ev.StepEnd(11, 150, 1, None, {"unet": 1e-4}, None, None))       # no speed this time: the last one stays
    assert "10.00step/s" in str(printer.bar) and "00:13" in str(printer.bar)
    printer(ev.Finished([], False, 0.9))
