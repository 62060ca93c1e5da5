"""Training events as a tqdm bar and a few plain lines (the CLI and the demo print them)."""
from __future__ import annotations

from ..text.messages import msg


def step_bar(**kwargs):
    """A tqdm bar whose speed (and so its time left) is the run's own once the run reports one
    (``StepEnd.it_per_s``: the CUDA graphs' one-time seconds and the epochs' ends left out,
    train/step_rate.py), not tqdm's average, which the first steps' captures made read an hour
    left for a one-minute job."""
    from tqdm.auto import tqdm

    class StepBar(tqdm):
        speed = None

        @property
        def format_dict(self):
            values = super().format_dict
            if self.speed:
                values["rate"] = self.speed
            return values
    return StepBar(**kwargs)


class ProgressPrinter:
    """Turns training events into a tqdm bar and a few plain lines."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event) -> None:
        from ..train import events as ev
        from .messages import said, text_in_language
        if isinstance(event, ev.Started):
            print(text_in_language(event.plan_text))
            for warning in event.warnings:
                print(said("cli.warning", text=text_in_language(warning)))
            self.bar = step_bar(total=event.total_steps, initial=event.start_step, unit="step", dynamic_ncols=True)
        elif isinstance(event, ev.StepEnd) and self.bar is not None:
            self.bar.speed = event.it_per_s or self.bar.speed
            self.bar.update(event.step - self.bar.n)
            if event.loss is not None:
                self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.4f}", refresh=False)
        elif isinstance(event, ev.EpochEnd) and self.bar is not None:
            self.bar.write(said("cli.epoch_loss", epoch=event.epoch, loss=event.mean_loss, step=event.step))
        elif isinstance(event, ev.Validated) and self.bar is not None:
            what = msg("cli.held_out" if event.source == "holdout" else "cli.training")
            self.bar.write(said("cli.validation_loss", epoch=event.epoch, loss=event.loss, images=event.images,
                                what=what))
        elif isinstance(event, ev.FileSaved) and self.bar is not None:
            self.bar.write(said("cli.saved", path=event.path))
        elif isinstance(event, (ev.Finished, ev.Failed)):
            if self.bar is not None:
                self.bar.close()
            if isinstance(event, ev.Failed) and event.files:   # what is on disk, before the error is printed
                print(said("cli.files_before"))
                for path in event.files:
                    print(f"  {path}")
