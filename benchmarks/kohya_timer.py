"""Run a kohya sd-scripts training script and record when each of its optimizer steps ends.

sd-scripts advances its "steps" progress bar once per optimizer step (and reads the loss on
the host every step, so the bar follows the GPU). This wrapper timestamps those updates,
resets PyTorch's peak-memory counters after the first step, and writes step times and peak
memory as one JSON line (appended; ``KOHYA_JOB`` names it) when the script exits.
Usage: python benchmarks/kohya_timer.py RESULT.jsonl SKIP SD_SCRIPTS_DIR SCRIPT.py [script args...]
"""
import atexit
import json
import os
import runpy
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
_update = tqdm.tqdm.update


def update(self, n=1):
    if str(getattr(self, "desc", "")).startswith("steps"):
        stamps.append(time.perf_counter())
        wall.append(time.time())
        if not torch.cuda.is_available():
            pass
        elif len(stamps) == 1:
            torch.cuda.reset_peak_memory_stats()
        else:
            memory["allocated"] = max(memory["allocated"], torch.cuda.max_memory_allocated())
            memory["reserved"] = max(memory["reserved"], torch.cuda.max_memory_reserved())
    return _update(self, n)


tqdm.tqdm.update = update


@atexit.register
def report() -> None:
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][skip:]
    result = {"job": os.environ.get("KOHYA_JOB", ""), "script": script, "args": script_args, "steps": len(stamps), "timed_steps": len(gaps),
              "ms_per_step_median": statistics.median(gaps) * 1e3 if gaps else None,
              "ms_per_step_mean": statistics.fmean(gaps) * 1e3 if gaps else None,
              "peak_allocated_gb": memory["allocated"] / 1e9, "peak_reserved_gb": memory["reserved"] / 1e9,
              "start_to_first_step_s": stamps[0] - started if stamps else None,
              "wall_s": time.perf_counter() - started, "step_times": [round(t, 4) for t in wall],
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__}
    with open(out_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    print("kohya_timer:", json.dumps(result), flush=True)


sys.path.insert(0, root)
os.chdir(root)
sys.argv = [script, *script_args]
runpy.run_path(script, run_name="__main__")
