"""Peak GPU memory of a whole ``train`` run, setup included: runs the CLI in this process, then
appends one JSON line with PyTorch's peak allocated / reserved memory (GB) for the process, and
(where the run logged them) the setup's peak and the training steps' peak from ``metrics.jsonl``, and the
mean loss of the first and the last ten steps.
``lora_trainer`` comes from PYTHONPATH, so two versions of it can be compared on one job.
Usage: python benchmarks/train_memory.py RESULT.jsonl LABEL [--preset NAMES] [--cap-gib G] -- <train arguments>
  --preset NAMES: the presets (presets.py; comma-separated, applied in order, e.g.
                 character,sdxl-12gb) as a config file; the train arguments override it
  --cap-gib G:   PyTorch's allocator is capped at G GiB (``set_per_process_memory_fraction``), as the
                 benchmark's preset check does; a run that needs more fails with out-of-memory
"""
import glob
import json
import os
import sys
import tempfile
import time

import torch

from lora_trainer.cli.main import main
from lora_trainer.config.files import save_config
from lora_trainer.config.presets import apply_preset
from lora_trainer.config.schema import TrainConfig

result_path, label = sys.argv[1], sys.argv[2]
own = sys.argv[3:sys.argv.index("--")]
args = sys.argv[sys.argv.index("--") + 1:]
options = dict(zip(own[::2], own[1::2]))
record = {"label": label}
if "--preset" in options:
    cfg = TrainConfig()
    for name in options["--preset"].split(","):
        cfg = apply_preset(cfg, name)
    preset_file = os.path.join(tempfile.mkdtemp(), "preset.toml")
    save_config(cfg, preset_file)
    args = ["--config", preset_file, *args]
    record["preset"] = options["--preset"]
if "--cap-gib" in options:
    cap = float(options["--cap-gib"])
    torch.cuda.set_per_process_memory_fraction(cap * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    record["cap_gb"] = round(cap * 2**30 / 1e9, 2)
output_dir = args[args.index("--output_dir") + 1]
start = time.perf_counter()
rc = main(["train", *args])
record.update(rc=rc, wall_s=round(time.perf_counter() - start, 1),
              process_peak_allocated_gb=torch.cuda.max_memory_allocated() / 1e9,
              process_peak_reserved_gb=torch.cuda.max_memory_reserved() / 1e9)
for path in glob.glob(os.path.join(output_dir, "logs", "*", "metrics.jsonl")):
    with open(path, encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    setup = [r for r in lines if r.get("kind") == "setup_memory"]
    steps = [r for r in lines if r.get("type") == "step"]
    if setup:   # GiB in metrics.jsonl
        record["setup_peak_reserved_gb"] = setup[-1]["peak_reserved_gb"] * 2**30 / 1e9
        record["setup_peak_allocated_gb"] = setup[-1]["peak_mem_gb"] * 2**30 / 1e9
    if steps and "peak_reserved_gb" in steps[-1]:
        record["steps_peak_reserved_gb"] = steps[-1]["peak_reserved_gb"] * 2**30 / 1e9
        record["steps_peak_allocated_gb"] = steps[-1]["peak_mem_gb"] * 2**30 / 1e9
    if len(steps) >= 10:   # the loss, to compare two runs of one job (e.g. fp8_base on and off)
        record["first_losses_mean"] = sum(r["loss"] for r in steps[:10]) / 10
        record["last_losses_mean"] = sum(r["loss"] for r in steps[-10:]) / 10
    later = [r for r in steps if r["step"] >= 20]   # after the warm-up and the graph capture
    if len(later) > 1 and later[-1]["step"] > later[0]["step"]:
        record["ms_per_step"] = 1000 * (later[-1]["time"] - later[0]["time"]) / (later[-1]["step"] - later[0]["step"])
with open(result_path, "a", encoding="utf-8") as fh:
    fh.write(json.dumps(record) + "\n")
print(json.dumps(record))
