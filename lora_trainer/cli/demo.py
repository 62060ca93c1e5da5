"""The embedded demo: a tiny SD1-architecture model and a bundled dataset, trained on CPU.

It writes the tiny base model as a single-file checkpoint to ``<output>/base/`` (so the
LoRA can be loaded back onto it) and the LoRA epochs to ``<output>/``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..config.schema import TrainConfig
from .messages import said

DEMO_DATA = Path(__file__).parent.parent / "demo_data" / "train"


def demo_config(output_dir: str, base_model: str, epochs: int = 10) -> TrainConfig:
    return TrainConfig(
        pretrained_model_name_or_path=base_model, train_data_dir=str(DEMO_DATA), output_dir=output_dir,
        output_name="demo_lora", resolution="64", min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=64,
        train_batch_size=2, max_train_epochs=epochs, save_every_n_epochs=1, network_dim=8, network_alpha=8,
        learning_rate=2e-3, text_encoder_lr=5e-4, lr_scheduler="cosine", lr_warmup_steps=0.05,
        optimizer_type="AdamW", mixed_precision="no", cache_latents=True, seed=42,
        training_comment="demo: tiny SD1-architecture model, bundled shapes dataset")


def write_demo_base(output_dir: str) -> str:
    from ..models.tiny import build_tiny_components, save_single_file

    path = os.path.join(output_dir, "base", "tiny-sd15.safetensors")
    save_single_file(build_tiny_components("sd1", seed=0), path, "sd1")
    return path


def _python() -> str:
    """The interpreter running the demo, as a user would type it (relative when inside the cwd)."""
    path = os.path.relpath(sys.executable)
    return path if not path.startswith("..") else sys.executable


def run_demo(output_dir: str, epochs: int = 10) -> list[str]:
    from ..train.loop import train
    from .progress import ProgressPrinter

    started = time.perf_counter()
    os.makedirs(output_dir, exist_ok=True)
    base = write_demo_base(output_dir)
    print(said("cli.demo.base", path=base))
    result = train(demo_config(output_dir, base, epochs), listener=ProgressPrinter())
    print(said("cli.demo.loss_per_epoch"))
    print(said("cli.demo.loss_header"))
    for epoch, loss in enumerate(result.epoch_losses, start=1):
        print(f"  {epoch:>5}  {loss:.4f}")
    print(said("cli.demo.files"))
    for path in result.files:
        print(said("cli.demo.file", path=path, size=os.path.getsize(path) / 1024))
    print(said("cli.demo.logs", folder=result.run_dir))
    print(said("cli.demo.finished", seconds=time.perf_counter() - started, python=_python(), file=result.files[-1]))
    return result.files
