"""A scripted stand-in for the training loop (``lora_trainer.train.loop.train``): the events of a real
run, files written as tiny kohya-keyed LoRAs, and hooks to fail or pause, without torch."""
from __future__ import annotations

import os
import sys
import threading
import types

import fake_host
from lora_trainer.train import events as ev


class Script:
    """What the scripted loop does: steps per epoch, epochs, an error to raise, a step to pause at."""

    def __init__(self, steps_per_epoch=2, epochs=2, error=None, pause_at=None):
        self.steps_per_epoch, self.epochs, self.error, self.pause_at = steps_per_epoch, epochs, error, pause_at
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.runs = []

    def train(self, cfg, *, listener=None, stop=None, log=print):
        self.runs.append(cfg.output_name)
        log("Loading the base model…")
        if self.error is not None:
            listener(ev.Failed(self.error, []))
            raise self.error
        total = self.steps_per_epoch * self.epochs
        run_dir = os.path.join(cfg.effective_logging_dir, f"{cfg.output_name}-scripted")
        listener(ev.Started(total, self.epochs, self.steps_per_epoch, "Step maths: scripted", ["few images"], 0,
                            run_dir))
        files, step, means = [], 0, []

        def save(kind, epoch, name):
            path = os.path.join(cfg.output_dir, f"{name}.safetensors")
            fake_host.write_lora(path, "sd1")
            files.append(path)
            listener(ev.FileSaved(path, epoch, step, None, kind))
            listener(ev.SampleWanted(path, epoch, step))

        for epoch in range(1, self.epochs + 1):
            for _ in range(self.steps_per_epoch):
                if step == self.pause_at:
                    self.paused.set()
                    while not self.resume.wait(0.05) and not stop.requested:
                        pass
                if stop.requested:
                    save("interrupted", epoch - 1, f"{cfg.output_name}-interrupted")
                    listener(ev.Finished(list(files), True, None))
                    return types.SimpleNamespace(files=files, stopped=True, steps=step, epoch_losses=means,
                                                 run_dir=run_dir)
                step += 1
                listener(ev.StepEnd(step, total, epoch, 1.0 / step, {"unet": 1e-4, "text_encoder": 5e-5}, 2.0, 1.5))
            means.append(1.0 / step)
            listener(ev.EpochEnd(epoch, step, means[-1]))
            save("epoch", epoch, f"{cfg.output_name}-{epoch:06d}")
        save("final", self.epochs, cfg.output_name)
        listener(ev.Finished(list(files), False, means[-1]))
        return types.SimpleNamespace(files=files, stopped=False, steps=step, epoch_losses=means,
                                     run_dir=run_dir)


def install(monkeypatch) -> Script:
    """Replace the training loop for the rest of the test; returns the script to steer it."""
    script = Script()
    loop = types.ModuleType("lora_trainer.train.loop")
    loop.train = lambda cfg, **kwargs: script.train(cfg, **kwargs)
    monkeypatch.setitem(sys.modules, "lora_trainer.train.loop", loop)
    return script
