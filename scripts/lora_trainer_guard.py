"""Lets the WebUI's own generations run while a LoRA trains.

On A1111 the trainer moves the WebUI's model off the GPU for the length of a run, and A1111 does not
bring it back by itself. This always-on script (no UI) asks the runner's host adapter to bring the
model back before each txt2img/img2img and to move it off again afterwards. It does nothing when no
training runs, and nothing on Forge, which reloads its model on demand.
"""
import sys

from modules import scripts


def _host():
    runner_module = sys.modules.get("lora_trainer.runner.runner")   # loaded by the tab script, if at all
    runner = runner_module.existing_runner() if runner_module else None
    return getattr(runner, "host", None)


class LoraTrainerHostGuard(scripts.Script):
    def title(self):
        return "LoRA Trainer: host model guard"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def before_process(self, p, *args):
        host = _host()
        if host is not None:
            try:
                host.before_host_generation()
            except Exception as error:   # never break the user's generation
                print(f"[LoRA Trainer] could not bring the model back before generating: {error}", file=sys.stderr)

    def postprocess(self, p, processed, *args):
        host = _host()
        if host is not None:
            try:
                host.after_host_generation()
            except Exception as error:
                print(f"[LoRA Trainer] could not move the model off the GPU again: {error}", file=sys.stderr)
