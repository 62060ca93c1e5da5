"""The GEGLU's jitted kernels (``train/geglu.FUSED_KERNELS``) on the GPU: values and gradients against an fp32
reference beside the plain operations', the time of each direction, and a CUDA graph capture of them.

Usage: python -m benchmarks.geglu_check [OUT.jsonl]   (needs a CUDA GPU)"""
from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from lora_trainer.train import geglu

# (batch, tokens, 2 × inner): SDXL 1024² at both attention levels, SD1.5 512² at its largest
SHAPES = {"sdxl 64² b4": (4, 4096, 2 * 2560), "sdxl 32² b4": (4, 1024, 2 * 5120),
          "sdxl 64² b1": (1, 4096, 2 * 2560), "sd15 64² b1": (1, 4096, 2 * 1280)}


def run(projected: torch.Tensor, grad: torch.Tensor, fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
    geglu.FUSED_KERNELS = fused
    x = projected.detach().requires_grad_(True)
    out = geglu.GegluProduct.apply(x)
    out.backward(grad)
    return out.detach(), x.grad


def reference(projected, grad):
    x = projected.detach().float().requires_grad_(True)
    hidden, gate = x.chunk(2, dim=-1)
    out = hidden * F.gelu(gate)
    out.backward(grad.float())
    return out.detach(), x.grad


def milliseconds(fn, repeats: int = 50) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b).norm() / b.norm())


def check(name: str, shape) -> dict:
    torch.manual_seed(0)
    projected = torch.randn(shape, device="cuda", dtype=torch.bfloat16) * 2
    grad = torch.randn(*shape[:-1], shape[-1] // 2, device="cuda", dtype=torch.bfloat16)
    ref_out, ref_grad = reference(projected, grad)
    row = {"shape": name}
    for fused in (False, True):
        out, g = run(projected, grad, fused)
        key = "fused" if fused else "plain"
        row[f"{key}_out_error"], row[f"{key}_grad_error"] = relative(out, ref_out), relative(g, ref_grad)
        x = projected.detach().requires_grad_(True)
        row[f"{key}_forward_ms"] = milliseconds(lambda: geglu.GegluProduct.apply(x))
        y = geglu.GegluProduct.apply(x)
        row[f"{key}_backward_ms"] = milliseconds(lambda: torch.autograd.grad(y, x, grad, retain_graph=True))
    row["fell_back"] = bool(geglu._kernels is not None and geglu._kernels.failed)
    # the fused pair inside a CUDA graph, replayed, against the same pair run eagerly
    geglu.FUSED_KERNELS = True
    static_x = projected.detach().clone().requires_grad_(True)
    eager_out, eager_grad = run(static_x.detach(), grad, True)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            static_x.grad = None
            geglu.GegluProduct.apply(static_x).backward(grad)
    torch.cuda.current_stream().wait_stream(stream)
    static_x.grad = None
    with torch.cuda.graph(graph):
        captured_out = geglu.GegluProduct.apply(static_x)
        captured_out.backward(grad)
    graph.replay()
    torch.cuda.synchronize()
    row["graph_equal"] = bool(torch.equal(captured_out.detach(), eager_out) and torch.equal(static_x.grad, eager_grad))
    geglu.FUSED_KERNELS = False
    return row


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("geglu_check needs a CUDA GPU")
    rows = [check(name, shape) for name, shape in SHAPES.items()]
    for r in rows:
        print(f"{r['shape']}: forward {r['plain_forward_ms']:.3f} → {r['fused_forward_ms']:.3f} ms, backward "
              f"{r['plain_backward_ms']:.3f} → {r['fused_backward_ms']:.3f} ms; error against fp32: output "
              f"{r['plain_out_error']:.2e} → {r['fused_out_error']:.2e}, gradient {r['plain_grad_error']:.2e} → "
              f"{r['fused_grad_error']:.2e}; fell back: {r['fell_back']}; captured = eager: {r['graph_equal']}")
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "device": torch.cuda.get_device_name(), "torch": torch.__version__}) + "\n")


if __name__ == "__main__":
    main()
