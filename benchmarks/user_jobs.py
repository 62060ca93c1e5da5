"""User jobs: realistic LoRA trainings, ours (``lora_trainer.train.loop.train``, the CLI's path) against kohya
sd-scripts with the same settings and data, on one GPU. Each job and trainer gives: the steady step time (median ms
per optimizer step after warm-up), end-to-end wall time (process start to the last LoRA file written), setup time
(process start to the training loop), peak GPU memory during the steps (PyTorch allocated / reserved, GiB) and the
loss of every step. ``JOBS`` below is the one table of the jobs' settings (kohya's names, which are also ours);
both command lines are made from it.

  python benchmarks/user_jobs.py prepare [JOB ...] [--work W] [--tiny] [--full sd15]
      random-weight models and the jobs' data sets (smooth random images in eight aspect ratios, tag captions);
      --tiny: our tiny models and 128-px images instead, for a CPU smoke test (``--full sd15`` also writes the
      full-size random SD1.5 that kohya needs: it cannot load tiny models)
  python benchmarks/user_jobs.py ours JOB [--work W] [--start UNIX] [--epochs N] [--repeats N] [--max-steps N]
  python benchmarks/user_jobs.py kohya JOB [same options] [--sd-scripts DIR] [--print]
      train one job (--start: when the caller started the process; the same options must go to ``record``)
  python benchmarks/user_jobs.py record ours|kohya JOB --rc RC --start UNIX --end UNIX --log FILE --out RESULT.jsonl
      one result line from what a run left (also a crashed or timed-out one: its status and last log lines)
  python benchmarks/user_jobs.py report RESULT.jsonl       (limit JOB SIDE: the job's timeout in seconds)
benchmarks/user_jobs_device.sh runs the lot on the GPU machine. With --tiny, fp16/bf16 become "no" (no mixed
precision on the CPU) and each record lists such changes under ``notes``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lora_trainer.config.presets import get_preset  # noqa: E402  (torch-free: runs under kohya's packages too)

# name: (images written, size scale of kohya_prepare.ASPECT_SIZES (512 class), trigger word, tag set)
DATASETS = {"u1": (30, 1, "zkz", "character"), "u2": (50, 2, "xyzstyle", "style"), "u3": (32, 2, "zkz", "character")}
COMMON = {"enable_bucket": True, "bucket_no_upscale": False, "bucket_reso_steps": 64, "cache_latents": True,
          "caption_extension": ".txt", "lr_scheduler": "constant", "lr_warmup_steps": 0, "max_grad_norm": 1.0,
          "seed": 0, "save_every_n_epochs": 1, "save_precision": "fp16", "save_state": False,
          "mixed_precision": "bf16"}   # kohya's defaults differ: no mixed precision, ".caption"
U1 = {"resolution": "512", "min_bucket_reso": 256, "max_bucket_reso": 1024, "train_batch_size": 2,
      "optimizer_type": "AdamW8bit", "network_dim": 32, "network_alpha": 16.0, "learning_rate": 1e-4, "unet_lr": 1e-4,
      "text_encoder_lr": 5e-5, "shuffle_caption": True, "keep_tokens": 1}
U2 = {"resolution": "1024", "min_bucket_reso": 512, "max_bucket_reso": 2048, "train_batch_size": 1,   # our SDXL
      "gradient_checkpointing": True, "network_train_unet_only": True,   # bucket range; the style preset's
      "network_dim": 64, "network_alpha": 32.0}                           # rank and alpha
ADAFACTOR_ARGS = ["scale_parameter=False", "relative_step=False", "warmup_init=False"]


@dataclass(frozen=True)
class Job:
    model: str            # sd15 | sdxl
    data: str             # DATASETS key
    images: int           # trained: the first N images of the data set (every aspect ratio among them)
    epochs: int
    settings: dict        # over COMMON and the presets' values
    presets: tuple = ()   # ours, applied in order (their values go to kohya as flags too)
    limits: tuple = (180, 300)   # timeout in seconds: ours, kohya
    note: str = ""


# Defaults sized for the device's ten-minute commands (U1 48 steps, U2 36, U3 24 of 4 images), 3 epochs, a file
# every epoch; both sides of all five jobs take about 12 minutes of an H100/H200 (README of the device script).
JOBS = {
    "U1-fp16": Job("sd15", "u1", 30, 3, {**U1, "mixed_precision": "fp16"}, limits=(150, 200)),
    "U1-bf16": Job("sd15", "u1", 30, 3, {**U1, "mixed_precision": "bf16"}, limits=(150, 200)),
    "U2-prodigy": Job("sdxl", "u2", 12, 3, {**U2, "optimizer_type": "Prodigy", "learning_rate": 1.0},
                      limits=(200, 240), note="12 of the issue's 50 images (--images 50), 3 epochs: 36 steps"),
    "U2-adafactor": Job("sdxl", "u2", 12, 3, {**U2, "optimizer_type": "Adafactor", "learning_rate": 1e-4,
                                              "optimizer_args": ADAFACTOR_ARGS},
                        limits=(200, 240), note="12 of the issue's 50 images (--images 50), 3 epochs: 36 steps"),
    "U3": Job("sdxl", "u3", 32, 3, {"optimizer_type": "Lion8bit", "gradient_accumulation_steps": 2},
              presets=("character", "sdxl-12gb"), limits=(240, 300),
              note="8 steps of 4 images (batch 2 x accumulation 2) per epoch: 24 steps"),
}
TINY = {"resolution": "128", "min_bucket_reso": 64, "max_bucket_reso": 256, "bucket_reso_steps": 64}  # kohya: 64s
OURS_ONLY = {"save_state"}   # kohya saves no state unless asked
KOHYA_FIXED = ["--network_module", "networks.lora", "--save_model_as", "safetensors", "--sdpa",
               "--max_data_loader_n_workers", "2", "--output_name", "lora"]
KOHYA_SKIP = 3   # warm-up gaps left out of kohya's median


def work_paths(work: str) -> dict:
    w = Path(work)
    return {"work": w, "models": w / "models", "images": w / "images", "raw": w / "raw", "runs": w / "runs"}


def prepared(work: str) -> dict:
    path = Path(work) / "prepared.json"
    return json.loads(path.read_text()) if path.is_file() else {"tiny": False}


def data_root(work: str, job: Job, images: int, repeats: int) -> Path:
    """``<work>/data/<set>-n<images>-r<repeats>/<repeats>_<trigger>/``: links to the first ``images`` pictures."""
    _, _, trigger, _ = DATASETS[job.data]
    root = Path(work) / "data" / f"{job.data}-n{images}-r{repeats}"
    folder = root / f"{repeats}_{trigger}"
    if not folder.is_dir():
        source = Path(work) / "images" / job.data
        folder.mkdir(parents=True)
        for png in sorted(source.glob("*.png"))[:images]:
            for f in (png, png.with_suffix(".txt")):
                os.symlink(f, folder / f.name)
    return root


def settings_for(name: str, opts, tiny: bool) -> tuple[dict, list[str]]:
    """The job's settings in kohya's names (= our fields), with run paths; and notes on what tiny mode changed."""
    job = JOBS[name]
    s = dict(COMMON)
    for preset in job.presets:
        s.update(get_preset(preset).values)
    s.update(job.settings)
    s.update(max_train_epochs=opts.epochs or job.epochs, max_train_steps=None)
    if opts.max_steps:   # both trainers: epochs win over steps, so epochs go
        s.update(max_train_epochs=None, max_train_steps=opts.max_steps)
    notes = []
    if tiny:
        s.update(TINY)
        if s.get("mixed_precision", "bf16") != "no":
            notes.append(f"CPU: mixed_precision {s.get('mixed_precision', 'bf16')} -> no")
            s["mixed_precision"] = "no"
        notes.append(f"tiny: resolution 128, buckets 64-256 (job: {job.settings.get('resolution', '1024')})")
    s["train_data_dir"] = str(data_root(opts.work, job, opts.images or job.images, opts.repeats))
    return s, notes


def run_dir(opts, side: str, name: str) -> Path:
    return work_paths(opts.work)["runs"] / f"{side}-{name}"


def eight_bit_works(name: str) -> bool:
    try:
        import bitsandbytes as bnb
        import torch
        p = torch.nn.Parameter(torch.zeros(256))
        p.grad = torch.ones(256)
        getattr(bnb.optim, name)([p], lr=1e-3).step()
        return True
    except Exception:   # noqa: BLE001  (any refusal: an import error, no CPU kernel)
        return False


# --- prepare -----------------------------------------------------------------------------------
def prepare(opts) -> None:
    import kohya_prepare as kp
    import torch
    paths = work_paths(opts.work)
    names = opts.jobs or list(JOBS)
    for name, variant in kp.TOKENIZER_DIRS.items():
        kp.tokenizer_folder(paths["work"] / "tokenizers" / name, variant)
    models = sorted({JOBS[n].model for n in names})
    for model in sorted(set(models if not opts.tiny else []) | set(opts.full)):
        dest = paths["models"] / model
        if not (dest / "model_index.json").is_file():
            start = time.perf_counter()
            kp.random_model(model, dest, "cuda" if torch.cuda.is_available() else "cpu")
            print(f"{model}: random model in {time.perf_counter() - start:.1f} s", flush=True)
    if opts.tiny:
        from lora_trainer.models.tiny import build_tiny_components, save_single_file
        for model in models:
            family = "sd1" if model == "sd15" else "sdxl"
            path = paths["models"] / f"tiny-{model}.safetensors"
            if not path.is_file():
                save_single_file(build_tiny_components(family), path, family)
    for data in sorted({JOBS[n].data for n in names}):
        count, scale, trigger, tags = DATASETS[data]
        folder = paths["images"] / data
        if len(list(folder.glob("*.png"))) != count:
            kp.tagged_images(folder, count, 0.25 if opts.tiny else scale, trigger,
                             kp.CHARACTER_TAGS if tags == "character" else kp.STYLE_TAGS)
    (paths["work"] / "prepared.json").write_text(json.dumps({"tiny": opts.tiny, "jobs": names}))
    for name in names:
        job = JOBS[name]
        data_root(opts.work, job, opts.images or job.images, opts.repeats)
        s, _ = settings_for(name, opts, opts.tiny)
        print(f"{name}: {bucket_counts(s, job, opts)}", flush=True)


def bucket_counts(s: dict, job: Job, opts) -> str:
    """Our bucket of each trained image (kohya's bucketing is the same): shows the aspect ratios really differ."""
    from PIL import Image

    from lora_trainer.data.buckets import BucketSet
    from lora_trainer.config.schema import parse_resolution
    buckets = BucketSet.build(parse_resolution(s["resolution"]), s["min_bucket_reso"], s["max_bucket_reso"],
                              s["bucket_reso_steps"])
    counts: dict = {}
    for png in sorted(Path(s["train_data_dir"]).glob("*/*.png")):
        with Image.open(png) as img:
            bucket = buckets.assign(*img.size)
        counts[bucket] = counts.get(bucket, 0) + 1
    return f"{sum(counts.values())} images in {len(counts)} buckets " + \
        ", ".join(f"{w}x{h}:{n}" for (w, h), n in sorted(counts.items()))


# --- ours -------------------------------------------------------------------------------------
def run_ours(opts) -> None:
    start = opts.start or time.time()
    from lora_trainer.cli.main import sleeping_openmp_waits
    sleeping_openmp_waits()   # as the CLI does, before torch starts
    from lora_trainer.cli.progress import ProgressPrinter
    from lora_trainer.cli.quiet import quiet_libraries
    from lora_trainer.config.files import config_from_dict, load_config, save_config
    from lora_trainer.train import events as ev
    from lora_trainer.train import loop

    tiny = prepared(opts.work)["tiny"]
    s, notes = settings_for(opts.job, opts, tiny)
    out = run_dir(opts, "ours", opts.job)
    model = work_paths(opts.work)["models"] / (f"tiny-{JOBS[opts.job].model}.safetensors" if tiny
                                               else JOBS[opts.job].model)
    s.update(pretrained_model_name_or_path=str(model), output_dir=str(out), output_name="lora")
    if tiny and s["optimizer_type"].endswith("8bit") and not eight_bit_works(s["optimizer_type"]):
        notes.append(f"CPU: bitsandbytes refuses {s['optimizer_type']} -> {s['optimizer_type'][:-4]}")
        s["optimizer_type"] = s["optimizer_type"][:-4]
    cfg, _ = config_from_dict(s)
    out.mkdir(parents=True, exist_ok=True)
    toml = out / "job.toml"   # python -m lora_trainer train --config job.toml trains the same
    save_config(cfg, str(toml))
    cfg, warnings = load_config(str(toml))
    raw = {"start": start, "settings": s, "notes": notes, "warnings": [str(w) for w in warnings]}
    raw_path = work_paths(opts.work)["raw"] / f"ours-{opts.job}.json"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    printer = ProgressPrinter()
    quiet_libraries()

    def listener(event) -> None:
        printer(event)
        if isinstance(event, ev.Started):
            raw.update(started=time.time(), run_dir=event.run_dir, planned_steps=event.total_steps,
                       steps_per_epoch=event.steps_per_epoch)
        elif isinstance(event, ev.FileSaved):
            raw.setdefault("saved", []).append([time.time(), event.path])
        else:
            return
        raw_path.write_text(json.dumps(raw))
    raw_path.write_text(json.dumps(raw))
    import torch
    raw["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    raw["torch"] = torch.__version__
    result = loop.train(cfg, listener=listener, log=print)
    raw.update(finished=time.time(), steps=result.steps)
    raw_path.write_text(json.dumps(raw))


# --- kohya ------------------------------------------------------------------------------------
def kohya_command(opts) -> list[str]:
    tiny = prepared(opts.work)["tiny"]
    job = JOBS[opts.job]
    s, _ = settings_for(opts.job, opts, tiny)
    paths = work_paths(opts.work)
    model = paths["models"] / job.model   # full size even in tiny mode: kohya builds its own UNet
    args = ["--pretrained_model_name_or_path", str(model), "--output_dir", str(run_dir(opts, "kohya", opts.job)),
            "--tokenizer_cache_dir", str(paths["work"] / "tokenizers"), *KOHYA_FIXED]
    for key, value in s.items():
        if key in OURS_ONLY or value is None or value is False or value == []:
            continue
        values = value if isinstance(value, list) else [] if value is True else [value]
        args += [f"--{key}", *map(str, values)]
    if job.model == "sdxl" and s.get("network_train_unet_only") and not s.get("shuffle_caption"):
        args.append("--cache_text_encoder_outputs")   # ours caches them whenever the captions are fixed
    script = "sdxl_train_network.py" if job.model == "sdxl" else "train_network.py"
    return [sys.executable, str(ROOT / "benchmarks" / "kohya_timer.py"),
            str(paths["raw"] / f"kohya-{opts.job}.jsonl"), str(KOHYA_SKIP), opts.sd_scripts, script, *args]


def run_kohya(opts) -> None:
    command = kohya_command(opts)
    if opts.print:
        print(" ".join(command))
        return
    Path(command[2]).parent.mkdir(parents=True, exist_ok=True)
    Path(command[2]).unlink(missing_ok=True)
    os.environ.update(KOHYA_JOB=opts.job, KOHYA_TIMER_PEAK="loop")
    sys.stdout.flush()
    os.execv(command[0], command)


# --- record and report --------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("prepare", "ours", "kohya", "record", "report", "limit"))
    parser.add_argument("args", nargs="*")
    for flag, kind in (("--work", {"default": os.environ.get("UJ_WORK", "/tmp/user_jobs")}),
                       ("--tiny", {"action": "store_true"}), ("--print", {"action": "store_true"}),
                       ("--full", {"action": "append", "default": [], "choices": ("sd15", "sdxl")}),
                       ("--start", {"type": float}), ("--end", {"type": float}), ("--epochs", {"type": int}),
                       ("--repeats", {"type": int, "default": 1}), ("--images", {"type": int}),
                       ("--max-steps", {"type": int}), ("--sd-scripts", {"default": str(ROOT / ".bench/sd-scripts")}),
                       ("--rc", {"type": int}), ("--log", {}), ("--out", {})):
        parser.add_argument(flag, **kind)
    opts = parser.parse_intermixed_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from user_jobs_results import record, report
    if opts.command == "report":
        return report(opts.args[0])
    if opts.command == "limit":   # the timeout of JOB SIDE, for the device script
        return print(JOBS[opts.args[0]].limits[opts.args[1] == "kohya"])
    if opts.command == "prepare":
        opts.jobs = opts.args
        unknown = [j for j in opts.jobs if j not in JOBS]
        if unknown:
            parser.error(f"unknown job(s) {unknown}; jobs: {', '.join(JOBS)}")
        sys.path.insert(0, str(ROOT / "benchmarks"))
        return prepare(opts)
    if opts.command == "record":
        opts.side, opts.job = opts.args
        return record(opts)
    opts.job = opts.args[0]
    if opts.job not in JOBS:
        parser.error(f"unknown job {opts.job}; jobs: {', '.join(JOBS)}")
    (run_ours if opts.command == "ours" else run_kohya)(opts)


if __name__ == "__main__":
    main()
