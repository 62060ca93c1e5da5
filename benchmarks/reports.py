"""What a bench run can write beside its timings: a profiler summary of a few steps (the GPU time by kind of
kernel) and where the reserved GPU memory lies."""
from __future__ import annotations

import torch

# Kernel kinds by their names, first match wins (cuDNN's convolution kernels are GEMM-like: asked first).
KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "attention", "_mha", "sdpa")),
    ("convolution", ("conv", "fprop", "dgrad", "wgrad", "nchwtonhwc", "nhwctonchw", "implicit")),
    ("optimizer", ("multi_tensor", "fused_adam", "adam", "foreach")),
    ("GEMM", ("gemm", "xmma", "cutlass", "nvjet", "splitk", "gemv", "cublas", "sm90_", "sm80_")),
    ("norm", ("norm", "moments", "fusedparams", "internalgradients", "gammabeta")),
    ("copy", ("copy", "memcpy", "memset", "cat_", "catarray", "transpose")),
    ("reduction", ("reduce",)),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "gelu", "silu", "pointwise", "triton_")),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    for kind, marks in KERNEL_KINDS:
        if any(mark in lowered for mark in marks):
            return kind
    return "other"


def kernel_shares(events, steps: int) -> tuple[list, list]:
    """The GPU time per step of each kind of kernel, and the busiest kernels, from ``key_averages()``:
    rows of (kind, ms per step, share, kernels per step) and (name, kind, ms per step, calls per step)."""
    kernels = [e for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
    time_of = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)  # noqa: E731
    total = sum(time_of(e) for e in kernels) or 1
    kinds: dict[str, list] = {}
    for e in kernels:
        row = kinds.setdefault(kernel_kind(e.key), [0.0, 0])
        row[0] += time_of(e)
        row[1] += e.count
    by_kind = sorted(((k, t / 1e3 / steps, t / total, n / steps) for k, (t, n) in kinds.items()),
                     key=lambda r: -r[1])
    busiest = sorted(kernels, key=lambda e: -time_of(e))[:30]
    return by_kind, [(e.key, kernel_kind(e.key), time_of(e) / 1e3 / steps, e.count / steps) for e in busiest]


def write_profile(step, path: str, steps: int = 3) -> None:
    """torch.profiler summary of a few steps: the busiest kernels and the CPU-side cost."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages()
    by_kind, busiest = kernel_shares(table, steps)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"# {steps} steps\n## GPU time per step by kind of kernel\n| kind | ms | share | kernels |\n|---|---|---|---|\n")
        for kind, ms, share, count in by_kind:
            fh.write(f"| {kind} | {ms:.2f} | {share:.1%} | {count:.0f} |\n")
        fh.write("\n## busiest kernels, per step\n| kernel | kind | ms | calls |\n|---|---|---|---|\n")
        for name, kind, ms, count in busiest:
            fh.write(f"| {name[:110]} | {kind} | {ms:.2f} | {count:.0f} |\n")
        fh.write("\n## by CUDA time\n")
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
