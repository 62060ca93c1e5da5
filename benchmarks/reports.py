"""What a bench run can write beside its timings: a profiler summary of a few steps and where the reserved
GPU memory lies."""
from __future__ import annotations

import torch


def write_profile(step, path: str, steps: int = 3) -> None:
    """torch.profiler summary of a few steps: the busiest kernels and the CPU-side cost."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"# {steps} steps\n## by CUDA time\n")
        fh.write(table.table(sort_by="cuda_time_total", row_limit=40))
        fh.write("\n## by CPU self time\n")
        fh.write(table.table(sort_by="self_cpu_time_total", row_limit=25))


def write_memory_breakdown(path: str, title: str) -> None:
    """Where the reserved memory is after the timed steps: the allocator's segments grouped by pool
    (a captured graph's private pool or the shared one), small/large and expandable, with how much
    of each is in use."""
    rows: dict[tuple, list[int]] = {}
    for seg in torch.cuda.memory_snapshot():
        pool = tuple(seg.get("segment_pool_id") or (0, 0))
        key = ("shared" if pool == (0, 0) else f"private {pool}", seg.get("segment_type", "?"),
               "expandable" if seg.get("is_expandable") else "fixed")
        row = rows.setdefault(key, [0, 0, 0])
        row[0] += int(seg.get("total_size", 0))
        row[1] += int(seg.get("allocated_size", 0))
        row[2] += 1
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"# {title}\n| pool | kind | segments | count | reserved GB | in use GB |\n|---|---|---|---|---|---|\n")
        for (pool, kind, expandable), (total, used, count) in sorted(rows.items()):
            fh.write(f"| {pool} | {kind} | {expandable} | {count} | {total / 1e9:.3f} | {used / 1e9:.3f} |\n")
