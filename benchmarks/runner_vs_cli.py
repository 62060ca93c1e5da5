"""Training speed through the WebUI runner vs the command line, on the same job.

  python benchmarks/runner_vs_cli.py MODEL_DIR DATA_DIR OUT_DIR STEPS RESULT.jsonl [ROUNDS]

Each round runs the job once as ``python -m lora_trainer train`` (a separate process) and once
through ``lora_trainer.runner`` in this process (worker thread, event listener, job records,
a poller reading the jobs every second like an open tab). The step time of each run is read
from its own ``metrics.jsonl``: the time between the first flush after step 20 (the warm-up and
graph capture are over) and the last flush, divided by the steps between them.
RVC_PRECISION and RVC_RESOLUTION (default bf16, 512) change the job, e.g. "no" and 64 for a
quick check of the tool with a tiny model on the CPU.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SETTINGS = dict(resolution=os.environ.get("RVC_RESOLUTION", "512"), train_batch_size=1, save_every_n_epochs=None, save_state=False,
                network_dim=32, network_alpha=32, network_train_unet_only=True, cache_latents=True,
                mixed_precision=os.environ.get("RVC_PRECISION", "bf16"), optimizer_type="AdamW", learning_rate=1e-4, lr_scheduler="constant",
                max_grad_norm=1.0, max_train_epochs=None)


def step_time(out_dir: str) -> tuple[float, int]:
    """(seconds per step after the warm-up, steps measured) from the run's metrics.jsonl."""
    logs = os.path.join(out_dir, "logs")
    (run,) = os.listdir(logs)
    flushes: dict[float, int] = {}
    with open(os.path.join(logs, run, "metrics.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("type") == "step":
                flushes[rec["time"]] = max(flushes.get(rec["time"], 0), rec["step"])
    points = sorted((t, s) for t, s in flushes.items() if s >= 20)
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (t1 - t0) / (s1 - s0), s1 - s0


def job_config(model: str, data: str, out: str, name: str, steps: int):
    from lora_trainer.config.schema import TrainConfig

    return TrainConfig(pretrained_model_name_or_path=model, train_data_dir=data, output_dir=out, output_name=name,
                       max_train_steps=steps, **SETTINGS)


def cli_run(model: str, data: str, out: str, steps: int) -> dict:
    from lora_trainer.config.files import save_config

    os.makedirs(out, exist_ok=True)
    settings = os.path.join(out, "job.toml")
    save_config(job_config(model, data, out, "cli", steps), settings)
    args = [sys.executable, "-m", "lora_trainer", "train", "--config", settings]
    start = time.perf_counter()
    subprocess.run(args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    sec, measured = step_time(out)
    return {"path": "cli", "ms_per_step": sec * 1e3, "steps_measured": measured,
            "wall_s": time.perf_counter() - start}


def runner_run(runner, model: str, data: str, out: str, steps: int) -> dict:
    from lora_trainer.runner.job import PreviewSettings

    cfg = job_config(model, data, out, "runner", steps)
    stop = threading.Event()

    def poll():  # an open tab asks for the jobs about once a second
        while not stop.wait(1.0):
            runner.jobs()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.perf_counter()
    job = runner.submit(cfg, PreviewSettings(enabled=False))
    done = runner.wait(job.id)
    stop.set()
    if done.status != "finished":
        raise SystemExit(f"runner job ended {done.status}: {done.error}")
    sec, measured = step_time(out)
    return {"path": "runner", "ms_per_step": sec * 1e3, "steps_measured": measured,
            "wall_s": time.perf_counter() - start}


def main() -> None:
    model, data, out, steps, result = sys.argv[1:6]
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    from lora_trainer.hosts.standalone import StandaloneAdapter
    from lora_trainer.runner.runner import Runner

    runner = Runner(StandaloneAdapter(lora_dir=out), state_dir=None)
    records = []
    for index in range(rounds):
        for path in ("cli", "runner"):
            folder = os.path.join(out, f"{path}-{index}")
            shutil.rmtree(folder, ignore_errors=True)
            record = cli_run(model, data, folder, int(steps)) if path == "cli" else \
                runner_run(runner, model, data, folder, int(steps))
            record["round"] = index
            records.append(record)
            print(json.dumps(record), flush=True)
    cli = sorted(r["ms_per_step"] for r in records if r["path"] == "cli")
    run = sorted(r["ms_per_step"] for r in records if r["path"] == "runner")
    summary = {"job": "runner_vs_cli", "cli_ms_per_step": cli[len(cli) // 2], "runner_ms_per_step": run[len(run) // 2],
               "runs": records}
    summary["runner_over_cli"] = summary["runner_ms_per_step"] / summary["cli_ms_per_step"]
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)
    with open(result, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
