"""A job trained the way the WebUI trains one on GPUs other than its own: ``accelerate launch`` of the command line
in a process of its own, its events read back (``runner/processes.py``), on a real CUDA GPU, and stopped half way.

Usage (on a GPU machine): ``python -m benchmarks.subprocess_gpu_check OUT_DIR``; writes ``OUT_DIR/result.json``.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lora_trainer.cli.demo import DEMO_DATA, write_demo_base
from lora_trainer.config.schema import TrainConfig
from lora_trainer.runner.processes import train_in_processes
from lora_trainer.train import events as ev


def run(work: Path, name: str, stop_after: int | None = None) -> dict:
    data = work / "train" / "4_zkz shapes"
    if not data.exists():
        data.mkdir(parents=True)
        for image in sorted(next(DEMO_DATA.iterdir()).glob("*.png"))[:4]:
            shutil.copy(image, data)
            shutil.copy(image.with_suffix(".txt"), data)
    cfg = TrainConfig(pretrained_model_name_or_path=write_demo_base(str(work)), train_data_dir=str(data.parent),
                      output_dir=str(work / "out"), output_name=name, resolution="64", min_bucket_reso=64,
                      max_bucket_reso=128, bucket_reso_steps=64, train_batch_size=2, max_train_epochs=4,
                      save_every_n_epochs=1, network_dim=4, network_alpha=4, learning_rate=2e-3,
                      mixed_precision="bf16", seed=1)
    seen: list = []
    stop = ev.StopRequest()

    def listen(event) -> None:
        seen.append(event)
        steps = sum(isinstance(e, ev.StepEnd) for e in seen)
        if stop_after is not None and steps >= stop_after:
            stop.request()

    started = time.monotonic()
    result = train_in_processes(cfg, gpus=("0",), listener=listen, stop=stop, log=lambda *p: print(*p, flush=True))
    peaks = [e.peak_memory_gb for e in seen if isinstance(e, ev.StepEnd) and e.peak_memory_gb is not None]
    return {"seconds": round(time.monotonic() - started, 1), "steps": result.steps, "stopped": result.stopped,
            "step_events": sum(isinstance(e, ev.StepEnd) for e in seen),
            "files": sorted(p.name for p in (work / "out").glob(f"{name}*.safetensors")),
            "saved_events": [e.kind for e in seen if isinstance(e, ev.FileSaved)],
            "peak_memory_gb": max(peaks) if peaks else None}


def main(out: str) -> int:
    import torch

    work = Path(tempfile.mkdtemp(prefix="subprocess-gpu-"))
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
              "full": run(work, "full"), "stopped": run(work, "halt", stop_after=3)}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "result.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(json.dumps(report, indent=1))
    full, halt = report["full"], report["stopped"]
    ok = (full["steps"] == full["step_events"] > 0 and not full["stopped"] and "full.safetensors" in full["files"]
          and full["peak_memory_gb"] is not None and halt["stopped"] and "halt-interrupted.safetensors" in halt["files"])
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
