"""The user jobs' results: what a run of ours or of kohya sd-scripts left (metrics, timer output, files), read
into one JSON line per job and trainer, and the table of ours against kohya. Torch-free (runs under kohya's
packages too). Commands: ``python benchmarks/user_jobs.py record ...`` and ``... report RESULT.jsonl``."""
from __future__ import annotations

import glob
import json
import os
import statistics
import time
from pathlib import Path

from user_jobs import JOBS, prepared, run_dir, work_paths


def loss_summary(losses: list) -> dict:
    values = [v for v in losses if v is not None]
    third = max(1, len(values) // 3)
    mean = lambda part: round(statistics.fmean(part), 5) if part else None  # noqa: E731
    return {"loss_first_third": mean(values[:third]), "loss_last_third": mean(values[-third:]),
            "loss_mean": mean(values), "losses": [round(v, 5) for v in values]}


def ours_figures(opts) -> dict:
    raw_path = work_paths(opts.work)["raw"] / f"ours-{opts.job}.json"
    raw = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
    records = []
    metrics = Path(raw.get("run_dir", "/nonexistent")) / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue   # half a line from a killed run
    steps = [r for r in records if r.get("type") == "step"]
    # losses are read back in groups (every 10 steps on a GPU) that share one it_per_s; a group's time runs from
    # the read-back or file save before it to its own read-back. The first group (warm-up) is left out.
    timed, last_epoch, mark, group = [], [], None, []
    final = max((r.get("epoch", 0) for r in records if r.get("type") == "step"), default=0)
    for r in records + [{}]:
        if group and not (r.get("type") == "step" and r.get("it_per_s") == group[-1].get("it_per_s")):
            if mark is not None:
                per_step = [(group[0]["time"] - mark) * 1e3 / len(group)] * len(group)
                timed += per_step
                if all(g.get("epoch") == final for g in group):   # every bucket shape met (and captured) by then
                    last_epoch += per_step
            mark, group = group[0]["time"], []
        if r.get("type") == "step":
            group.append(r)
        elif r.get("kind") == "file_saved" and mark is not None:
            mark = r["time"]
    setup = next((r for r in records if r.get("kind") == "setup_memory"), {})
    phases = next((r for r in records if r.get("kind") == "setup_times"), {})
    shapes = next((r for r in records if r.get("kind") == "cuda_graph_shapes"), {})
    return {"steps": len(steps), "planned_steps": raw.get("planned_steps"),
            "steady_ms_per_step": round(statistics.median(timed), 2) if timed else None, "timed_steps": len(timed),
            "last_epoch_ms_per_step": round(statistics.fmean(last_epoch), 2) if last_epoch else None,
            "setup_s": round(raw["started"] - opts.start, 2) if "started" in raw else None,
            "peak_alloc_gib": peak(steps, "peak_mem_gb"), "peak_reserved_gib": peak(steps, "peak_reserved_gb"),
            "setup_peak_alloc_gib": setup.get("peak_mem_gb"), "setup_peak_reserved_gib": setup.get("peak_reserved_gb"),
            "setup_phases_s": {k: v for k, v in phases.items() if k not in ("type", "kind", "time")},
            "graph_shapes": {k: v for k, v in shapes.items() if k not in ("type", "kind", "time")},
            "step_times": [[r.get("step"), r.get("epoch"), r.get("time")] for r in steps],
            "notes": raw.get("notes", []), "settings": raw.get("settings"), "device": raw.get("device"),
            "torch": raw.get("torch"), **loss_summary([r.get("loss") for r in steps])}


def peak(steps: list, key: str):
    values = [r[key] for r in steps if r.get(key) is not None]
    return round(max(values), 3) if values else None


def kohya_figures(opts) -> dict:
    path = work_paths(opts.work)["raw"] / f"kohya-{opts.job}.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    t = json.loads(lines[-1]) if lines else {}
    gib = lambda key: round(t[key] * 1e9 / 2 ** 30, 3) if t.get(key) else None  # noqa: E731  (GB -> GiB)
    stamps, epochs = t.get("step_times") or [], (opts.epochs or JOBS[opts.job].epochs) if opts.job in JOBS else 1
    final = stamps[len(stamps) - len(stamps) // max(1, epochs):]   # the last epoch's steps: gaps within it
    gaps = [b - a for a, b in zip(final, final[1:])]
    return {"steps": t.get("steps", 0), "steady_ms_per_step": t.get("ms_per_step_median") and
            round(t["ms_per_step_median"], 2), "timed_steps": t.get("timed_steps"),
            "last_epoch_ms_per_step": round(statistics.median(gaps) * 1e3, 2) if gaps else None,
            "setup_s": round(t["loop_start"] - opts.start, 2) if t.get("loop_start") else None,
            "peak_alloc_gib": gib("peak_allocated_gb"), "peak_reserved_gib": gib("peak_reserved_gb"),
            "setup_peak_alloc_gib": gib("setup_peak_allocated_gb"),
            "setup_peak_reserved_gib": gib("setup_peak_reserved_gb"), "command": t.get("args"),
            "device": t.get("device"), "torch": t.get("torch"), **loss_summary(t.get("losses", []))}


def run_note(opts) -> str:
    """The job's note, or the size the options gave it (the note describes the default size)."""
    job = JOBS[opts.job]
    if not (opts.images or opts.epochs or opts.max_steps or (opts.repeats or 1) != 1):
        return job.note
    size = f"{opts.images or job.images} images x {opts.repeats or 1} repeats, "
    return size + (f"{opts.max_steps} steps" if opts.max_steps else f"{opts.epochs or job.epochs} epochs")


def record(opts) -> None:
    rec = {"job": opts.job, "trainer": opts.side, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "rc": opts.rc,
           "tiny": prepared(opts.work)["tiny"], "note": run_note(opts)}
    rec.update(ours_figures(opts) if opts.side == "ours" else kohya_figures(opts))
    files = glob.glob(str(run_dir(opts, opts.side, opts.job) / "*.safetensors"))
    rec["files"] = len(files)
    rec["e2e_s"] = round(max(os.path.getmtime(f) for f in files) - opts.start, 2) if files else None
    rec["wall_s"] = round(opts.end - opts.start, 2)
    rec["status"] = ("ok" if opts.rc == 0 and rec["steps"] and files else
                     "timeout" if opts.rc in (124, 137) else "failed")
    if rec["status"] != "ok" and opts.log and os.path.isfile(opts.log):
        with open(opts.log, encoding="utf-8", errors="replace") as fh:
            rec["log_tail"] = [line.rstrip()[-300:] for line in fh.read().replace("\r", "\n").splitlines()
                               if line.strip()][-15:]
    with open(opts.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    short = {k: rec.get(k) for k in ("job", "trainer", "status", "steps", "files", "steady_ms_per_step",
                                     "last_epoch_ms_per_step",
                                     "e2e_s", "setup_s", "peak_alloc_gib", "peak_reserved_gib")}
    print("record:", json.dumps(short), flush=True)


def report(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    latest = {(r["job"], r["trainer"]): r for r in recs}
    f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    print(f"{'job':13} {'trainer':7} {'status':8} {'steps':>5} {'files':>5} {'ms/step':>8} {'e2e s':>7} "
          f"{'setup s':>7} {'GiB alloc/res':>13}  loss first -> last third")
    for job in [j for j in JOBS if any(k[0] == j for k in latest)]:
        pair = {t: latest.get((job, t)) for t in ("ours", "kohya")}
        for trainer, r in pair.items():
            if r is None:
                continue
            mem = f"{f(r.get('peak_alloc_gib'), 2)}/{f(r.get('peak_reserved_gib'), 2)}"
            print(f"{job:13} {trainer:7} {r['status']:8} {r['steps']:>5} {r['files']:>5} "
                  f"{f(r.get('steady_ms_per_step')):>8} {f(r.get('e2e_s')):>7} {f(r.get('setup_s')):>7} "
                  f"{mem:>13}  {f(r.get('loss_first_third'), 4)} -> {f(r.get('loss_last_third'), 4)}"
                  + (f"  [{'; '.join(r['notes'])}]" if r.get("notes") else ""))
            shapes = r.get("graph_shapes") or {}
            if shapes.get("capture_s") is not None:
                print(f"{'':13} {shapes['captured']} shapes captured in {sum(shapes['capture_s']):.1f} s "
                      f"(longest {max(shapes['capture_s'], default=0):.1f}), {len(shapes['warmup_eager_s'])} eager "
                      f"warm-up steps {sum(shapes['warmup_eager_s']):.1f} s")
            if r["status"] != "ok":
                print("    " + "\n    ".join(r.get("log_tail", [])[-5:]))
        ours, kohya = pair["ours"], pair["kohya"]
        if ours and kohya:
            ratio = lambda k: f"{kohya[k] / ours[k]:.2f}x" if ours.get(k) and kohya.get(k) else "-"  # noqa: E731
            same = "" if ours["steps"] == kohya["steps"] else f"  (steps differ: {ours['steps']} vs {kohya['steps']})"
            print(f"{'':13} kohya/ours: ms/step {ratio('steady_ms_per_step')}, last epoch's ms/step "
                  f"{f(ours.get('last_epoch_ms_per_step'))} vs {f(kohya.get('last_epoch_ms_per_step'))} "
                  f"({ratio('last_epoch_ms_per_step')}), e2e {ratio('e2e_s')}, setup {ratio('setup_s')}{same}")
