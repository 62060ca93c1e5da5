"""Where the peak reserved memory of one bench job comes from, allocation by allocation.

Runs one ``bench`` variant with the allocator's history recorded (Python stacks), then reports:
the moments of peak reserved and of peak allocated memory (reserved / allocated then, and what was live
grouped by the code that allocated it: ours, diffusers, peft or torch), the segments at the end (per pool, with
how much of each is free and in how many pieces), and the live blocks at the end grouped the same
way. CUDA only; slow (every allocation records its stack).
Usage: python benchmarks/memory_trace.py OUT.md [model] [batch] [gc 0/1] [variant] [steps] [optimizer] [rank]
"""
import collections
import sys

import torch

from benchmarks import bench
from lora_trainer.train import graphs
from lora_trainer.train.setup import use_expandable_segments

OUT = sys.argv[1]
MODEL = sys.argv[2] if len(sys.argv) > 2 else "sdxl"
BATCH = int(sys.argv[3]) if len(sys.argv) > 3 else 1
GC = bool(int(sys.argv[4])) if len(sys.argv) > 4 else True
VARIANT = sys.argv[5] if len(sys.argv) > 5 else "graphs"
STEPS = int(sys.argv[6]) if len(sys.argv) > 6 else 4
OPTIMIZER = sys.argv[7] if len(sys.argv) > 7 else "AdamW"
RANK = int(sys.argv[8]) if len(sys.argv) > 8 else 32
MARK = 777 * 512 + 3  # an allocation of this size marks the start of the capture in the trace


def site(frames) -> str:
    """The first frame in our package, else in diffusers / peft / accelerate, else torch's."""
    frames = frames or []
    for wanted in ("lora_trainer/", "diffusers/", "peft/", "accelerate/", "torch/"):
        for f in frames:
            name = f.get("filename", "")
            if wanted in name and "memory_trace" not in name:
                short = name.split(wanted, 1)[1]
                return f"{wanted}{short}:{f.get('line')} {f.get('name')}"
    return "?"


def top(groups: dict, n: int = 25) -> list[str]:
    rows = sorted(groups.items(), key=lambda kv: -kv[1][0])[:n]
    return [f"| {size / 1e6:9.1f} | {count:6d} | {name} |" for name, (size, count) in rows]


original_capture = graphs.GraphedStep._capture


def marked_capture(self, key, inputs):
    marker = torch.empty(MARK, dtype=torch.uint8, device=self.device)
    del marker
    return original_capture(self, key, inputs)


graphs.GraphedStep._capture = marked_capture
FRESH = 555 * 512 + 5  # ... and this one the reset of the peak statistics before the variant
original_fresh = bench._fresh_peak


def marked_fresh():
    original_fresh()
    marker = torch.empty(FRESH, dtype=torch.uint8, device="cuda")
    del marker


bench._fresh_peak = marked_fresh
use_expandable_segments()  # before the first allocation, as the bench session does
torch.cuda.memory._record_memory_history(max_entries=3_000_000, stacks="python")
results = bench.run_bench(MODEL, BATCH, None, GC, steps=STEPS, warmup=5, baseline=False, count_flops=False,
                          variants=(VARIANT,), optimizer=OPTIMIZER, rank=RANK)
snap = torch.cuda.memory._snapshot()
torch.cuda.memory._record_memory_history(enabled=None)

lines = [f"# {MODEL} batch {BATCH} gc={GC} [{VARIANT}] {OPTIMIZER} rank {RANK}", "",
         f"bench: {results[0].ms_per_step:.1f} ms/step, peak {results[0].peak_allocated_gb:.3f} allocated / "
         f"{results[0].peak_reserved_gb:.3f} reserved GB (peak stats reset before the variant)", ""]

# --- replay the trace: reserved and allocated over time, live allocations at the peak ------
trace = snap["device_traces"][torch.cuda.current_device()]
reserved = allocated = 0
peak_r = peak_a = 0
peak_r_at = peak_a_at = -1
live: dict[int, tuple] = {}
capture_at = None
fresh_at = max((i for i, e in enumerate(trace) if e["action"] == "alloc" and e.get("size") == FRESH), default=0)
for i, e in enumerate(trace):
    action, size = e["action"], e.get("size", 0)
    if action in ("segment_alloc", "segment_map"):
        reserved += size
    elif action in ("segment_free", "segment_unmap"):
        reserved -= size
    elif action == "alloc":
        allocated += size
        live[e["addr"]] = (size, site(e.get("frames")), i)
        if size == MARK and capture_at is None:
            capture_at = i
    elif action == "free_completed":
        allocated -= size
        live.pop(e["addr"], None)
    if i < fresh_at:
        continue
    if reserved > peak_r:
        peak_r, peak_r_at = reserved, i
        peak_live = dict(live)
        peak_alloc_then = allocated
    if allocated > peak_a:
        peak_a, peak_a_at = allocated, i
        peak_a_live = dict(live)
first = trace[0]["action"] if trace else "?"
lines += [f"trace: {len(trace)} events (first: {first}); reserved/allocated relative to the trace's start",
          f"variant starts at event {fresh_at}, capture marker at event {capture_at}",
          f"peak reserved {peak_r / 1e9:.3f} GB at event {peak_r_at} (allocated then {peak_alloc_then / 1e9:.3f}); "
          f"peak allocated {peak_a / 1e9:.3f} at event {peak_a_at}", ""]


def by_site(live_blocks: dict) -> dict:
    """Live allocations grouped by where they were made, and whether before the first capture."""
    groups: dict[str, list] = collections.defaultdict(lambda: [0, 0])
    for size, where, at in live_blocks.values():
        tag = "before capture" if capture_at is None or at < capture_at else "capture/after"
        g = groups[f"{tag}: {where}"]
        g[0] += size
        g[1] += 1
    return groups


for title, live_then in (("reserved", peak_live), ("allocated", peak_a_live)):
    lines += [f"## Live at the peak of {title} memory (traced allocations only)", "", "| MB | count | where |",
              "|---|---|---|", *top(by_site(live_then), 40), ""]

# --- segments at the end ---------------------------------------------------------------
lines += ["## Segments at the end", "",
          "| pool | type | expandable | reserved MB | in use MB | free MB | free pieces | largest free MB |",
          "|---|---|---|---|---|---|---|---|"]
rows = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
end_groups: dict[str, list] = collections.defaultdict(lambda: [0, 0])
for seg in snap["segments"]:
    pool = tuple(seg.get("segment_pool_id") or (0, 0))
    key = ("shared" if pool == (0, 0) else f"private {pool}", seg.get("segment_type"), bool(seg.get("is_expandable")))
    r = rows[key]
    r[0] += seg["total_size"]
    r[1] += seg["allocated_size"]
    for b in seg["blocks"]:
        if b["state"] == "inactive":
            r[2] += b["size"]
            r[3] += 1
            r[4] = max(r[4], b["size"])
        else:
            g = end_groups[f"{key[0]} {key[1]}: {site(b.get('frames'))}"]
            g[0] += b["size"]
            g[1] += 1
for (pool, kind, exp), (total, used, free, pieces, largest) in sorted(rows.items()):
    lines.append(f"| {pool} | {kind} | {exp} | {total / 1e6:.1f} | {used / 1e6:.1f} | {free / 1e6:.1f} | {pieces} | "
                 f"{largest / 1e6:.1f} |")
lines += ["", "## Live blocks at the end", "", "| MB | count | where |", "|---|---|---|", *top(end_groups, 40), ""]

with open(OUT, "a", encoding="utf-8") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines[:12]))
