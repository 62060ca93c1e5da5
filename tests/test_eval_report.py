"""The Evaluate tab's flow on a synthetic run: open, read, render-plan, score a grid, keep (torch-free)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lora_trainer.evaluate.keep import keep_epoch
from lora_trainer.evaluate.report import evaluate_grid, evaluate_run
from lora_trainer.evaluate.scores import GridCell
from lora_trainer.io.safetensors_header import encode_header, read_metadata
from lora_trainer.train.metrics import MetricsLogger

META = {"ss_base_model_version": "sd_v1", "ss_num_train_images": "24", "ss_num_epochs": "10",
        "ss_unet_lr": "0.0001", "ss_text_encoder_lr": "0.00005", "ss_optimizer": "AdamW",
        "ss_tag_frequency": json.dumps({"10_dreamgirl": {"dreamgirl": 24, "smile": 9}})}


def write_lora(path: Path, metadata: dict) -> str:
    raw = np.arange(4, dtype="<f4").tobytes()
    header = {"__metadata__": metadata, "lora_unet_a.alpha": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    path.write_bytes(encode_header(header) + raw)
    return str(path)


def picture(seed: int) -> Image.Image:
    r = np.random.default_rng(seed)
    img = Image.new("RGB", (128, 128), tuple(int(v) for v in r.integers(60, 200, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = (int(v) for v in r.integers(0, 90, 2))
        draw.rectangle([x0, y0, x0 + int(r.integers(10, 40)), y0 + int(r.integers(10, 40))],
                       fill=tuple(int(v) for v in r.integers(0, 255, 3)))
    return img


def make_run(lora: Path, epochs: int = 10, steps_per_epoch: int = 100, decay: float = 120.0,
             noise: float = 0.004) -> Path:
    """A finished run: our metrics.jsonl with a falling loss and one small .safetensors per epoch."""
    lora.mkdir(parents=True, exist_ok=True)
    log_dir = lora / "logs" / "dreamgirl-20250101-120000"
    rng = np.random.default_rng(0)
    with MetricsLogger(log_dir, tensorboard=False) as logger:
        for step in range(1, epochs * steps_per_epoch + 1):
            epoch = (step - 1) // steps_per_epoch + 1
            logger.log_step(step, epoch, float(0.075 + 0.08 * np.exp(-step / decay) + rng.normal(0, noise)),
                            {"unet": 1e-4})
            if step % steps_per_epoch == 0:
                logger.log_epoch(epoch, 0.075 + 0.08 * float(np.exp(-step / decay)), step)
                path = write_lora(lora / f"dreamgirl-{epoch:06d}.safetensors",
                                  {**META, "ss_epoch": str(epoch), "ss_steps": str(step)})
                logger.log_event("file_saved", path=path, epoch=epoch, step=step, file_kind="epoch")
        path = write_lora(lora / "dreamgirl.safetensors", {**META, "ss_epoch": str(epochs), "ss_steps": str(step)})
        logger.log_event("file_saved", path=path, epoch=epochs, step=step, file_kind="final")
    return log_dir


def test_open_read_score_keep(tmp_path):
    lora = tmp_path / "Lora"
    make_run(lora)
    report = evaluate_run(lora, kind="character")
    assert report.run.name == "dreamgirl" and report.run.source == "ours" and not report.warnings
    assert report.summary.sd_version == "SD1" and report.summary.trigger_words() == ["dreamgirl"]
    assert report.loss.plateau_step is not None and report.loss.candidates
    assert 0 < len(report.grid.epochs) <= 9 and report.grid.epochs[-1] == "dreamgirl"
    assert "<svg" in report.chart_html()
    assert [f.key for f in report.findings] == ["early_plateau"]   # flat after ~300 of 1000 steps

    # the user renders the planned grid (here: two epochs × three weights, plus weight 0)
    training = [picture(100 + i) for i in range(3)]
    cells = []
    for stem, epoch in (("dreamgirl-000003", 3), ("dreamgirl-000006", 6)):
        for weight in (0.0, 0.6, 0.8, 1.0):
            img = picture(0) if weight == 0 else picture(10 * epoch + int(weight * 10))
            if epoch == 6 and weight == 1.0:
                img = training[0]   # a copy of a training image
            cells.append(GridCell(img, weight, epoch=epoch, stem=stem))
    grid = evaluate_grid(report, cells, training_images=training)
    assert grid.recommendation.epoch == 3 and grid.recommendation.weight == 0.6
    assert any(m.key == "rec.overfit" for m in grid.recommendation.reasons)
    assert [f.key for f in grid.findings] == ["early_plateau"]   # one copied cell of six is not a pattern

    # … and keeps it
    chosen = report.run.file_by_stem(grid.recommendation.key)
    kept = keep_epoch(chosen, "my dreamgirl", preferred_weight=grid.recommendation.weight, preview=cells[1].image,
                      notes="\n".join(report.loss.sentences()), lora_root=str(lora))
    assert read_metadata(kept.path)["ss_output_name"] == "my dreamgirl"
    assert kept.prompt_tag == "dreamgirl <lora:my dreamgirl:0.6>"
    notes = json.loads(Path(kept.sidecar).read_text(encoding="utf-8"))["notes"]
    assert "kept from dreamgirl-000003 (epoch 3)" in notes and "flattens out" in notes


def test_kohya_run_without_a_log_says_where_the_curve_is(tmp_path, monkeypatch):
    # TensorBoard events under the working folder (a WebUI's root, a demo's output) are not this run's log
    from lora_trainer.io.tb_events import EventFileWriter

    here = tmp_path / "working folder" / "some other run"
    with EventFileWriter(here) as writer:
        for step in range(1, 21):
            writer.add_scalar("loss/current", 0.1, step)
    monkeypatch.chdir(tmp_path / "working folder")
    tmp_path = tmp_path / "kohya"
    tmp_path.mkdir()
    for e in (1, 2):
        write_lora(tmp_path / f"k-{e:06d}.safetensors", {**META, "ss_epoch": str(e)})
    report = evaluate_run(tmp_path)
    assert report.run.source == "kohya" and report.log.empty
    assert "logging folder" in report.warnings[0]
    assert [m.key for m in report.loss.messages] == ["loss.no_data"] and report.chart_html() == ""
    assert report.grid.epochs == ["k-000001", "k-000002"]
