"""Run torch's attention (SDPA) forward and backward once per configuration both trainers use, so that the
kernels this GPU compiles at their first use are compiled before a timed job, not inside the first one.

On a fresh GPU machine the first process that ran SD attention paid about 10 s in its first step (SD1.5
with a trained text encoder: forward 5.7 s, backward 5.5 s, all of it in cuDNN's fused attention), the next
processes about 1 s, also after the page cache was emptied: what a user's machine pays once, in its first
training run of any trainer. Both trainers here call the same torch and cuDNN, so whichever job ran first
paid it for the others. Neutral: plain torch, no trainer's code.

  python benchmarks/gpu_prime.py   (prints the seconds it took)
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

# SD1.5's UNet heads are 40, 80 and 160 wide (8 heads), SDXL's 64; CLIP's text encoders 64 (causal, padded)
HEAD_DIMS = (40, 64, 80, 160)
DTYPES = (torch.bfloat16, torch.float16)


def attend(dtype, head_dim: int, queries: int, keys: int, causal: bool = False, mask: bool = False) -> None:
    q = torch.randn(2, 8, queries, head_dim, device="cuda", dtype=dtype, requires_grad=True)
    k = torch.randn(2, 8, keys, head_dim, device="cuda", dtype=dtype, requires_grad=True)
    v = torch.randn(2, 8, keys, head_dim, device="cuda", dtype=dtype, requires_grad=True)
    attn_mask = None
    if mask:
        attn_mask = torch.ones(queries, keys, device="cuda", dtype=torch.bool).tril()
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal and not mask)
    out.float().sum().backward()


def main() -> float:
    start = time.perf_counter()
    for dtype in DTYPES:
        for head_dim in HEAD_DIMS:
            attend(dtype, head_dim, 1024, 1024)      # self-attention
            attend(dtype, head_dim, 1024, 77)        # cross-attention over a prompt
        attend(dtype, 64, 77, 77, causal=True)       # text encoders
        attend(dtype, 64, 77, 77, mask=True)
    torch.cuda.synchronize()
    return time.perf_counter() - start


if __name__ == "__main__":
    if torch.cuda.is_available():
        print(f"attention kernels primed in {main():.1f} s", flush=True)
    else:
        print("no CUDA device: nothing to prime", flush=True)
