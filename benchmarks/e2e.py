"""End-to-end job timing, ours vs kohya sd-scripts: wall time from start to the last saved file,
split into loading + latent caching, training and saving.

  python benchmarks/e2e.py ours MODEL_DIR DATA_DIR OUT_DIR EPOCHS RESULT.jsonl
      trains with ``lora_trainer.train.loop.train`` (the CLI's and the WebUI's path), timing
      its events and each file save
  python benchmarks/e2e.py kohya START_UNIX TIMER.jsonl OUT_DIR STEPS_PER_EPOCH RESULT.jsonl
      splits a kohya run timed by benchmarks/kohya_timer.py: saving = the extra time between the
      last step of an epoch and the next step, plus the time after the last step
"""
import glob
import json
import os
import statistics
import sys
import time


def newest_file_time(out_dir: str) -> tuple[float, int]:
    files = glob.glob(os.path.join(out_dir, "*.safetensors"))
    return max(os.path.getmtime(f) for f in files), len(files)


def ours(model: str, data: str, out: str, epochs: int, result: str) -> None:
    start = time.time()
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train import events as ev
    from lora_trainer.train import loop

    saving = []
    real_save = loop.save_checkpoint

    def timed_save(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real_save(*args, **kwargs)
        finally:
            saving.append(time.perf_counter() - t)
    loop.save_checkpoint = timed_save
    marks = {}

    def listener(event) -> None:
        if isinstance(event, ev.Started):
            marks["started"] = time.time()
    cfg = TrainConfig(pretrained_model_name_or_path=model, train_data_dir=data, output_dir=out, output_name="e2e",
                      resolution="1024", train_batch_size=1, max_train_epochs=epochs, save_every_n_epochs=1,
                      save_state=False, network_dim=32, network_alpha=32, network_train_unet_only=True,
                      cache_latents=True, mixed_precision="bf16", optimizer_type="AdamW", learning_rate=1e-4,
                      lr_scheduler="constant", max_grad_norm=1.0)
    res = loop.train(cfg, listener=listener, log=lambda *a: None)
    last, count = newest_file_time(out)
    write(result, {"job": "e2e", "trainer": "ours", "steps": res.steps, "files": count,
                   "total_s": last - start, "load_and_cache_s": marks["started"] - start,
                   "training_s": last - marks["started"] - sum(saving), "saving_s": sum(saving),
                   "cuda_graphs": cfg.cuda_graphs})


def kohya(start: float, timer: str, out: str, per_epoch: int, result: str) -> None:
    with open(timer, encoding="utf-8") as fh:
        run = [json.loads(line) for line in fh if line.strip()][-1]
    stamps = run["step_times"]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    usual = statistics.median(gaps)
    boundary = [gaps[i - 1] - usual for i in range(per_epoch, len(stamps), per_epoch)]  # save between epochs
    last, count = newest_file_time(out)
    saving = sum(max(0.0, g) for g in boundary) + (last - stamps[-1])
    write(result, {"job": "e2e", "trainer": "kohya", "steps": len(stamps), "files": count,
                   "total_s": last - start, "load_and_cache_s": stamps[0] - start - usual,
                   "training_s": last - stamps[0] + usual - saving, "saving_s": saving})


def write(path: str, record: dict) -> None:
    print(json.dumps(record), flush=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "ours":
        ours(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        kohya(float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
