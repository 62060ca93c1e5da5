"""Training events as a tqdm bar and a few plain lines (the CLI and the demo print them)."""
from __future__ import annotations


class ProgressPrinter:
    """Turns training events into a tqdm bar and a few plain lines."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event) -> None:
        from tqdm.auto import tqdm

        from ..train import events as ev
        if isinstance(event, ev.Started):
            print(event.plan_text)
            for warning in event.warnings:
                print(f"warning: {warning}")
            self.bar = tqdm(total=event.total_steps, initial=event.start_step, unit="step", dynamic_ncols=True)
        elif isinstance(event, ev.StepEnd) and self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            if event.loss is not None:
                self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.4f}", refresh=False)
        elif isinstance(event, ev.EpochEnd) and self.bar is not None:
            self.bar.write(f"epoch {event.epoch}: mean loss {event.mean_loss:.4f} (step {event.step})")
        elif isinstance(event, ev.Validated) and self.bar is not None:
            what = "held-out" if event.source == "holdout" else "training"
            self.bar.write(f"epoch {event.epoch}: validation loss {event.loss:.4f} ({event.images} {what} images)")
        elif isinstance(event, ev.FileSaved) and self.bar is not None:
            self.bar.write(f"saved {event.path}")
        elif isinstance(event, (ev.Finished, ev.Failed)):
            if self.bar is not None:
                self.bar.close()
            if isinstance(event, ev.Failed) and event.files:   # what is on disk, before the error is printed
                print("Files saved before it stopped:")
                for path in event.files:
                    print(f"  {path}")
