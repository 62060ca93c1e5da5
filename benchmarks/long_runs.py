"""Many tiny training runs back to back in one process, as a WebUI runs them, with the host generating between.

  python -m benchmarks.long_runs OUT [--runs 200] [--host a1111|standalone] [--device cpu|cuda]
                                     [--during-every 10] [--timeout 300]

One process, one ``lora_trainer.runner.Runner`` (worker thread, job records, previews per epoch), as in a
WebUI. The host is the fake A1111 of the tests (``tests/fake_host``: the real A1111 adapter with a real,
non-reentrant queue lock, previews through its txt2img, the always-on guard script around the host's own
generations) or no host (``standalone``: previews through our diffusers pipeline). Each run: a tiny SD1
model (built once), two images, 2 epochs at 64 px, a LoRA file per epoch and a preview of each.

Between two runs the host generates an image of its own the way a user's txt2img does: in another
thread, inside the queue lock, the guard's ``before_process``/``postprocess`` around a real generation
with the host's own copy of the tiny model (2 steps, 64 px). Every ``--during-every``-th run it does so
while the run trains, too. A run or a generation that does not end within ``--timeout`` seconds is a
deadlock: the threads' stacks are printed and the script exits with status 3.

After each run it records the process's RSS, its threads (Python's and the OS's), its open file
handles, Python's tracked objects and, on CUDA, PyTorch's allocated / reserved memory, in
``OUT/long_runs.jsonl``, and prints a summary: the figures after the warm-up run and after the last, the
RSS trend over the later runs (least squares, KiB per run), the highest values and every failure.
Run it with ``nice`` on a shared machine. The GPU variant: ``--device cuda`` on the device machine
(the trainer then trains on the GPU and the host renders there; reserved memory is the figure to watch).
"""
from __future__ import annotations

import argparse
import faulthandler
import gc
import importlib.util
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
DEMO = ROOT / "lora_trainer" / "demo_data" / "train"


def process_figures() -> dict:
    """RSS (MiB), OS threads, open file handles, Python threads and tracked objects of this process."""
    status = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    figures = {"rss_mib": round(int(status["VmRSS"].split()[0]) / 1024, 1), "os_threads": int(status["Threads"]),
               "fds": len(os.listdir("/proc/self/fd")), "py_threads": threading.active_count(),
               "py_objects": len(gc.get_objects())}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        figures["cuda_allocated_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        figures["cuda_reserved_mib"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    return figures


def deadlock(what: str, timeout: float) -> None:
    print(f"\nDEADLOCK? {what} did not end within {timeout:.0f} s; the threads' stacks:", flush=True)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(3)


def load_guard():
    """The always-on guard script, executed by path as the WebUI executes it."""
    path = ROOT / "scripts" / "lora_trainer_guard.py"
    spec = importlib.util.spec_from_file_location(path.name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LoraTrainerHostGuard()


class HostGeneration:
    """The host's own txt2img: a thread of its own, the queue lock, the guard's hooks, a real generation."""

    def __init__(self, base: str, device: str, lock, guard) -> None:
        import torch

        from lora_trainer.hosts.diffusers_preview import PreviewPipeline

        self.pipeline = PreviewPipeline(base, device, torch.float32)
        self.lock, self.guard = lock, guard
        self.count, self.longest = 0, 0.0

    def _generate(self, seed: int) -> None:
        import torch

        with self.lock:
            if self.guard is not None:
                self.guard.before_process(object())
            try:
                pipe = self.pipeline.pipe.to(self.pipeline.device)
                pipe(prompt="a host picture", num_inference_steps=2, width=64, height=64,
                     generator=torch.Generator("cpu").manual_seed(seed))
            finally:
                if self.guard is not None:
                    self.guard.postprocess(object(), None)

    def start(self, seed: int) -> threading.Thread:
        errors = []

        def target():
            try:
                self._generate(seed)
            except BaseException as err:   # noqa: BLE001 - reported by finish()
                errors.append(err)

        thread = threading.Thread(target=target, name=f"host-generation-{seed}")
        thread.errors = errors
        thread.started = time.perf_counter()
        thread.start()
        return thread

    def finish(self, thread: threading.Thread, timeout: float) -> None:
        thread.join(timeout)
        if thread.is_alive():
            deadlock(f"the host's generation {thread.name}", timeout)
        self.count += 1
        self.longest = max(self.longest, time.perf_counter() - thread.started)
        if thread.errors:
            raise thread.errors[0]


def make_host(kind: str, work: Path, base: str):
    if kind == "standalone":
        from lora_trainer.hosts.standalone import StandaloneAdapter

        return StandaloneAdapter(lora_dir=str(work / "loras")), threading.Lock(), None, None
    sys.path.insert(0, str(TESTS))
    import fake_host

    fake = fake_host.activate("a1111", root=work / "webui", loaded=base)
    from modules import call_queue

    from lora_trainer.hosts import detect_host

    return detect_host(), call_queue.queue_lock, load_guard(), fake


def trend_kib_per_run(points: list[tuple[int, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var * 1024 if var else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--host", choices=("a1111", "standalone"), default="a1111")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--during-every", type=int, default=10, help="host generation during every N-th run")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                        help="trace Python allocations and print the lines whose memory grew most between run N "
                             "and the last (slow; for finding a leak)")
    parser.add_argument("--remove-jobs", action="store_true",
                        help="forget each finished job (as the queue's remove button); by default they are kept")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""   # the trainer trains where CUDA is; here it must not be
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.out).resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "data" / "1_zkz").mkdir(parents=True)
    for source in sorted(next(DEMO.iterdir()).iterdir())[:4]:   # two images and their captions
        shutil.copy(source, work / "data" / "1_zkz")
    os.environ["LORA_TRAINER_CACHE"] = str(work / "cache")

    from lora_trainer.cli.quiet import quiet_libraries
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.models.tiny import build_tiny_components, save_single_file
    from lora_trainer.runner import PreviewSettings, Runner

    quiet_libraries()
    base = str(save_single_file(build_tiny_components("sd1", seed=0), work / "base" / "tiny-sd1.safetensors", "sd1"))
    host, lock, guard, fake = make_host(args.host, work, base)
    generation = HostGeneration(base, args.device, lock, guard)
    runner = Runner(host, state_dir=str(work / "jobs"))
    previews = PreviewSettings(prompts=["{trigger}"], width=64, height=64, steps=2, seed=3)
    if args.tracemalloc:
        import tracemalloc
        tracemalloc.start(8)
    snapshot = None
    log_path = work / "long_runs.jsonl"
    records, failures = [], []
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        for index in range(1, args.runs + 1):
            out = work / "loras" / f"run{index:04d}"
            cfg = TrainConfig(pretrained_model_name_or_path=base, train_data_dir=str(work / "data"),
                              output_dir=str(out), output_name=f"run{index:04d}", resolution="64",
                              min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=64, train_batch_size=1,
                              max_train_epochs=2, save_every_n_epochs=1, network_dim=4, network_alpha=4,
                              learning_rate=1e-3, mixed_precision="no", save_precision="float",
                              save_state=False, seed=index)
            t0 = time.perf_counter()
            job = runner.submit(cfg, previews)
            during = None
            if args.during_every and index % args.during_every == 0:
                deadline = time.monotonic() + args.timeout
                while runner.get(job.id).status in ("queued", "preparing") and time.monotonic() < deadline:
                    time.sleep(0.01)
                during = generation.start(seed=100_000 + index)
            done = runner.wait(job.id, args.timeout)
            if done is None or not done.done:
                deadlock(f"run {index}", args.timeout)
            if during is not None:
                generation.finish(during, args.timeout)
            run_s = time.perf_counter() - t0
            generation.finish(generation.start(seed=index), args.timeout)   # between runs
            if done.status != "finished":
                failures.append({"run": index, "status": done.status, "error": done.error})
            if fake is not None:   # the fake host records every call for the tests: not the host's memory
                fake.calls.clear()
                fake.processed.clear()
            if args.remove_jobs:
                runner.remove(job.id)   # the files stay
            shutil.rmtree(out, ignore_errors=True)
            record = {"run": index, "status": done.status, "run_s": round(run_s, 2),
                      "elapsed_s": round(time.perf_counter() - started, 1), **process_figures()}
            records.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if index == 1 or index % 10 == 0:
                print(json.dumps(record), flush=True)
            if args.tracemalloc and index == args.tracemalloc:
                gc.collect()
                snapshot = tracemalloc.take_snapshot()
    runner.shutdown(args.timeout)
    if snapshot is not None:
        gc.collect()
        grown = tracemalloc.take_snapshot().compare_to(snapshot, "traceback")
        print(f"\nPython allocations that grew from run {args.tracemalloc} to run {args.runs}:")
        for stat in grown[:12]:
            print(f"  +{stat.size_diff / 1024:.1f} KiB in {stat.count_diff:+d} blocks")
            for line in stat.traceback.format()[-6:]:
                print("     ", line)
    summary = summarise(records, failures, generation)
    (work / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return 1 if failures else 0


def summarise(records: list[dict], failures: list[dict], generation: HostGeneration) -> dict:
    first, last = records[0], records[-1]
    later = [(r["run"], r["rss_mib"]) for r in records if r["run"] > max(10, len(records) // 10)]
    keys = [k for k in first if k not in ("run", "status", "run_s", "elapsed_s")]
    return {"runs": len(records), "failures": failures, "host_generations": generation.count,
            "longest_host_generation_s": round(generation.longest, 2),
            "after_first_run": {k: first[k] for k in keys}, "after_last_run": {k: last[k] for k in keys},
            "highest": {k: max(r[k] for r in records) for k in keys},
            "rss_trend_kib_per_run_after_warmup": round(trend_kib_per_run(later), 1),
            "median_run_s": sorted(r["run_s"] for r in records)[len(records) // 2],
            "total_s": last["elapsed_s"]}


if __name__ == "__main__":
    sys.exit(main())
