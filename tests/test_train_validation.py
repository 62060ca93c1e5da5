"""The validation loss during training, on tiny models on the CPU.

Held-out images are not trained on, the loss is logged after each chosen epoch (metrics.jsonl,
TensorBoard, events), and it is the same measurement as the one the Evaluate tab computes later
from the saved file.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.evaluate.run_log import read_metrics_log  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"


@pytest.fixture
def dataset(tmp_path):
    target = tmp_path / "数据" / "2_zkz 形状"
    shutil.copytree(next(DEMO.iterdir()), target)
    return str(target.parent)


def make_config(checkpoint, data_dir, out_dir, **changes) -> TrainConfig:
    base = dict(pretrained_model_name_or_path=checkpoint, train_data_dir=data_dir, output_dir=str(out_dir),
                output_name="val", resolution="64", min_bucket_reso=64, max_bucket_reso=128, bucket_reso_steps=64,
                train_batch_size=2, max_train_epochs=3, save_every_n_epochs=1, network_dim=4, network_alpha=4,
                learning_rate=3e-3, optimizer_type="AdamW", mixed_precision="no", seed=7, save_precision="float",
                network_train_unet_only=True, save_state=False)
    base.update(changes)
    return TrainConfig(**base)


def train(cfg):
    from lora_trainer.train.loop import train as run

    seen = []
    return run(cfg, listener=seen.append, log=lambda *_: None), seen


def test_held_out_images_are_validated_each_epoch_and_not_trained(tiny_checkpoints, dataset, tmp_path):
    from safetensors import safe_open

    from lora_trainer.evaluate.runs import RunFile
    from lora_trainer.evaluate.validation import validate_files

    cfg = make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "out", validation_split=0.25)
    result, seen = train(cfg)
    started = next(e for e in seen if isinstance(e, ev.Started))
    assert started.total_steps == 3 * (6 * 2 // 2)                       # 8 images, 2 held out
    assert "2 training image(s) are held out" in started.plan_text
    validated = [e for e in seen if isinstance(e, ev.Validated)]
    assert [(e.epoch, e.source, e.images) for e in validated] == [(1, "holdout", 2), (2, "holdout", 2),
                                                                 (3, "holdout", 2)]
    assert all(e.loss == e.loss and e.loss > 0 for e in validated)
    with safe_open(result.files[0], framework="pt") as fh:
        assert fh.metadata()["ss_num_train_images"] == "6"

    log = read_metrics_log(result.run_dir)
    assert [(e, s) for e, s, _ in log.validation] == [(e.epoch, e.step) for e in validated]
    assert log.validation_source == "holdout"
    assert any(p.name.startswith("events.out.tfevents") for p in Path(result.run_dir).iterdir())

    # the Evaluate tab's on-demand computation scores the same held-out images the same way
    epoch1 = next(f for f in result.files if f.endswith("-000001.safetensors"))
    again = validate_files(cfg, [RunFile(epoch1, Path(epoch1).stem, "epoch", 1, validated[0].step)], device="cpu")
    assert again[0].source == "holdout"
    assert again[0].loss == pytest.approx(validated[0].loss, rel=1e-4)


def test_training_images_with_fixed_noise_and_a_folder(tiny_checkpoints, dataset, tmp_path, make_image):
    folder = tmp_path / "验证"
    for i in range(3):
        make_image(folder / f"{i}.png", size=(64, 64), color=(40 * i, 90, 200))
    cfg = make_config(tiny_checkpoints["sdxl"], dataset, tmp_path / "a", validate_every_n_epochs=2, max_train_epochs=3)
    _, seen = train(cfg)
    validated = [e for e in seen if isinstance(e, ev.Validated)]
    assert [(e.epoch, e.source, e.images) for e in validated] == [(2, "training", 8), (3, "training", 8)]

    cfg = make_config(tiny_checkpoints["sdxl"], dataset, tmp_path / "b", validation_data_dir=str(folder),
                      max_train_epochs=1, network_train_unet_only=False, text_encoder_lr=1e-3)
    result, seen = train(cfg)
    validated = [e for e in seen if isinstance(e, ev.Validated)]
    assert [(e.epoch, e.source, e.images) for e in validated] == [(1, "holdout", 3)]
    lines = [json.loads(line) for line in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    event = next(line for line in lines if line.get("kind") == "validation")
    assert event["images"] == 3 and event["source"] == "holdout" and event["loss"] == pytest.approx(validated[0].loss)


def test_the_train_tab_shows_the_validation_loss():
    from lora_trainer.runner.job import Job
    from lora_trainer.evaluate.loss_chart import loss_chart_svg
    from lora_trainer.ui.status import progress_html

    job = Job(id="x", output_name="val", status="training", step=6, total_steps=9, losses=[[3, 0.2], [6, 0.1]],
              epoch_losses=[[1, 3, 0.2], [2, 6, 0.1]], validation=[[1, 3, 0.31], [2, 6, 0.29]])
    assert "Validation loss" in progress_html(job) and "0.2900" in progress_html(job)
    svg = loss_chart_svg(job.losses, epochs=job.epoch_losses, validation=job.validation)
    assert svg.count('class="lt-val-dot"') == 2 and "validation loss (right scale)" in svg
    assert 'class="lt-val' not in loss_chart_svg(job.losses, epochs=job.epoch_losses)
    assert Job.from_dict(job.to_dict()).validation == job.validation
