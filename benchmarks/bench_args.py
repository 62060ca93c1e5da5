"""The ``bench`` command's options, torch-free: ``python -m lora_trainer bench`` and
``python -m lora_trainer.bench`` build their parsers from here."""
from __future__ import annotations

import argparse

MODEL_NAMES = ("sd15", "sdxl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODEL_NAMES, default="sd15")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--resolution", type=int, default=None, help="default: 512 (sd15), 1024 (sdxl)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--alpha", type=float, default=None,
                   help="network_alpha (default: the rank, a scale of 1; users' runs mostly train with half the rank)")
    p.add_argument("--optimizer", default="AdamW",
                   help="optimizer_type, e.g. AdamW8bit, Lion8bit, Prodigy (learning rate 1), Adafactor; only AdamW's "
                        "update is captured with the step, the others run after the replayed forward and backward")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="append each result as one JSON line to this file")
    p.add_argument("--no-baseline", action="store_true", help="skip the plain peft step used for the ratio")
    p.add_argument("--profile", help="write a torch.profiler summary of the first variant to this file")
    p.add_argument("--variants", default="eager,graphs",
                   help="comma-separated: eager, graphs, compile, compile+graphs, each optionally +cl "
                        "(channels-last), +amp (under bf16 autocast, as before bf16 ran without it), "
                        "+fullgc (checkpointing recomputes the attention and the last block too), "
                        "+attnonly (checkpointing keeps the attention outputs but not the LoRA down-projections), "
                        "+wide (compile whole transformers and the resampling layers, not only the blocks), "
                        "+autograd (LoRA Linears through autograd instead of one function each), "
                        "+nonreentrant (the eager step's checkpointing non-reentrant, as before it was reentrant)")
    p.add_argument("--compile", action="store_true", help="shorthand for --variants compile+graphs")
    p.add_argument("--memory-breakdown", help="append where the first variant's reserved memory is to this file")
    p.add_argument("--memory-preset", help="check that this VRAM preset (e.g. sdxl-8gb) trains within its cap")
