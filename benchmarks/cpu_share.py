"""The demo's wall time on a shared CPU: alone, and beside busy processes (``yes > /dev/null``).

  python -m benchmarks.cpu_share [--neighbours 0,1] [--repeat 1] [--tree DIR] [--env NAME=VALUE ...]
                                 [--timeout 400] [--quiet 0.15] [--max-wait 900] [--epochs 10]

Each run is ``python -m lora_trainer demo`` in a process of its own, from ``--tree`` (default: this
repository; give an exported older commit to measure "before"), with ``--env`` added to its
environment (e.g. ``OMP_NUM_THREADS=1``). ``--neighbours N`` starts N ``yes > /dev/null`` processes
first (at the same priority) and ends them after the run.

The machine may be shared: before each run the script waits until the other processes use less than
``--quiet`` of a core over 3 s (at most ``--max-wait`` seconds), and it reports the CPU time that
processes other than the demo and its neighbours took during the run ("others", in cores on average),
so a figure measured beside someone else's work says so. Linux only (``/proc/stat``).
Prints one JSON line per run, then a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU-seconds the whole machine has been busy since boot (every core, every process)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def process_cpu_s(pid: int) -> float:
    """CPU-seconds used by one live process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_until_quiet(limit_cores: float, max_wait: float) -> tuple[float, float]:
    """Wait until the machine's busy time over 3 s is under ``limit_cores``; (others' cores, waited s)."""
    started = time.monotonic()
    while True:
        before = machine_busy_s()
        time.sleep(3.0)
        load = (machine_busy_s() - before) / 3.0
        waited = time.monotonic() - started
        if load < limit_cores or waited >= max_wait:
            return load, waited


def thread_choices(out: str) -> list:
    """The thread counts the run chose (``cpu_threads`` events of its metrics.jsonl), in order."""
    found = []
    logs = os.path.join(out, "logs")
    for run in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
        try:
            with open(os.path.join(logs, run, "metrics.jsonl"), encoding="utf-8") as fh:
                found += [rec["threads"] for rec in map(json.loads, fh) if rec.get("kind") == "cpu_threads"]
        except (OSError, ValueError):
            pass
    return found


def run_once(tree: str, env_extra: dict, neighbours: int, timeout: float, epochs: int) -> dict:
    out = tempfile.mkdtemp(prefix="cpu_share_")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env_extra,
           "PYTHONPATH": os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")]))}
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL, start_new_session=True) for _ in range(neighbours)]
    try:
        time.sleep(0.5)
        busy0, hog0 = machine_busy_s(), sum(process_cpu_s(h.pid) for h in hogs)
        log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "lora_trainer", "demo", "--output-dir", out,
                                 "--epochs", str(epochs)], cwd=tree, env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        timed_out, deadline = False, start + timeout
        while True:   # os.wait4 reaps the process and gives its own CPU time
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() >= deadline and not timed_out:
                timed_out = True
                proc.send_signal(signal.SIGKILL)
            time.sleep(0.2)
        proc.returncode = 0   # reaped above
        wall = time.perf_counter() - start
        busy = machine_busy_s() - busy0
        hog_cpu = sum(process_cpu_s(h.pid) for h in hogs) - hog0
        log.seek(0)
        output = log.read()
        log.close()
        choices = thread_choices(out)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        shutil.rmtree(out, ignore_errors=True)
    demo_cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": round(wall, 1), "timed_out": timed_out, "exit": os.waitstatus_to_exitcode(status) if not
            timed_out else None, "demo_cpu_s": round(demo_cpu, 1), "neighbours": neighbours,
            "neighbour_cores": round(hog_cpu / wall, 2),
            "others_cores": round(max(0.0, busy - demo_cpu - hog_cpu) / wall, 2), "thread_choices": choices,
            "tail": "" if not timed_out and "Demo finished" in output else output[-800:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neighbours", default="0,1", help="comma-separated numbers of `yes` processes")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tree", default=ROOT, help="the repository tree to run the demo from")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the demo's environment")
    parser.add_argument("--timeout", type=float, default=400.0)
    parser.add_argument("--quiet", type=float, default=0.15, help="others' cores counted as a quiet machine")
    parser.add_argument("--max-wait", type=float, default=900.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    env_extra = dict(item.split("=", 1) for item in args.env)
    if shutil.which("yes") is None:
        raise SystemExit("needs the `yes` command")
    rows = []
    for _ in range(args.repeat):
        for neighbours in (int(n) for n in args.neighbours.split(",")):
            before, waited = wait_until_quiet(args.quiet, args.max_wait)
            result = run_once(os.path.abspath(args.tree), env_extra, neighbours, args.timeout, args.epochs)
            result.update(label=args.label, env=env_extra, others_before_cores=round(before, 2),
                          waited_s=round(waited), cores=os.cpu_count(),
                          date=time.strftime("%Y-%m-%d %H:%M"))
            print(json.dumps(result), flush=True)
            rows.append(result)
    print("\n| label | env | neighbours | wall s | demo CPU s | others (cores) | threads chosen |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        wall = f"> {r['wall_s']:.0f} (killed)" if r["timed_out"] else f"{r['wall_s']:.1f}"
        env = " ".join(f"{k}={v}" for k, v in r["env"].items()) or "—"
        choices = ",".join(map(str, r["thread_choices"])) or "—"
        print(f"| {r['label']} | {env} | {r['neighbours']} | {wall} | {r['demo_cpu_s']} | {r['others_cores']} "
              f"| {choices} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
