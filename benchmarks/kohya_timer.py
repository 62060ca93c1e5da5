"""Run a kohya sd-scripts training script and record when each of its optimizer steps ends.

sd-scripts advances its "steps" progress bar once per optimizer step (and reads the loss on
the host every step, so the bar follows the GPU). This wrapper timestamps those updates,
resets PyTorch's peak-memory counters after the first step, and writes step times and peak
memory as one JSON line (appended; ``KOHYA_JOB`` names it) when the script exits.
It also records when the "steps" bar is made (``loop_start``: setup done, the training loop
begins) and the loss of each optimizer step (the mean of its accumulated batches' losses, as
sd-scripts hands them to its ``LossRecorder``). With ``KOHYA_TIMER_PEAK=loop`` the peak-memory
counters are read (``setup_peak_*``) and reset when the loop begins instead, so that the
first step counts too. A SIGTERM (``timeout``) still writes the line, with the steps so far.
Usage: python benchmarks/kohya_timer.py RESULT.jsonl SKIP SD_SCRIPTS_DIR SCRIPT.py [script args...]
"""
import atexit
import json
import os
import runpy
import signal
import statistics
import sys
import time

import torch
import tqdm

out_path, skip, root, script, *script_args = sys.argv[1:]
skip = int(skip)
stamps: list[float] = []
wall: list[float] = []  # the same moments as Unix times
memory = {"allocated": 0, "reserved": 0}
started = time.perf_counter()
peak_from_loop = os.environ.get("KOHYA_TIMER_PEAK") == "loop"
loop: dict = {}        # loop_start, setup peaks, the training LossRecorder's id
losses: list[float] = []
micro: list[float] = []   # losses of the batches of the optimizer step in progress
main_pid = os.getpid()
_update = tqdm.tqdm.update
_init = tqdm.tqdm.__init__


def update(self, n=1):
    if str(getattr(self, "desc", "")).startswith("steps"):
        stamps.append(time.perf_counter())
        wall.append(time.time())
        loop["updated"] = True
        if not torch.cuda.is_available():
            pass
        elif len(stamps) == 1 and not peak_from_loop:
            torch.cuda.reset_peak_memory_stats()
        else:
            memory["allocated"] = max(memory["allocated"], torch.cuda.max_memory_allocated())
            memory["reserved"] = max(memory["reserved"], torch.cuda.max_memory_reserved())
    return _update(self, n)


def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    if str(getattr(self, "desc", "")).startswith("steps") and "start" not in loop:
        loop["start"] = time.time()
        record_losses()
        if peak_from_loop and torch.cuda.is_available():
            loop["setup_allocated"] = torch.cuda.max_memory_allocated()
            loop["setup_reserved"] = torch.cuda.max_memory_reserved()
            torch.cuda.reset_peak_memory_stats()


def record_losses() -> None:
    """Wrap ``LossRecorder.add`` (one call per batch, after the bar's update when the batch ended a step)."""
    recorder = getattr(sys.modules.get("library.train_util"), "LossRecorder", None)
    if recorder is None:
        return
    add = recorder.add

    def recorded_add(self, *args, **kwargs):
        loop.setdefault("recorder", id(self))   # the training one adds first; validation ones come later
        if id(self) == loop["recorder"]:
            micro.append(float(kwargs.get("loss", args[-1] if args else float("nan"))))
            if loop.pop("updated", False):
                losses.append(statistics.fmean(micro))
                micro.clear()
        return add(self, *args, **kwargs)
    recorder.add = recorded_add


tqdm.tqdm.update = update
tqdm.tqdm.__init__ = init
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@atexit.register
def report() -> None:
    if os.getpid() != main_pid:   # a data-loader worker
        return
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][skip:]
    result = {"job": os.environ.get("KOHYA_JOB", ""), "script": script, "args": script_args, "steps": len(stamps), "timed_steps": len(gaps),
              "ms_per_step_median": statistics.median(gaps) * 1e3 if gaps else None,
              "ms_per_step_mean": statistics.fmean(gaps) * 1e3 if gaps else None,
              "peak_allocated_gb": memory["allocated"] / 1e9, "peak_reserved_gb": memory["reserved"] / 1e9,
              "start_to_first_step_s": stamps[0] - started if stamps else None,
              "wall_s": time.perf_counter() - started, "step_times": [round(t, 4) for t in wall],
              "loop_start": loop.get("start"), "peak_from": "loop" if peak_from_loop else "step 1",
              "setup_peak_allocated_gb": loop.get("setup_allocated", 0) / 1e9,
              "setup_peak_reserved_gb": loop.get("setup_reserved", 0) / 1e9, "losses": losses,
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__}
    with open(out_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    print("kohya_timer:", json.dumps(result), flush=True)


sys.path.insert(0, root)
os.chdir(root)
sys.argv = [script, *script_args]
runpy.run_path(script, run_name="__main__")
