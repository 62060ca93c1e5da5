"""Time ``train``'s setup: a fresh ``python -m lora_trainer train`` process per run, from its start to its first
training step, and the phases it logs (``setup_times`` in metrics.jsonl: dataset, load, to_device, latents,
prompts, network, optimizer, trainer, total).

Usage: python benchmarks/setup_time.py OUT.jsonl MODEL_PATH DATA_DIR RESOLUTION [--runs N] [--mixed-precision P]
       [--batch B] [--drop-caches] [--check-cast]

MODEL_PATH is a single-file checkpoint or a diffusers folder (e.g. random weights written by
``benchmarks/kohya_prepare.py``, or a ``.safetensors`` made from them); DATA_DIR a kohya dataset folder
(``<repeats>_<name>/`` with images and captions). Each run appends one JSON line to OUT.jsonl: the phases,
``started_s`` (process start → the ``started`` event, imports included) and ``first_step_s`` (→ the first
step's event; steps are reported in groups on a GPU, so this is an upper bound). The wall times come from the
``--events`` file, so a commit without ``setup_times`` is timed as well; the process is stopped at its first
step event. ``--drop-caches`` empties the page
cache before each run (root only), to time a cold read of the model. ``--check-cast`` also checks, in this
process, that weights cast on the device equal weights cast on the CPU (``load_base_model(cast_later=True)``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_config(folder: Path, args) -> Path:
    lines = {
        "pretrained_model_name_or_path": str(Path(args.model).resolve()), "train_data_dir": str(Path(args.data).resolve()),
        "resolution": str(args.resolution), "output_dir": str(folder / "out"), "output_name": "setup_time",
        "train_batch_size": args.batch, "max_train_epochs": 1, "save_every_n_epochs": 1, "save_state": False,
        "mixed_precision": args.mixed_precision, "cache_latents": True, "network_dim": 16, "network_alpha": 16,
        "seed": 1, "gradient_checkpointing": args.gradient_checkpointing,
    }
    path = folder / "config.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in lines.items()), encoding="utf-8")
    return path


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def one_run(args, index: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="setup_time_") as tmp:
        folder = Path(tmp)
        config, events = write_config(folder, args), folder / "events.jsonl"
        cold = drop_caches() if args.drop_caches else False
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)   # keep the caller's
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=path)
        log = open(folder / "stderr.txt", "w+", encoding="utf-8")   # a file: a full pipe would stall the run
        start = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "lora_trainer", "train", "--config", str(config),
                                 "--events", str(events)], cwd=str(ROOT), env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        seen: dict[str, float] = {}
        offset = 0
        while True:   # the events file is written line by line: note when each kind first appears
            done = proc.poll() is not None
            if events.is_file():
                with open(events, encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[: chunk.rfind("\n") + 1]
                offset += len(complete.encode("utf-8"))
                for line in complete.splitlines():
                    kind = json.loads(line).get("type")
                    seen.setdefault(kind, time.time() - start)
            if "step" in seen and not done:   # setup is over: the rest of the run is not timed
                proc.terminate()
                proc.wait()
                done = True
            if done:
                break
            time.sleep(0.01)
        log.seek(0)
        err = log.read()
        log.close()
        record = {"run": index, "model": Path(args.model).name, "resolution": args.resolution,
                  "mixed_precision": args.mixed_precision, "batch": args.batch, "cold_page_cache": cold,
                  "returncode": proc.returncode, "started_s": seen.get("started"), "first_step_s": seen.get("step"),
                  "wall_s": round(time.time() - start, 3)}
        for metrics in (folder / "out" / "logs").glob("*/metrics.jsonl"):
            for line in metrics.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if entry.get("kind") == "setup_times":
                    record["phases"] = {k: v for k, v in entry.items() if k not in ("time", "type", "kind")}
        if proc.returncode:
            record["stderr_tail"] = err[-3000:]
        return record


def check_cast(model: str, mixed_precision: str) -> dict:
    """Weights cast on the device (cast_later) against weights cast on the CPU while loading: equal?"""
    import torch

    sys.path.insert(0, str(ROOT))
    from lora_trainer.models.loading import load_base_model
    from lora_trainer.train.setup import WEIGHT_DTYPES

    dtype = WEIGHT_DTYPES[mixed_precision]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reference = load_base_model(model, dtype=dtype)
    later = load_base_model(model, dtype=dtype, cast_later=True)
    differing, total = [], 0
    pairs = zip((reference.unet, reference.vae, *reference.text_encoders),
                (later.unet, later.vae, *later.text_encoders))
    for name, (a, b) in zip(["unet", "vae", "te1", "te2"], pairs):
        later.place(b, device, dtype)
        sb = b.state_dict()
        for key, value in a.state_dict().items():
            total += 1
            other = sb[key].cpu()
            if value.dtype != other.dtype or not torch.equal(value, other):
                differing.append(f"{name}.{key}")
        b.to("cpu")
    return {"check_cast": not differing, "tensors": total, "differing": differing[:20], "device": str(device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("resolution", type=int)
    p.add_argument("--runs", type=int, default=2, help="the first may read the model from disk, the next from cache")
    p.add_argument("--mixed-precision", default="bf16", choices=["no", "fp16", "bf16"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--drop-caches", action="store_true")
    p.add_argument("--check-cast", action="store_true")
    args = p.parse_args()
    with open(args.out, "a", encoding="utf-8") as out:
        for index in range(args.runs):
            record = one_run(args, index)
            print(json.dumps(record), flush=True)
            out.write(json.dumps(record) + "\n")
        if args.check_cast:
            record = {"model": Path(args.model).name, **check_cast(args.model, args.mixed_precision)}
            print(json.dumps(record), flush=True)
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
